"""`loop report` and the digest (CONTRACT §3 Dashboard, §5a): figures from a workbook whose outcomes
per version are known, the Dashboard written whole on both backends with its chart, a refresh that
touches no other tab, a warning that never acts, and the webhook post that never fails a run."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest

from loop import schema
from loop.measure import proportions
from loop.measure.report import DASHBOARD, EDIT_HEADERS, JUDGE_HEADERS, VERSION_HEADERS
from loop.prompt_store import PromptStore
from tests.backends import KEY
from tests.conftest import PROMPT, draft
from tests.local_server import LocalServer

EDITS_TAB = "Edits 2026-11-10 0900"
# version → (👍, 👎 with pattern "too long", 👎 with pattern "wrong path")
OUTCOMES = {"v1": (30, 30, 20), "v2": (55, 6, 24), "v3": (20, 40, 20)}


def history(workspace: Path) -> None:
    """Three versions of the prompt: v2 applied edit e-short, v3 applied edit e-cite."""
    store = PromptStore(workspace / "prompts" / "support_agent.md")
    store.sync()
    store.commit(PROMPT + "Keep replies under 120 words.\n", "apply", edits=[{"edit_id": "e-short"}])
    store.commit(PROMPT + "Keep replies under 120 words.\nCite the article you used.\n", "apply",
                 edits=[{"edit_id": "e-cite"}])


def known_drafts() -> list[dict]:
    rows, n = [], 0
    for version, (up, long_, wrong) in OUTCOMES.items():
        for score, pattern, count in (("👍", None, up), ("👎", "too long", long_), ("👎", "wrong path", wrong)):
            for _ in range(count):
                rows.append(draft(score=score, pattern=pattern, prompt_version=version, trace_id=f"t{n}"))
                n += 1
    rows += [draft(score=None, judge_score="👍", judge_version="v1", prompt_version="v3", trace_id=f"j{i}")
             for i in range(4)]
    # the judge against people on v2 drafts: person 👍 judge 👍 ×6, 👍/👎 ×2, 👎/👍 ×1, 👎/👎 ×3
    for i, (person, judge) in enumerate([("👍", "👍")] * 6 + [("👍", "👎")] * 2 + [("👎", "👍")] + [("👎", "👎")] * 3):
        rows.append(draft(score=person, judge_score=judge, judge_version="v2", prompt_version="v2", trace_id=f"b{i}",
                          pattern="wrong path" if person == "👎" else None))
    return rows


def edits_rows() -> list[list]:
    def row(edit_id, pattern, version):
        values = {"approve": True, "edit_id": edit_id, "pattern": pattern, "find": "x", "replace": "y",
                  "rationale": "r", "evidence": "t1", "status": "applied", "applied_version": version}
        return [values.get(h, None) for h in schema.EDIT_HEADERS]

    return [schema.EDIT_HEADERS, row("e-short", "too long", "v2"), row("e-cite", "wrong path", "v3")]


def create(sheet, rows: list[dict]) -> None:
    """Drafts, an Edits tab with the two applied edits, and (on Google) a Notes tab."""
    sheet.create(rows)
    if sheet.name == "xlsx":
        book = openpyxl.load_workbook(sheet.path)
        tab = book.create_sheet(EDITS_TAB)
        for values in edits_rows():
            tab.append(values)
        book.save(sheet.path)
    else:
        sheet.fake.add_spreadsheet(KEY, {schema.DRAFTS: sheet.fake.values(KEY, schema.DRAFTS),
                                         EDITS_TAB: edits_rows(), "Notes": [["kept as it is"]]})


def dashboard_rows(sheet) -> list[list]:
    if sheet.name == "xlsx":
        return [list(r) for r in openpyxl.load_workbook(sheet.path)[DASHBOARD].iter_rows(values_only=True)]
    return sheet.fake.values(KEY, DASHBOARD)


def section(rows: list[list], headers: list[str]) -> list[dict]:
    """The data rows under a section's header row, as dicts."""
    start = next(i for i, r in enumerate(rows) if r and r[0] == headers[0] and list(r[:len(headers)]) == headers)
    found = []
    for row in rows[start + 1:]:
        row = list(row or [])
        if not row or all(v in (None, "") for v in row):
            break
        found.append(dict(zip(headers, row + [None] * (len(headers) - len(row)))))
    return found


