"""What each command costs on a local workbook as it grows, against what a write used to cost.

For 1,000, 10,000 and 50,000 drafts it builds a workbook (realistic text, as bench_improve.py does)
and times, each on a fresh copy: `log_draft` of one draft, `log_drafts` of 100, the write of
`improve` (its Edits tab and Runs row), `apply` of one ticked edit, `judge --limit 10`, `rollback`
and `status`. Each figure is a ratio to an openpyxl load + save of the same workbook in the same run
(how every write worked before the package splicer: 1.0). The model is the local fake server
(tests/fake_openai.py), which answers at once, so the figures are this tool's own cost.

Then logging on the 10,000-row workbook: one writer process, and four started together, each
logging one draft, then 25 drafts one call at a time (the seconds until each returns, from
process start); and the start-up time of `loop status --help`.

Usage: .venv/bin/python benchmarks/bench_writes.py [--sizes 1000,10000,50000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import openpyxl  # noqa: E402
from bench_improve import PROMPT, build_workbook  # noqa: E402

from loop import config, schema
from loop.collect import judge, traces
from loop.improver import pipeline
from loop.measure import status  # noqa: E402
from loop.sheets import CellUpdate, WriteBatch  # noqa: E402
from loop.sheets.xlsx import XlsxWorkbook  # noqa: E402
from loop.ship import approval
from tests.fake_openai import FakeOpenAI  # noqa: E402

TARGETS = {"log 1": 0.15, "improve write": 0.10, "apply 1": 0.05, "judge 10": 0.30}
WRITER = """
import sys, time
from loop import config, log_draft
settings = config.resolve(sheet=sys.argv[1], prompt=sys.argv[2])
for i in range(int(sys.argv[3])):
    log_draft(ticket=f"writer {sys.argv[4]} ticket {i}", draft="A reply.", settings=settings)
