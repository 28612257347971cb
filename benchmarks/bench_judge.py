"""Judge throughput: `loop judge` over 200 unreviewed drafts against a model endpoint that takes
200 ms per answer, sequential (one request in flight) versus concurrent. The ratio is what
bounded concurrency buys when the model, not this tool, is the bottleneck.

Usage: .venv/bin/python benchmarks/bench_judge.py [--drafts 200] [--latency 0.2] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loop import config
from loop.collect import judge  # noqa: E402
from tests.conftest import draft, write_workbook  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402


def run(folder: Path, drafts: int, concurrency: int) -> tuple[float, int]:
    sheet = folder / f"judge-{concurrency}.xlsx"
    write_workbook(sheet, [draft(trace_id=f"d{i}", score=None, comment=None, draft="Reply. " * (20 + i % 150))
                           for i in range(drafts)])
    started = time.perf_counter()
    report = judge.judge(config.resolve(sheet=str(sheet)), concurrency=concurrency)
    return time.perf_counter() - started, report.usage.calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drafts", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, FakeOpenAI(latency=args.latency) as model:
        folder = Path(folder)
        (folder / "judge.md").write_text("Down if the draft is too long.\n")
        os.environ.update({"OPENAI_BASE_URL": model.url, "OPENAI_API_KEY": "fake-key",
                           "LOOP_JUDGE_PROMPT": str(folder / "judge.md")})
        sequential, calls = run(folder, args.drafts, 1)
        concurrent, _ = run(folder, args.drafts, args.concurrency)
    print(f"| judge, {args.drafts} drafts, {args.latency * 1000:.0f} ms per answer | seconds | drafts/s | model calls |")
    print("|---|---:|---:|---:|")
    print(f"| sequential (concurrency 1) | {sequential:.1f} | {args.drafts / sequential:.1f} | {calls} |")
    print(f"| concurrent (concurrency {args.concurrency}) | {concurrent:.1f} | {args.drafts / concurrent:.1f} | {calls} |")
    print(f"\nConcurrent is {sequential / concurrent:.1f}x faster than sequential.")


if __name__ == "__main__":
    main()
