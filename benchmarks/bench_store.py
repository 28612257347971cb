"""The store's figures: what a logged draft costs, a fleet of agent hosts, and `loop archive`.

- `log_draft(wait=False)`: p50 and p99 over 300 calls on SQLite and on PostgreSQL, with 1,000 and
  50,000 drafts already in the sheet and the store, against a floor measured in the same run (one
  bare INSERT and COMMIT through the same driver).
- A fleet: 8 writer processes in 8 folders (standing for 8 hosts), 25 drafts each with
  `wait=False`, one PostgreSQL, one `loop sync --watch 1`, a Google Sheet (the local fake Sheets
  API under the real gspread): seconds until the last draft is in the sheet, every draft once and
  each writer's in order, and the write requests a minute that took.
- `loop archive` of 40,000 of 50,000 rows of a local workbook, against an openpyxl load and save
  of the same file.

PostgreSQL: LOOP_BENCH_POSTGRES or LOOP_TEST_POSTGRES (an admin URL), else a server started with
scripts/postgres.sh. Usage: .venv/bin/python benchmarks/bench_store.py [--sizes 1000,50000]
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
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("NO_GCE_CHECK", "true")

import openpyxl  # noqa: E402
from bench_improve import PROMPT, build_workbook  # noqa: E402

from loop import config, log_draft, schema  # noqa: E402
from loop.store import Store, identity_of  # noqa: E402

CALLS = 300
WRITER = """
import sys
from loop import log_draft
for i in range(25):
    log_draft(ticket=f"host {sys.argv[1]} ticket {i}", draft="A reply.", wait=False)
