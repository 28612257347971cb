"""HTTP requests per `loop improve` and per `loop apply` on a Google Sheet, at 100, 5,000 and
50,000 drafts: the count must stay the same whatever the size (Google allows about 60 reads and
60 writes a minute per user). Runs the real gspread and google-auth against the local fake Sheets
API (tests/fake_sheets.py) and the local fake model (tests/fake_openai.py).

Usage: .venv/bin/python benchmarks/bench_google.py [--sizes 100,5000,50000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("NO_GCE_CHECK", "true")

from loop import config, schema
from loop.cell_values import to_serial  # noqa: E402
from loop.improver import pipeline  # noqa: E402
from loop.ship import approval
from tests.backends import KEY, service_account_key  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402
from tests.fake_sheets import FakeSheets  # noqa: E402

COMMENTS = ["too long", "menu path doesn't exist", "read the thread", "unrelated workaround", "rude tone"]


def drafts(count: int) -> list[list]:
    now = datetime.now(timezone.utc)
    rows = [schema.DRAFT_HEADERS]
    for i in range(count):
        score = "👎" if i % 7 == 0 else ("👍" if i % 7 == 1 else None)
        record = {"trace_id": f"t{i}", "created_at": to_serial(now - timedelta(hours=i % 240)),
                  "ticket": f"Ticket {i}: my timesheet export is empty.", "draft": "Please try exporting again. " * 4,
                  "score": score, "comment": COMMENTS[i % 5] if score == "👎" else None}
        rows.append([record.get(h) for h in schema.DRAFT_HEADERS])
    return rows


def measure(size: int, fake: FakeSheets, settings) -> tuple[int, int, float]:
    fake.add_spreadsheet(KEY, {schema.DRAFTS: drafts(size)})
    fake.requests.clear()
    started = time.perf_counter()
    report = pipeline.improve(settings)
    improve_requests = len(fake.requests)
    fake._sheet(KEY, report.edits_tab)["cells"][(1, 0)] = True  # a reviewer ticks the first edit
    fake.requests.clear()
    approval.apply(settings)
    return improve_requests, len(fake.requests), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,5000,50000")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    with tempfile.TemporaryDirectory() as folder, FakeSheets() as fake, FakeOpenAI() as model:
        folder = Path(folder)
        key = service_account_key(folder / "key.json", fake.url + "/token")
        os.environ.update({"GOOGLE_APPLICATION_CREDENTIALS": str(key), "LOOP_SHEETS_API_ROOT": fake.url,
                           "OPENAI_BASE_URL": model.url, "OPENAI_API_KEY": "fake-key",
                           "LOOP_GOOGLE_TOKEN": str(folder / "none.json")})
        print("| drafts | requests per improve | requests per apply | seconds (improve + apply) |")
        print("|---:|---:|---:|---:|")
        for size in sizes:
            prompt = folder / f"prompt-{size}.md"
            prompt.write_text("# Support agent\nRead the whole thread before you answer.\nNever invent UI paths.\n")
            os.environ["LOOP_STORE"] = str(folder / f"loop-{size}.db")  # a store of its own, never the current folder's
            settings = config.resolve(sheet=KEY, prompt=str(prompt))
            improve_requests, apply_requests, seconds = measure(size, fake, settings)
            print(f"| {size:,} | {improve_requests} | {apply_requests} | {seconds:.1f} |", flush=True)
        print(json.dumps({"token_requests": fake.token_requests}), file=sys.stderr)


if __name__ == "__main__":
    main()