def test_figures_match_known_outcomes_on_both_backends(sheet, workspace, cli):
    history(workspace)
    create(sheet, known_drafts())
    result = cli("report", "--json")
    figures = json.loads(result.stdout)
    versions = {v["version"]: v for v in figures["versions"]}
    assert list(versions) == ["v1", "v2", "v3"]
    # v2 also holds the 12 drafts the judge and a person both scored: 8 👍, 4 👎
    expected = {"v1": (30, 80), "v2": (63, 97), "v3": (20, 80)}
    for label, (up, reviewed) in expected.items():
        v = versions[label]
        assert (v["up"], v["reviewed"]) == (up, reviewed)
        assert v["rate"] == pytest.approx(up / reviewed)
        assert (v["low"], v["high"]) == pytest.approx(proportions.wilson(up, reviewed))
        assert v["current_from"]
    assert versions["v3"]["drafts"] == 84 and versions["v3"]["judged"] == 4 and versions["v3"]["judge_rate"] == 1.0
    assert versions["v3"]["current_until"] == "now" and versions["v1"]["current_until"] != "now"
    assert versions["v2"]["verdict"] == "better" and versions["v3"]["verdict"] == "worse"
    # the warning names rollback, and nothing was rolled back
    assert "loop rollback" in figures["warning"] and "v3" in figures["warning"]
    assert "loop rollback" in result.stderr
    assert PromptStore(workspace / "prompts" / "support_agent.md").current().label == "v3"

    edits = {e["edit_id"]: e for e in figures["edits"]}
    short = edits["e-short"]  # "too long" was 30 of v1's 50 failures, then 6 of v2's 34
    assert (short["before"], short["pattern_before"], short["failures_before"]) == ("v1", 30, 50)
    assert (short["pattern_after"], short["failures_after"], short["verdict"]) == (6, 34, "helped")
    cite = edits["e-cite"]  # "wrong path" was 28 of v2's 34, then 20 of v3's 60: its share fell too
    assert (cite["pattern_before"], cite["failures_before"], cite["pattern_after"], cite["failures_after"]) == (28, 34, 20, 60)

    judge = figures["judge"]
    assert [(j["rubric"], j["both"], j["agree"]) for j in judge] == [("v2", 12, 9)]
    # po = 9/12; pe = (8/12)(7/12) + (4/12)(5/12) = 76/144; kappa = (0.75 − 76/144) / (1 − 76/144) = 32/68
    assert judge[0]["kappa"] == pytest.approx(32 / 68)
    assert judge[0]["confusion"] == {"person up, judge up": 6, "person up, judge down": 2,
                                     "person down, judge up": 1, "person down, judge down": 3}

    rows = dashboard_rows(sheet)
    assert rows[0][0].startswith("Now v3") and "25% 👍 (17–35%) of 80 reviews" in rows[0][0]
    assert "-40 points on v2, worse (p < 0.001)" in rows[0][0] and "its edit: helped" in rows[0][0]
    assert rows[1][0].startswith("Dashboard, refreshed")
    assert rows[2][0].startswith("⚠ ") and "loop rollback" in rows[2][0]
    shown = section(rows, VERSION_HEADERS)
    assert [(r["version"], r["reviewed"], r["👍"], r["👍 rate %"]) for r in shown] == [
        ("v1", 80, 30, 37.5), ("v2", 97, 63, 64.9), ("v3 (current)", 80, 20, 25)]
    assert [r["compared with"] for r in shown] == [None, "v1", "v2"] and shown[2]["p"] == "< 0.001"
    assert shown[2]["verdict"] == "worse" and shown[2]["judge only"] == 4
    assert [(r["change"], r["edit_id"], r["share before %"], r["share after %"], r["verdict"])
            for r in section(rows, EDIT_HEADERS)] == [("Before: x\nAfter: y", "e-short", 60, 17.6, "helped"), ("Before: x\nAfter: y", "e-cite", 82.4, 33.3, "helped")]
    assert [(r["rubric"], r["both scored"], r["kappa"]) for r in section(rows, JUDGE_HEADERS)] == [("v2", 12, 0.47)]


