from __future__ import annotations

import os

# Google's auth library probes a cloud metadata server when no credentials are found: keep any
# such probe on this machine's loopback.
os.environ["NO_GCE_CHECK"] = "true"
os.environ["GCE_METADATA_HOST"] = os.environ["GCE_METADATA_IP"] = "127.0.0.1:9"
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner
from openpyxl.cell import WriteOnlyCell

from loop import schema
from loop.cli import main
from tests.fake_openai import FakeOpenAI

PROMPT = """# Support agent

You are the support agent for Tallyhive, a time-tracking app.
Read the ticket and search the knowledge base before you answer.
Never invent UI paths; copy them from the knowledge base.
Be friendly and professional in every reply.
Escalate billing disputes to a person.
"""

NOW = datetime.now(timezone.utc)


def draft(score="👎", comment="too long, two sentences would do", days_ago=1.0, **fields) -> dict:
    row = {
        "trace_id": fields.pop("trace_id", f"t-{uuid.uuid4().hex[:12]}"),
        "created_at": (NOW - timedelta(days=days_ago)).replace(tzinfo=None, microsecond=0),
        "ticket": "How do I export my timesheets?",
        "draft": "Go to Reports and choose Export.",
        "score": score,
        "comment": comment,
    }
    row.update(fields)
    return row


def write_workbook(path: Path, rows: list[dict], headers: list[str] | None = None) -> Path:
    """A workbook with a Drafts tab holding `rows` (values written as given: bools, dates, text)."""
    headers = headers or schema.DRAFT_HEADERS
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet(schema.DRAFTS)
    sheet.append(headers)
    keys = [h.lower().replace(" ", "_") for h in headers]
    for row in rows:
        sheet.append([_literal(sheet, row.get(key)) for key in keys])
    book.save(path)
    return path


def _literal(sheet, value):
    """Text as a person typed it: `=t1` stays text, as it would in a cell formatted as text."""
    if isinstance(value, str) and value.startswith("="):
        cell = WriteOnlyCell(sheet, value=value)
        cell.data_type = "s"
        return cell
    return value


