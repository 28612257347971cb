"""What the replay check costs: model calls and tokens of `loop improve` with and without it, for 5
and 20 proposed edits, and its wall time at concurrency 1 and 8 against a model that takes 200 ms a
call, as a share of the ideal speed-up (8×).

The workbook holds 240 reviewed drafts (80 failures in four patterns, 160 successes) and the
example knowledge base, so the bundled agent searches and reads as it would for real (about three
model calls a draft). The model is the local fake server (tests/fake_openai.py); the edits are
scripted, one per line of a 24-line prompt, each citing three failures of its pattern.

Usage: .venv/bin/python benchmarks/bench_replay.py [--latency 0.2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loop import config
from loop.improver import pipeline  # noqa: E402
from tests.conftest import draft, write_workbook  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402

PATTERNS = {"Too verbose": "too long, two sentences would do", "Wrong menu paths": "that menu path doesn't exist",
            "Missed thread context": "read the thread, they already tried that",
            "Unrelated workarounds": "unrelated workaround, doesn't apply to their plan"}
PROMPT = "".join(f"Rule {i}: answer the customer's question number {i} plainly and check the docs.\n" for i in range(24))


def workbook(path: Path) -> None:
    rows = [draft(trace_id=f"f{p}-{i}", comment=comment, days_ago=1 + i / 10, ticket=f"How do I export report {i}?")
            for p, comment in enumerate(PATTERNS.values()) for i in range(20)]
    rows += [draft(trace_id=f"s{i}", score="👍", comment="good", days_ago=2 + i / 100,
                   ticket=f"Where do I find invoice {i}?") for i in range(160)]
    write_workbook(path, rows)


def edits(count: int) -> dict:
    names = list(PATTERNS)
    return {"edits": [{"pattern": names[i % 4], "find": f"Rule {i}: answer the customer's question number {i} plainly",
                       "replace": f"Rule {i}: answer the customer's question number {i} plainly\n- Guard against "
                                  f"{names[i % 4].lower()}: check before sending.",
                       "rationale": "r", "evidence": [f"f{i % 4}-{j}" for j in range(3)]} for i in range(count)]}


def run(folder: Path, server: FakeOpenAI, count: int, check: bool, concurrency: int = 8):
    work = folder / f"run-{count}-{check}-{concurrency}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    workbook(work / "loop.xlsx")
    (work / "prompt.md").write_text(PROMPT, encoding="utf-8")
    shutil.copytree(ROOT / "examples" / "kb", work / "kb")
    os.environ["LOOP_KB"] = str(work / "kb")
    settings = config.resolve(sheet=str(work / "loop.xlsx"), prompt=str(work / "prompt.md"), check_budget=100_000)
    patterns = {"patterns": [{"name": name, "description": name, "trace_ids": [f"f{p}-{i}" for i in range(20)]}
                             for p, name in enumerate(PATTERNS)]}
    server.queue({"json": patterns}, {"json": edits(count)})
    started = time.perf_counter()
    report = pipeline.improve(settings, check=check, concurrency=concurrency)
    seconds = time.perf_counter() - started
    assert len(report.proposed) == count, [e.check for e in report.edits]
    return report, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        print("| proposed edits | replay check | model calls | of which replay | input tokens | output tokens | cases replayed |")
        print("|---:|---|---:|---:|---:|---:|---:|")
        with FakeOpenAI() as server:
            os.environ["OPENAI_BASE_URL"] = server.url
            for count in (5, 20):
                for check in (False, True):
                    report, _ = run(folder, server, count, check)
                    replayed = report.replay.usage.calls if check else 0
                    cases = len(report.replay.outcomes) if check else 0
                    print(f"| {count} | {'on' if check else 'off'} | {report.usage.calls:,} | {replayed:,} | "
                          f"{report.usage.input_tokens:,} | {report.usage.output_tokens:,} | {cases} |", flush=True)
        with FakeOpenAI(latency=args.latency) as server:
            os.environ["OPENAI_BASE_URL"] = server.url
            timings = {}
            for concurrency in (1, 8):
                report, seconds = run(folder, server, 5, True, concurrency)
                timings[concurrency] = seconds - 2 * args.latency  # less the two calls before the replay
            speedup = timings[1] / timings[8]
        print()
        print(f"| replay of 5 edits, {args.latency * 1000:.0f} ms a model call | seconds |")
        print("|---|---:|")
        print(f"| concurrency 1 | {timings[1]:.1f} |")
        print(f"| concurrency 8 | {timings[8]:.1f} |")
        print(f"\nSpeed-up {speedup:.2f}× of an ideal 8×: {speedup / 8:.2f} of ideal "
              f"({report.replay.usage.calls} model calls, {len(report.replay.outcomes)} cases).")


if __name__ == "__main__":
    main()