def test_a_refresh_replaces_the_dashboard_keeps_its_chart_and_touches_nothing_else(sheet, workspace, cli):
    history(workspace)
    create(sheet, known_drafts())
    if sheet.name == "xlsx":  # reviews added between refreshes show in the next one
        cli("report")
        book = openpyxl.load_workbook(sheet.path)
        drafts = book[schema.DRAFTS]
        for i in range(10):
            late = draft(score="👍", prompt_version="v3", trace_id=f"late{i}")
            drafts.append([late.get(h) for h in schema.DRAFT_HEADERS])
        book.save(sheet.path)
    cli("report")
    before = sheet.snapshot()
    cli("report")
    if sheet.name == "xlsx":
        import zipfile

        with zipfile.ZipFile(sheet.path) as after_zip:
            after = {i.filename: after_zip.read(i.filename) for i in after_zip.infolist()}
        import io

        with zipfile.ZipFile(io.BytesIO(before)) as before_zip:
            earlier = {i.filename: before_zip.read(i.filename) for i in before_zip.infolist()}
        changed = {name for name in after if earlier.get(name) != after[name]} | (set(earlier) - set(after))
        # the Dashboard's sheet, its chart and drawing (renamed on each refresh) and their listings only
        assert all(n.startswith(("xl/worksheets/sheet3", "xl/worksheets/_rels/sheet3", "xl/drawings/", "xl/charts/"))
                   or n == "[Content_Types].xml" for n in changed), changed
        assert earlier["xl/worksheets/sheet1.xml"] == after["xl/worksheets/sheet1.xml"]
        book = openpyxl.load_workbook(sheet.path)
        assert book.sheetnames == [schema.DRAFTS, EDITS_TAB, DASHBOARD]
        charts = book[DASHBOARD]._charts
        assert len(charts) == 1 and len(charts[0].series) == 3
        assert sum(n.startswith("xl/charts/") for n in after) == 1
        v3 = next(r for r in section(dashboard_rows(sheet), VERSION_HEADERS) if r["version"] == "v3 (current)")
        assert v3["reviewed"] == 90
    else:
        after = sheet.snapshot()
        assert {t: v for t, v in after.items() if t != DASHBOARD} == {t: v for t, v in before.items() if t != DASHBOARD}
        assert sheet.titles() == [schema.DRAFTS, EDITS_TAB, "Notes", DASHBOARD]
        charts = sheet.fake.charts(KEY, DASHBOARD)
        assert len(charts) == 1
        spec = charts[0]["spec"]["basicChart"]
        assert spec["chartType"] == "LINE" and len(spec["series"]) == 3
        sent = [r for q in sheet.fake.requests if q["path"].endswith(":batchUpdate") for r in q["body"]["requests"]]
        assert sum("addChart" in r for r in sent) == 2 and sum("deleteSheet" in r for r in sent) == 1
        assert sent[-1]["addChart"]["chart"]["position"]["overlayPosition"]["anchorCell"]["sheetId"] == \
            google_id(sheet)


def google_id(sheet) -> int:
    return sheet.fake.properties(KEY, DASHBOARD)["sheetId"]


def test_the_dashboard_stays_where_a_reviewer_moved_it_on_google(google, workspace, cli):
    from tests.backends import GoogleSheet

    sheet = GoogleSheet(google)
    history(workspace)
    create(sheet, known_drafts())
    cli("report", "--sheet", KEY)
    dashboard = google._sheet(KEY, DASHBOARD)
    sheets = google._books[KEY]["sheets"]
    sheets.remove(dashboard)
    sheets.insert(0, dashboard)  # the reviewer drags it to the front
    from tests.fake_sheets import reindex

    reindex(sheets)
    google.requests.clear()
    cli("report", "--sheet", KEY)
    assert google.titles(KEY)[0] == DASHBOARD
    # metadata, one read of the tabs, one write: however many drafts
    assert [r["path"].rsplit("/", 1)[-1] for r in google.requests] == [KEY, "values:batchGet", f"{KEY}:batchUpdate"]


def test_no_warning_when_the_newest_version_is_not_worse(sheet, workspace, cli):
    history(workspace)
    rows = [r for r in known_drafts() if r.get("prompt_version") != "v3"]
    create(sheet, rows)
    result = cli("report")
    assert "loop rollback" not in result.output
    assert "v2" in result.stdout and "better" in result.stdout
    assert "Wrote tab 'Dashboard'" in result.stdout


def test_small_samples_say_too_few_to_tell(sheet, workspace, cli):
    history(workspace)
    sheet.create([draft(score="👍", prompt_version="v1"), draft(score="👎", prompt_version="v1"),
                  draft(score="👎", prompt_version="v2"), draft(score=None, prompt_version="v2")])
    figures = json.loads(cli("report", "--json").stdout)
    v2 = figures["versions"][1]
    assert (v2["reviewed"], v2["verdict"], v2["p_value"]) == (1, "too few to tell", None)
    assert v2["low"] == 0 and v2["high"] == pytest.approx(proportions.wilson(0, 1)[1])
    assert figures["warning"] == ""


