"""`loop report` over 1,000, 10,000 and 50,000 drafts written with 20 prompt versions (19 applied
edits, each failure with its pattern): its time on a local workbook, as a ratio to a bare read of the
Drafts tab with python-calamine in the same run (the least any report must do: read every review),
and its HTTP requests on a Google Sheet (the real gspread against the local fake Sheets API), which
must stay the same at any size.

Usage: .venv/bin/python benchmarks/bench_report.py [--sizes 1000,10000,50000]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("NO_GCE_CHECK", "true")

import openpyxl  # noqa: E402
from python_calamine import CalamineWorkbook  # noqa: E402

from loop import config, schema
from loop.cell_values import to_serial  # noqa: E402
from loop.measure import report  # noqa: E402
from loop.prompt_store import PromptStore  # noqa: E402
from tests.backends import KEY, service_account_key  # noqa: E402
from tests.fake_sheets import FakeSheets  # noqa: E402

VERSIONS = 20
PATTERNS = ["too long", "wrong menu path", "ignored the thread", "unrelated workaround", "cold tone"]
PROMPT = "# Support agent\nRead the whole thread before you answer.\nNever invent UI paths.\n"


def draft_rows(count: int, seed: int = 11) -> list[dict]:
    """Drafts spread evenly over the versions; each version a little better than the one before."""
    rng = random.Random(seed)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    rows = []
    for i in range(count):
        version = 1 + i * VERSIONS // count
        roll = rng.random()
        up_rate = 0.45 + 0.02 * version
        score = None if roll > 0.6 else ("👍" if rng.random() < up_rate else "👎")
        rows.append({"trace_id": f"t-{i:08d}", "created_at": now - timedelta(hours=count - i),
                     "ticket": f"Ticket {i}: my timesheet export is empty.", "draft": "Please try exporting again. " * 4,
                     "prompt_version": f"v{version}", "score": score,
                     "comment": "too long" if score == "👎" else None,
                     "judge_score": rng.choice(["👍", "👎"]) if rng.random() < 0.3 else None,
                     "judge_version": "v1", "pattern": rng.choice(PATTERNS) if score == "👎" else None})
    return rows


def edit_rows() -> list[list]:
    rows = [schema.EDIT_HEADERS]
    for version in range(2, VERSIONS + 1):
        values = {"edit_id": f"e{version}", "pattern": PATTERNS[version % len(PATTERNS)], "find": "x", "replace": "y",
                  "status": "applied", "applied_version": f"v{version}", "approve": True}
        rows.append([values.get(h) for h in schema.EDIT_HEADERS])
    return rows


def prompt_history(path: Path) -> None:
    path.write_text(PROMPT, encoding="utf-8")
    store = PromptStore(path)
    with store.lock():
        store.sync()
        for version in range(2, VERSIONS + 1):
            store.commit(PROMPT + f"Rule {version}.\n" * version, "apply", edits=[{"edit_id": f"e{version}"}])


def xlsx_workbook(path: Path, rows: list[dict]) -> None:
    book = openpyxl.Workbook(write_only=True)
    drafts = book.create_sheet(schema.DRAFTS)
    drafts.append(schema.DRAFT_HEADERS)
    for row in rows:
        drafts.append([row.get(h).replace(tzinfo=None) if h == "created_at" else row.get(h)
                       for h in schema.DRAFT_HEADERS])
    edits = book.create_sheet("Edits 2026-11-01 0900")
    for row in edit_rows():
        edits.append(row)
    book.save(path)


def bare_read(path: Path) -> float:
    started = time.perf_counter()
    CalamineWorkbook.from_path(str(path)).get_sheet_by_name(schema.DRAFTS).to_python()
    return time.perf_counter() - started


def best(action, times: int = 3) -> float:
    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return min(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as folder, FakeSheets() as fake:
        folder = Path(folder)
        key = service_account_key(folder / "key.json", fake.url + "/token")
        os.environ.update({"GOOGLE_APPLICATION_CREDENTIALS": str(key), "LOOP_SHEETS_API_ROOT": fake.url,
                           "LOOP_GOOGLE_TOKEN": str(folder / "none.json")})
        for size in sizes:
            rows = draft_rows(size)
            prompt = folder / f"prompt-{size}.md"
            prompt_history(prompt)
            path = folder / f"loop-{size}.xlsx"
            xlsx_workbook(path, rows)
            os.environ["LOOP_STORE"] = str(folder / f"loop-{size}.db")  # a store of its own, never the current folder's
            settings = config.resolve(sheet=str(path), prompt=str(prompt))
            floor = best(lambda: bare_read(path))
            local = best(lambda: report.refresh(settings))
            google_rows = [schema.DRAFT_HEADERS] + [
                [to_serial(r[h]) if h == "created_at" else r.get(h) for h in schema.DRAFT_HEADERS] for r in rows]
            fake.add_spreadsheet(KEY, {schema.DRAFTS: google_rows, "Edits 2026-11-01 0900": edit_rows()})
            google = config.resolve(sheet=KEY, prompt=str(prompt))
            report.refresh(google)  # the first refresh adds the Dashboard; the second replaces it
            fake.requests.clear()
            started = time.perf_counter()
            found = report.refresh(google)
            remote = time.perf_counter() - started
            assert len(found.versions) == VERSIONS and len(found.edits) == VERSIONS - 1
            results.append((size, floor, local, len(fake.requests), remote))
            print(f"{size}: done", file=sys.stderr, flush=True)
    print(f"`loop report`, {VERSIONS} prompt versions, {VERSIONS - 1} applied edits:\n")
    print("| drafts | bare read of Drafts (calamine) | report, local .xlsx | Sheets requests | report, Google (fake API) |")
    print("|---:|---:|---:|---:|---:|")
    for size, floor, local, requests, remote in results:
        print(f"| {size:,} | {floor:.2f} s (1.0×) | {local / floor:.2f}× ({local:.2f} s) | {requests} | {remote:.2f} s |")


if __name__ == "__main__":
    main()