@pytest.fixture(autouse=True)
def _prompt_cache(tmp_path_factory, monkeypatch):
    """Each test serves prompts from its own cache: a fresh process cache and its own disk copy."""
    from loop import serving

    monkeypatch.setenv("LOOP_PROMPT_CACHE", str(tmp_path_factory.mktemp("prompt-cache")))
    for name in ("LOOP_PROMPT_NAME", "LOOP_PROMPT_TTL"):
        monkeypatch.delenv(name, raising=False)
    serving.forget()
    yield
    serving.forget()


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A folder with a prompt, used as the working directory; the workbook is written by the test."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "support_agent.md").write_text(PROMPT, encoding="utf-8")
    for name in ("LOOP_SHEET", "LOOP_PROMPT", "LOOP_MODEL", "LOOP_MAX_INPUT_TOKENS", "LOOP_MAX_EDIT_CHARS",
                 "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def model(monkeypatch):
    """The fake model server, with the environment pointing the openai client at it."""
    with FakeOpenAI() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("LOOP_MAX_RETRIES", "2")
        monkeypatch.setenv("LOOP_TIMEOUT", "5")
        yield server


@pytest.fixture
def cli():
    runner = CliRunner()

    def run(*args, code=0):
        result = runner.invoke(main, list(args), catch_exceptions=False)
        output = result.output + (result.stderr if result.stderr_bytes is not None else "")
        assert result.exit_code == code, output
        return result

    return run


def add_chart(path: Path) -> None:
    """A Stats tab with a bar chart: a part openpyxl cannot keep when it saves."""
    from openpyxl.chart import BarChart, Reference

    book = openpyxl.load_workbook(path)
    stats = book.create_sheet("Stats")
    for row in (("week", "failures"), ("w1", 3), ("w2", 5)):
        stats.append(row)
    chart = BarChart()
    chart.add_data(Reference(stats, min_col=2, min_row=1, max_row=3), titles_from_data=True)
    stats.add_chart(chart, "D2")
    book.save(path)


def read_tab(path: Path, title: str) -> list[dict]:
    book = openpyxl.load_workbook(path)
    rows = list(book[title].iter_rows(values_only=True))
    return [dict(zip(rows[0], row)) for row in rows[1:]]


def tick(path: Path, title: str, rows, value=True) -> None:
    """A reviewer ticks `approve` on these rows of an Edits tab."""
    book = openpyxl.load_workbook(path)
    for row in rows:
        book[title].cell(row, 1).value = value
    book.save(path)


def edits_tab(path: Path) -> str:
    return next(t for t in openpyxl.load_workbook(path, read_only=True).sheetnames if t.startswith("Edits "))


@pytest.fixture(scope="session")
def google_key_file(tmp_path_factory):
    """One service-account key for the session (RSA key generation is the slow part)."""
    from tests.backends import service_account_key

    return service_account_key(tmp_path_factory.mktemp("keys") / "key.json", "http://127.0.0.1:1/token")


@pytest.fixture
def google(monkeypatch, tmp_path, google_key_file):
    """The fake Sheets API, and the environment pointing gspread and google-auth at it."""
    import json as _json

    from loop.sheets.google import RetryingHTTPClient
    from tests.fake_sheets import FakeSheets

    with FakeSheets() as fake:
        info = _json.loads(google_key_file.read_text())
        info["token_uri"] = fake.url + "/token"
        key = tmp_path / "service-account.json"
        key.write_text(_json.dumps(info))
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
        monkeypatch.setenv("LOOP_SHEETS_API_ROOT", fake.url)
        monkeypatch.setenv("LOOP_GOOGLE_TOKEN", str(tmp_path / "no-token.json"))
        monkeypatch.setattr(RetryingHTTPClient, "base_delay", 0.01)
        yield fake


@pytest.fixture(params=["xlsx", "google"])
def sheet(request, workspace, monkeypatch):
    """The workbook under test on each backend; LOOP_SHEET points at it."""
    from tests.backends import GoogleSheet, XlsxSheet

    if request.param == "google":
        target = GoogleSheet(request.getfixturevalue("google"))
    else:
        target = XlsxSheet(workspace)
    monkeypatch.setenv("LOOP_SHEET", target.location)
    return target


# A real PostgreSQL server for the store's tests. .ci/run starts one with scripts/postgres.sh and
# sets LOOP_TEST_POSTGRES; on a developer's machine the tests skip, with a hint, when it is unset.
POSTGRES_HINT = ("no PostgreSQL server: run `scripts/postgres.sh start /tmp/loop-pg` and set "
                 "LOOP_TEST_POSTGRES to the URL it prints")
_postgres_skipped = False


def _no_postgres(reason: str):
    """Under CI a missing server is a broken run, not a reason to skip."""
    global _postgres_skipped
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    _postgres_skipped = True
    pytest.skip(POSTGRES_HINT)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The admin URL of the test server (a role with CREATEDB), checked once to answer."""
    url = os.environ.get("LOOP_TEST_POSTGRES")
    if not url:
        _no_postgres("LOOP_TEST_POSTGRES is not set under CI; .ci/run starts the server")
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as error:
        _no_postgres(f"the PostgreSQL server in LOOP_TEST_POSTGRES does not answer: {error}")
    return url


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh, empty database for one test, dropped afterwards even if the test left it connected."""
    from urllib.parse import urlsplit

    import psycopg
    from psycopg import sql

    name = f"loop_test_{uuid.uuid4().hex}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield urlsplit(postgres_server)._replace(path="/" + name).geturl()
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                      " WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """The store under test on each database; only the PostgreSQL case needs a server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return request.getfixturevalue("postgres_url")


def pytest_terminal_summary(terminalreporter):
    if _postgres_skipped:
        terminalreporter.write_line(f"PostgreSQL tests skipped, {POSTGRES_HINT}")


class PrivateServer:
    """A PostgreSQL cluster of the tests' own, for the tests that restart a server: the shared one
    in LOOP_TEST_POSTGRES is never stopped or reconfigured."""

    def __init__(self, folder: str, port: int, url: str):
        self.folder, self.port, self.url = folder, port, url

    def _script(self, *args: str) -> str:
        import subprocess

        script = Path(__file__).resolve().parents[1] / "scripts" / "postgres.sh"
        done = subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"scripts/postgres.sh {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout.strip()

    def start(self) -> None:
        """Start it again. Clients retrying a stopped server's port can, now and then, hold that very
        port for an instant (a TCP connect to a closed local port may connect to itself), so a start
        refused for an address in use is tried again."""
        import time

        for attempt in range(10):
            try:
                self._script("start", self.folder, str(self.port))
                return
            except RuntimeError as refused:
                if "Address already in use" not in str(refused) or attempt == 9:
                    raise
                time.sleep(0.5)

    def stop(self) -> None:
        self._script("stop", self.folder)

    def database(self) -> str:
        """A fresh database on this server."""
        import psycopg

        name = f"loop_test_{uuid.uuid4().hex}"
        with psycopg.connect(self.url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def private_postgres(postgres_server):
    """A private cluster on the first free port of 54340-54349, started once per test process, stopped at the end."""
    import glob
    import shutil
    import socket
    import tempfile

    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        _no_postgres("no PostgreSQL binaries for a private cluster (apt-get install postgresql)")
    from filelock import FileLock, Timeout

    folder = tempfile.mkdtemp(dir="/tmp", prefix="loop-private-pg-")
    os.chmod(folder, 0o755)
    # A port is held by its own lock for the whole session: a probe alone is no reservation, since
    # a test that stops its server frees the port, and another test process would take it.
    held = None
    for port in range(54340, 54350):
        lock = FileLock(f"/tmp/loop-private-pg-{port}.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)):
                held = lock
                break
        lock.release()
    if held is None:
        _no_postgres("no free port in 54340-54349 for a private PostgreSQL cluster")
    server = PrivateServer(folder, port, f"postgresql://loop:loop@127.0.0.1:{port}/postgres")
    try:
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            held.release()
        shutil.rmtree(folder, ignore_errors=True)