print(time.time())
"""


def round_trip(path: Path, scratch: Path) -> float:
    """The floor: what a write cost when it loaded and saved the whole workbook with openpyxl."""
    started = time.perf_counter()
    openpyxl.load_workbook(path, rich_text=True).save(scratch)
    return time.perf_counter() - started


def fresh(base: Path, folder: Path, name: str):
    """A copy of the workbook and a versioned prompt, as a team has them; returns its settings."""
    work = folder / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    shutil.copy(base, work / "loop.xlsx")
    (work / "prompt.md").write_text(PROMPT, encoding="utf-8")
    (work / "judge.md").write_text("Down if the draft is longer than five sentences.\n", encoding="utf-8")
    os.environ["LOOP_JUDGE_PROMPT"] = str(work / "judge.md")
    settings = config.resolve(sheet=str(work / "loop.xlsx"), prompt=str(work / "prompt.md"))
    traces.log_drafts([{"ticket": "warm-up", "draft": "so the prompt is v1 and the archive exists"}], settings)
    return settings


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def improve_write(settings) -> float:
    """The write phase of `improve` alone (its model calls are the fake's, measured elsewhere)."""
    seconds = []
    original = XlsxWorkbook.write

    def write(self, batch, wait=None, **kwargs):
        started = time.perf_counter()
        try:
            return original(self, batch, wait, **kwargs)
        finally:
            seconds.append(time.perf_counter() - started)

    XlsxWorkbook.write = write
    try:
        pipeline.improve(settings)
    finally:
        XlsxWorkbook.write = original
    return sum(seconds)


def costs(n: int, folder: Path) -> dict[str, float]:
    base = folder / f"drafts-{n}.xlsx"
    build_workbook(base, n)
    floor = statistics.median(round_trip(base, folder / "round-trip.xlsx") for _ in range(2))
    figures = {"floor": floor}
    settings = fresh(base, folder, "log1")
    figures["log 1"] = timed(lambda: traces.log_draft(ticket="One more ticket", draft="A reply.", settings=settings))
    settings = fresh(base, folder, "log100")
    records = [{"ticket": f"Ticket {i}", "draft": "A reply."} for i in range(100)]
    figures["log 100"] = timed(lambda: traces.log_drafts(records, settings))
    writes = []
    for _ in range(3):  # the median of three runs, each on a fresh copy: one write of 30 MB varies with the disk
        settings = fresh(base, folder, "improve")
        writes.append(improve_write(settings))
    figures["improve write"] = statistics.median(writes)
    title = next(t for t in XlsxWorkbook(settings.sheet).titles() if t.startswith(schema.EDITS_PREFIX))
    XlsxWorkbook(settings.sheet).write(WriteBatch(updates=[CellUpdate(title, 2, "approve", True)]))
    figures["apply 1"] = timed(lambda: approval.apply(settings))
    figures["rollback"] = timed(lambda: approval.rollback(settings))
    figures["judge 10"] = timed(lambda: judge.judge(settings, limit=10))
    figures["status"] = timed(lambda: status.status(settings))
    print(f"[{n:,}] {base.stat().st_size / 1e6:.0f} MB; openpyxl round trip {floor:.2f} s", file=sys.stderr, flush=True)
    return figures


def writers(base: Path, folder: Path, count: int, drafts: int) -> list[float]:
    """`count` writer processes, started together, each logging `drafts` drafts one call at a time:
    the seconds after the start at which each returned, in order."""
    settings = fresh(base, folder, f"writers-{count}-{drafts}")
    started = time.time()
    running = [subprocess.Popen([sys.executable, "-c", WRITER, settings.sheet, str(settings.prompt), str(drafts), str(w)],
                                stdout=subprocess.PIPE, cwd=ROOT, text=True) for w in range(count)]
    finished = sorted(float(w.communicate()[0].strip()) - started for w in running)
    table = XlsxWorkbook(settings.sheet).read([schema.DRAFTS])[schema.DRAFTS]
    logged = [r for _, r in table.records() if str(r.get("ticket", "")).startswith("writer ")]
    assert len(logged) == count * drafts == len({r["traceid"] for r in logged}), "lost or doubled drafts"
    return finished


def throughput(folder: Path) -> dict[str, list[float]]:
    base = folder / "drafts-10000.xlsx"
    if not base.exists():
        build_workbook(base, 10_000)
    return {"1 writer, 1 draft": writers(base, folder, 1, 1), "4 writers, 1 draft each": writers(base, folder, 4, 1),
            "1 writer, 25 drafts": writers(base, folder, 1, 25), "4 writers, 25 drafts each": writers(base, folder, 4, 25)}


def startup() -> tuple[float, float]:
    def seconds(command) -> float:
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            runs.append(time.perf_counter() - started)
        return statistics.median(runs)

    return seconds([str(Path(sys.executable).parent / "loop"), "status", "--help"]), seconds([sys.executable, "-c", "pass"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    args = parser.parse_args()
    columns = ["log 1", "log 100", "improve write", "apply 1", "judge 10", "rollback", "status"]
    with tempfile.TemporaryDirectory() as folder, FakeOpenAI() as model:
        folder = Path(folder)
        os.environ["OPENAI_BASE_URL"] = model.url
        rows = {int(n): costs(int(n), folder) for n in args.sizes.split(",")}
        logging = throughput(folder)
        help_seconds, python_seconds = startup()
    print("| drafts | openpyxl load + save | " + " | ".join(columns) + " |")
    print("|---:|---:|" + "---:|" * len(columns))
    for n, figures in rows.items():
        cells = [f"{figures[c] / figures['floor']:.3f}× ({figures[c]:.2f} s)" for c in columns]
        print(f"| {n:,} | {figures['floor']:.2f} s (1.0×) | " + " | ".join(cells) + " |")
    print("| target at 50,000 | | " + " | ".join(f"≤ {TARGETS[c]}×" if c in TARGETS else "" for c in columns) + " |")
    print()
    print("| writer processes logging at once, one call a draft, 10,000 rows | until the last returns | each returned at |")
    print("|---|---:|---|")
    for name, finished in logging.items():
        print(f"| {name} | {finished[-1]:.2f} s | {', '.join(f'{s:.2f}' for s in finished)} |")
    print()
    print(f"Start-up: `loop status --help` {help_seconds:.2f} s (a bare `python -c pass`: {python_seconds:.2f} s).")
    print(f"Machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}.")


if __name__ == "__main__":
    main()