"""


def postgres_admin() -> str:
    url = os.environ.get("LOOP_BENCH_POSTGRES") or os.environ.get("LOOP_TEST_POSTGRES")
    if url:
        return url
    done = subprocess.run(["bash", str(ROOT / "scripts" / "postgres.sh"), "start", "/tmp/loop-bench-pg", "54331"],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def new_database(admin: str) -> str:
    import psycopg

    name = f"loop_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return admin.rsplit("/", 1)[0] + "/" + name


def floor_commit(url: str) -> float:
    """One bare INSERT and COMMIT through the same driver: the least a durable log can cost (median s)."""
    from loop.store.db import Database

    database = Database(url + ("_floor" if url.startswith("sqlite") else ""))
    database.execute("CREATE TABLE IF NOT EXISTS floor (id TEXT, body TEXT)")
    times = []
    for _ in range(CALLS):
        started = time.perf_counter()
        with database.transaction() as db:
            db.execute("INSERT INTO floor (id, body) VALUES (?, ?)", (str(uuid.uuid4()), "A reply."))
        times.append(time.perf_counter() - started)
    database.close()
    return statistics.median(times)


def latency(store_url: str, folder: Path, rows: int, base: Path) -> tuple[float, float]:
    """p50 and p99 seconds of log_draft(wait=False) with `rows` drafts in the sheet and the store."""
    shutil.copy(base, folder / "loop.xlsx")
    (folder / "prompt.md").write_text(PROMPT, encoding="utf-8")
    settings = config.resolve(sheet=str(folder / "loop.xlsx"), prompt=str(folder / "prompt.md"), store=store_url)
    outbox = Store(store_url).workbook(identity_of(settings.sheet, None, store_url), settings.sheet)
    outbox.add_many([([{"trace_id": f"t-{i:08d}", "created_at": "2026-11-20T10:00:00Z", "ticket": "earlier",
                        "draft": "A reply."} for i in range(rows)], "delivered")])
    log_draft(ticket="warm-up", draft="A reply.", settings=settings, wait=False)
    times = []
    for i in range(CALLS):
        started = time.perf_counter()
        log_draft(ticket=f"ticket {i}", draft="A reply.", settings=settings, wait=False)
        times.append(time.perf_counter() - started)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99) - 1]


def fleet(admin: str, folder: Path) -> dict:
    from tests.backends import KEY, service_account_key
    from tests.fake_sheets import FakeSheets

    store_url = new_database(admin)
    folder.mkdir()
    with FakeSheets() as fake:
        fake.add_spreadsheet(KEY, {schema.DRAFTS: [schema.DRAFT_HEADERS]})
        key = service_account_key(folder / "key.json", fake.url + "/token")
        env = {**os.environ, "GOOGLE_APPLICATION_CREDENTIALS": str(key), "LOOP_SHEETS_API_ROOT": fake.url,
               "LOOP_GOOGLE_TOKEN": str(folder / "none.json"), "LOOP_SHEET": KEY, "LOOP_STORE": store_url,
               "PYTHONPATH": str(ROOT)}
        hosts = []
        for n in range(8):
            (folder / f"host{n}").mkdir()
            hosts.append(folder / f"host{n}")
        (folder / "sync").mkdir()
        fake.requests.clear()
        started = time.perf_counter()
        watcher = subprocess.Popen([sys.executable, "-m", "loop", "sync", "--watch", "1"], cwd=folder / "sync",
                                   env=env, stderr=subprocess.PIPE, text=True)
        writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(n)], cwd=host, env=env)
                   for n, host in enumerate(hosts)]
        logged = None
        while len(fake.values(KEY, schema.DRAFTS)) < 1 + 8 * 25 and time.perf_counter() - started < 300:
            if logged is None and all(writer.poll() is not None for writer in writers):
                logged = time.perf_counter() - started
            time.sleep(0.02)
        in_sheet = time.perf_counter() - started
        for writer in writers:
            assert writer.wait(timeout=300) == 0
        logged = logged or time.perf_counter() - started
        watcher.terminate()
        watcher.wait(timeout=30)
        values = fake.values(KEY, schema.DRAFTS)
        column = values[0].index("ticket")
        got = [row[column] for row in values[1:]]
        assert sorted(got) == sorted(f"host {n} ticket {i}" for n in range(8) for i in range(25)), "lost or doubled"
        for n in range(8):
            assert [t for t in got if t.startswith(f"host {n} ")] == [f"host {n} ticket {i}" for i in range(25)]
        writes = sum(1 for r in fake.requests if r["method"] == "POST" and r["path"].endswith(":batchUpdate"))
        return {"logged": logged, "in_sheet": in_sheet, "writes": writes, "requests": len(fake.requests),
                "per_minute": writes / in_sheet * 60}


def archive_cost(folder: Path) -> tuple[float, float]:
    """(openpyxl load + save, loop archive of 40,000 of 50,000 rows), seconds; the store already holds
    the drafts and their reviews, as it does once any command has read them."""
    from datetime import datetime, timedelta, timezone

    from loop.collect import archive
    from loop.workspace import Workspace

    path = folder / "archive" / "loop.xlsx"
    path.parent.mkdir()
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet(schema.DRAFTS)
    sheet.append(schema.DRAFT_HEADERS)
    now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    for i in range(50_000):
        old = i < 40_000
        row = {"trace_id": f"t-{i:08d}", "created_at": now - timedelta(days=200 if old else 1),
               "ticket": f"Ticket {i}: " + "my export is empty. " * 20, "draft": "Please try again. " * 40,
               "score": "👍" if i % 3 else "👎", "comment": "too long" if i % 3 == 0 else None}
        sheet.append([row.get(h) for h in schema.DRAFT_HEADERS])
    book.save(path)
    started = time.perf_counter()
    openpyxl.load_workbook(path, rich_text=True).save(folder / "archive" / "copy.xlsx")
    floor = time.perf_counter() - started
    (folder / "archive" / "prompt.md").write_text(PROMPT, encoding="utf-8")
    workspace = Workspace(config.resolve(sheet=str(path), prompt=str(folder / "archive" / "prompt.md")))
    drafts, _ = workspace.drafts(workspace.workbook.read([schema.DRAFTS])[schema.DRAFTS])  # as an earlier report has
    assert len(drafts) == 50_000
    started = time.perf_counter()
    report = archive.archive(workspace, "90d")
    seconds = time.perf_counter() - started
    assert report.archived == 40_000 and report.left == 10_000, report
    return floor, seconds


def startup() -> tuple[float, float, float]:
    """Medians of 5: `loop status --help`, `loop log` of one draft into a small workbook, `python -c pass`."""
    loop = str(Path(sys.executable).parent / "loop")
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([loop, "init"], cwd=folder, check=True, capture_output=True)

        def seconds(command) -> float:
            runs = []
            for _ in range(5):
                started = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True, cwd=folder)
                runs.append(time.perf_counter() - started)
            return statistics.median(runs)

        return (seconds([loop, "status", "--help"]), seconds([loop, "log", "--ticket", "t", "--draft", "d"]),
                seconds([sys.executable, "-c", "pass"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,50000")
    parser.add_argument("--skip", default="", help="comma-separated: latency, fleet, archive, startup")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    admin = postgres_admin()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        if "latency" not in skip:
            print("| store | drafts in sheet and store | bare commit (floor) | log_draft(wait=False) p50 | p99 | target |")
            print("|---|---:|---:|---:|---:|---|")
            for size in (int(s) for s in args.sizes.split(",")):
                base = folder / f"base-{size}.xlsx"
                build_workbook(base, size)
                for kind in ("SQLite", "PostgreSQL"):
                    work = folder / f"{kind}-{size}"
                    work.mkdir()
                    url = f"sqlite:///{work / 'loop.db'}" if kind == "SQLite" else new_database(admin)
                    floor = floor_commit(url)
                    p50, p99 = latency(url, work, size, base)
                    print(f"| {kind} | {size:,} | {floor * 1000:.2f} ms (1.0×) | {p50 * 1000:.2f} ms ({p50 / floor:.1f}×) "
                          f"| {p99 * 1000:.2f} ms ({p99 / floor:.1f}×) | p50 ≤ 5 ms, p99 ≤ 50 ms |", flush=True)
            print()
        if "fleet" not in skip:
            figures = fleet(admin, folder / "fleet")
            print("| fleet: 8 hosts × 25 drafts, one PostgreSQL, one `loop sync --watch 1`, Google Sheet | figure |")
            print("|---|---:|")
            print(f"| every writer done logging | {figures['logged']:.2f} s |")
            print(f"| the last draft in the sheet | {figures['in_sheet']:.2f} s |")
            print(f"| Sheets write requests (batchUpdate) / all requests | {figures['writes']} / {figures['requests']} |")
            print(f"| write requests a minute, over that run | {figures['per_minute']:.0f} (Google allows 60) |")
            print()
        if "archive" not in skip:
            floor, seconds = archive_cost(folder)
            print(f"`loop archive` of 40,000 of 50,000 rows: {seconds:.2f} s, {seconds / floor:.3f}× an openpyxl load "
                  f"+ save of the same workbook ({floor:.2f} s), in one write.")
            print()
        if "startup" not in skip:
            help_seconds, log_seconds, python_seconds = startup()
            print(f"Start-up: `loop status --help` {help_seconds:.2f} s, `loop log` of one draft {log_seconds:.2f} s "
                  f"(a bare `python -c pass`: {python_seconds:.2f} s).")
    print(f"Machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}.")


if __name__ == "__main__":
    main()