def test_report_on_an_empty_workbook(sheet, workspace, cli):
    sheet.create([])
    result = cli("report")
    assert "No drafts carry a prompt version yet." in result.stdout
    rows = dashboard_rows(sheet)
    assert any(r and r[0] == "No applied edit yet." for r in rows)


class Webhook(LocalServer):
    """A Slack-compatible incoming webhook: records each JSON body, answers `status`."""

    def __init__(self, status: int = 200):
        super().__init__()
        self.status, self.posts = status, []

    def handle(self, handler) -> None:
        length = int(handler.headers.get("Content-Length", 0))
        self.posts.append((handler.path, json.loads(handler.rfile.read(length))))
        body = b"ok" if self.status == 200 else b"no_service"
        handler.send_response(self.status)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


def test_report_posts_a_digest(workspace, cli, monkeypatch, tmp_path):
    from tests.backends import XlsxSheet

    sheet = XlsxSheet(workspace)
    history(workspace)
    create(sheet, known_drafts())
    with Webhook() as hook:
        monkeypatch.setenv("LOOP_NOTIFY_URL", hook.root + "/services/T0/B0/secret")
        cli("report")
    (path, body), = hook.posts
    assert path == "/services/T0/B0/secret"
    text = body["text"]
    assert "v3" in text and "25%" in text and "of 80 reviewed" in text
    shipped = next(line for line in text.splitlines() if line.startswith("• too long: "))  # named by its change
    assert shipped.endswith(": helped") and "e-short" not in shipped
    assert "loop rollback" in text and str(sheet.path.resolve()) in text


def test_improve_posts_a_digest_with_a_link_to_the_tab(google, workspace, model, cli):
    from tests.backends import GoogleSheet

    sheet = GoogleSheet(google)
    sheet.create([draft(trace_id=f"t{i}", prompt_version="v1") for i in range(4)]
                 + [draft(score="👍", trace_id="u1", prompt_version="v1")])
    with Webhook() as hook:
        result = cli("improve", "--sheet", KEY, "--no-check", "--notify", hook.root + "/hook")
    (_, body), = hook.posts
    text = body["text"]
    title = next(t for t in sheet.titles() if t.startswith(schema.EDITS_PREFIX))
    gid = google.properties(KEY, title)["sheetId"]
    assert f"https://docs.google.com/spreadsheets/d/{KEY}/edit#gid={gid}" in text
    assert "4 failures" in text and "edits proposed" in text
    assert "Newest prompt version v1: 👍 20% of 5 reviewed" in text
    assert "warning" not in result.output


@pytest.mark.parametrize("status", [500, 404, None])
def test_a_dead_webhook_only_warns(workspace, cli, monkeypatch, status):
    from tests.backends import XlsxSheet

    sheet = XlsxSheet(workspace)
    sheet.create([draft(score="👍", prompt_version="v1")])
    if status is None:  # nothing listens there
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
        result = cli("report", "--notify", url)
    else:
        with Webhook(status) as hook:
            result = cli("report", "--notify", hook.root + "/services/secret-path")
    assert "warning: The digest was not posted to http://127.0.0.1" in result.stderr
    assert "secret-path" not in result.output + result.stderr
    assert DASHBOARD in sheet.titles()


def test_digest_text_from_reviewers_and_the_model_cannot_mention_or_link():
    from loop.measure import digest

    assert digest.escape("<!channel> & <https://evil|click>") == "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;"


@pytest.mark.parametrize("title", ["Dashboard", "dashboard"])
def test_a_dashboard_tab_loop_did_not_write_is_never_replaced(sheet, workspace, cli, title):
    sheet.create([draft(score="👍", prompt_version="v1")])
    if sheet.name == "xlsx":
        book = openpyxl.load_workbook(sheet.path)
        book.create_sheet(title).append(["Our team's KPIs", 42])
        book.save(sheet.path)
    else:
        sheet.fake.add_spreadsheet(KEY, {schema.DRAFTS: sheet.fake.values(KEY, schema.DRAFTS),
                                         title: [["Our team's KPIs", 42]]})
    before = sheet.snapshot()
    result = cli("report", code=2)
    assert f"a tab '{title}' that loop did not write" in result.output and "rename" in result.output
    assert sheet.snapshot() == before
