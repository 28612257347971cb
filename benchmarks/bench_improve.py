"""Benchmark `loop improve` on large Drafts tabs: where does the time go as a workbook grows?

For each size it builds a synthetic workbook (realistic text lengths, ~15% 👎 with varied comments,
~10% 👍, the rest unreviewed, all from the last 10 days) and runs `loop.improver.improve` once
against the local fake model server (tests/fake_openai.py): no network, no real model. Timing
wrappers, installed here only, split that one run into phases: read = XlsxWorkbook.read (which
opens the workbook) + reviews.read_drafts; model = time inside ModelClient.ask (request building,
HTTP to the fake server, validation); write = XlsxWorkbook.write (Edits tab + Runs row).
Read time is compared with a bare openpyxl read-only, values-only pass over the Drafts rows, the
usual pure-Python baseline. Calls and input tokens come from the run's usage; the largest
request's estimate is shown against the LOOP_MAX_INPUT_TOKENS budget.

Usage: .venv/bin/python benchmarks/bench_improve.py [--sizes 1000,10000] [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for `loop` and `tests.fake_openai`

import openpyxl  # noqa: E402

from loop import config, reviews, schema  # noqa: E402
from loop.improver import pipeline  # noqa: E402
from loop.model import ModelClient, estimate_messages  # noqa: E402
from loop.sheets.xlsx import XlsxWorkbook  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402

PROMPT = """# Support agent

You are the support agent for Tallyhive, a time-tracking app.
Read the ticket and the whole thread before you answer.
Search the knowledge base and never invent UI paths; copy them from it.
Keep replies short: answer the question first, then stop.
Be friendly and professional in every reply, even to upset customers.
Escalate billing disputes to a person.
"""
_letters = random.Random(1)  # a few thousand made-up words, so the text compresses like real prose
WORDS = ["".join(_letters.choices("etaoinshrdlucmfwyp", k=_letters.randint(2, 9))) for _ in range(4000)]
# Worded so the fake model's keyword classifier forms several patterns (the last two become "Tone").
DOWN_COMMENTS = ["too long, two sentences would do", "way too verbose for a yes/no question",
                 "that menu path doesn't exist in the app", "Settings → Exports is not a real path",
                 "didn't read the thread, customer already tried that", "ignored what they said earlier",
                 "unrelated workaround, they are on the free plan", "suggests an upgrade that doesn't apply",
                 "tone is curt and a bit cold", "tone sounds robotic, not warm"]
UP_COMMENTS = ["clear and correct, sent as is", "good answer", "exactly right", ""]


def text(rng: random.Random, chars: int) -> str:
    """About `chars` characters of prose-like text (made-up words average 6.5 characters with a space)."""
    return " ".join(rng.choices(WORDS, k=max(1, chars * 2 // 13))).capitalize() + "."


def build_workbook(path: Path, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet(schema.DRAFTS)
    sheet.append(schema.DRAFT_HEADERS)
    for i in range(n):
        roll = rng.random()
        score, comment = (("👎", rng.choice(DOWN_COMMENTS) + " " + text(rng, 20)) if roll < 0.15
                          else ("👍", rng.choice(UP_COMMENTS)) if roll < 0.25 else (None, None))
        row = {
            "trace_id": f"t-{i:08d}", "created_at": now - timedelta(seconds=rng.randrange(10 * 86400)),
            "ticket_id": f"TK-{100000 + i}", "ticket": text(rng, 400), "draft": text(rng, 800),
            "kb_sources": "kb/exports.md, kb/billing.md", "prompt_version": "v1",
            "score": score, "comment": comment, "reviewer": "ana" if score else None,
        }
        sheet.append([row.get(header) for header in schema.DRAFT_HEADERS])
    book.save(path)


def openpyxl_floor(path: Path) -> float:
    start = time.perf_counter()
    book = openpyxl.load_workbook(path, read_only=True)
    for _ in book[schema.DRAFTS].iter_rows(values_only=True):
        pass
    book.close()
    return time.perf_counter() - start


class Phases:
    """Timing wrappers, installed once, around the methods of each phase."""

    def reset(self) -> None:  # called per run
        self.seconds = {"read": 0.0, "model": 0.0, "write": 0.0}
        self.largest_request = 0

    def wrap(self, owner, name: str, phase: str) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - start

        setattr(owner, name, timed)

    def install(self) -> None:
        self.reset()
        self.wrap(XlsxWorkbook, "read", "read")
        self.wrap(reviews, "read_drafts", "read")  # the workspace imports it when it reads
        self.wrap(XlsxWorkbook, "write", "write")
        self.wrap(ModelClient, "ask", "model")
        timed_ask = ModelClient.ask

        def ask(client, name, answer_type, messages):
            self.largest_request = max(self.largest_request, estimate_messages(messages))
            return timed_ask(client, name, answer_type, messages)

        ModelClient.ask = ask


def bench(n: int, phases: Phases, workdir: Path) -> str:
    sheet, prompt = workdir / f"drafts-{n}.xlsx", workdir / f"prompt-{n}.md"
    prompt.write_text(PROMPT, encoding="utf-8")
    build_workbook(sheet, n)
    floor = openpyxl_floor(sheet)
    settings = config.resolve(sheet=str(sheet), prompt=str(prompt))
    phases.reset()
    with FakeOpenAI() as server:
        os.environ["OPENAI_BASE_URL"] = server.url
        started = time.perf_counter()
        report = pipeline.improve(settings, check=False)  # the replay check has its own benchmark
        requests = len(server.requests)
    s = phases.seconds
    print(f"[{n:,}] {sheet.stat().st_size / 1e6:.1f} MB workbook; improve took {time.perf_counter() - started:.1f}s, "
          f"{len(report.patterns)} patterns, {len(report.proposed)} proposed edits", file=sys.stderr, flush=True)
    usage = report.usage
    calls = f"{usage.calls}" if usage.calls == requests else f"{usage.calls} ({requests} served)"
    return (f"| {n:,} | {len(report.window.failures):,} | {s['read']:.2f} | {s['read'] / floor:.2f}x "
            f"({floor:.2f} s) | {s['model']:.2f} | {s['write']:.2f} | {calls} | {usage.input_tokens:,} "
            f"| {phases.largest_request:,} / {settings.max_input_tokens:,} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,50000", help="comma-separated draft counts")
    parser.add_argument("--quick", action="store_true", help="1,000 drafts only")
    args = parser.parse_args()
    sizes = [1000] if args.quick else [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    os.environ["OPENAI_API_KEY"] = "fake-key"  # never send a real key to the local fake server
    phases = Phases()
    phases.install()
    with tempfile.TemporaryDirectory(prefix="loop-bench-") as tmp:
        rows = [bench(n, phases, Path(tmp)) for n in sizes]
    print("| drafts | failures | read s | read / openpyxl floor | model s | write s | model calls "
          "| input tokens | largest request (tokens) |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print(f"\nMachine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]} ({sys.platform}); "
          "model = local fake server, so model s is client + HTTP overhead, not inference.")


if __name__ == "__main__":
    main()
