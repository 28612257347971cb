"""The Google Sheets backend's own promises (issue: one behaviour, two backends): credentials and
their errors, set-up, checkboxes, a constant number of requests, retries, and all-or-nothing writes."""

import json

from loop import schema
from tests.backends import KEY, GoogleSheet
from tests.conftest import PROMPT, draft


def api_requests(fake, kind=None):
    return [r for r in fake.requests if kind is None or kind in r["path"]]


def reviewed(count):
    return [draft(trace_id=f"t{i}", score="👎" if i % 3 == 0 else ("👍" if i % 3 == 1 else None),
                  comment="too long" if i % 2 else "wrong menu path") for i in range(count)]


def run_loop(google, cli, rows):
    sheet = GoogleSheet(google)
    sheet.create(rows)
    google.requests.clear()
    cli("improve", "--sheet", KEY)
    improve_requests = list(google.requests)
    title = next(t for t in sheet.titles() if t.startswith(schema.EDITS_PREFIX))
    sheet.tick(title, 2)
    google.requests.clear()
    cli("apply", "--sheet", KEY)
    return improve_requests, list(google.requests)


def test_requests_per_command_do_not_grow_with_rows(workspace, google, model, cli):
    small = run_loop(google, cli, reviewed(100))
    large = run_loop(google, cli, reviewed(5000))
    assert [len(r) for r in small] == [len(r) for r in large] == [4, 3]
    # improve: metadata, the tabs it reads, the trace_id column again (each failure's pattern lands on
    # its own row, however the tab was sorted meanwhile), then one write
    assert [r["path"].rsplit("/", 1)[-1] for r in large[0]] == [KEY, "values:batchGet", "values:batchGet",
                                                               f"{KEY}:batchUpdate"]


def test_a_url_works_as_well_as_a_key(workspace, google, model, cli):
    GoogleSheet(google).create(reviewed(6))
    cli("improve", "--sheet", f"https://docs.google.com/spreadsheets/d/{KEY}/edit#gid=0")
    assert any(t.startswith(schema.EDITS_PREFIX) for t in google.titles(KEY))


def test_the_service_account_key_is_exchanged_for_a_token(workspace, google, model, cli):
    GoogleSheet(google).create(reviewed(6))
    cli("status", "--sheet", KEY)
    assert google.service_account_emails == ["loop-bot@proj.iam.gserviceaccount.com"]


def test_approve_is_a_real_checkbox_that_reads_back_ticked(workspace, google, model, cli):
    sheet = GoogleSheet(google)
    sheet.create(reviewed(6))
    cli("improve", "--sheet", KEY)
    title = next(t for t in sheet.titles() if t.startswith(schema.EDITS_PREFIX))
    rules = google.validations(KEY, title)
    assert rules[0]["rule"]["condition"]["type"] == "BOOLEAN"
    assert rules[0]["range"]["startColumnIndex"] == 0 and rules[0]["range"]["endRowIndex"] == 1 + len(sheet.tab(title))
    assert google.properties(KEY, title)["gridProperties"]["frozenRowCount"] == 1
    sheet.tick(title, 2, True)
    assert "1 approved, not yet applied" in cli("status", "--sheet", KEY).output


def test_rate_limit_then_success(workspace, google, model, cli):
    GoogleSheet(google).create(reviewed(6))
    google.fail({"status": 429, "headers": {"Retry-After": "1"}, "match": "batchGet"})
    cli("improve", "--sheet", KEY)
    assert len(api_requests(google, "values:batchGet")) == 3  # the read refused once, read again, and the key check
    assert any(t.startswith(schema.EDITS_PREFIX) for t in google.titles(KEY))


def test_a_503_during_the_write_is_retried(workspace, google, model, cli):
    GoogleSheet(google).create(reviewed(6))
    google.fail({"status": 503, "match": "batchUpdate"})
    cli("improve", "--sheet", KEY)
    assert len(api_requests(google, ":batchUpdate")) == 2
    assert len(GoogleSheet(google).tab(schema.RUNS)) == 1


def test_a_write_that_keeps_failing_exits_1_with_nothing_half_written(workspace, google, model, cli):
    sheet = GoogleSheet(google)
    sheet.create(reviewed(6))
    before = sheet.snapshot()
    google.fail(*[{"status": 503, "match": "batchUpdate"}] * 5)
    result = cli("improve", "--sheet", KEY, code=1)
    assert "HTTP 503" in result.output and "Nothing was written" in result.output
    assert sheet.snapshot() == before


def test_a_sheet_not_shared_names_the_address_to_share_it_with(workspace, google, cli):
    google.add_spreadsheet(KEY, {schema.DRAFTS: [schema.DRAFT_HEADERS]}, shared=False)
    result = cli("status", "--sheet", KEY, code=2)
    assert "loop-bot@proj.iam.gserviceaccount.com" in result.output and "share" in result.output
    assert len(result.output.strip().splitlines()) <= 2


def test_a_wrong_key_is_a_clear_error(workspace, google, cli):
    result = cli("status", "--sheet", "1NoSuchSpreadsheetKeyAtAll0000000000", code=2)
    assert "No spreadsheet with key 1NoSuchSpreadsheetKeyAtAll0000000000" in result.output


def test_no_credentials_is_exit_2_saying_how_to_provide_them(workspace, google, cli, monkeypatch):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    monkeypatch.setenv("HOME", str(workspace))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(workspace / "gcloud"))
    result = cli("status", "--sheet", KEY, code=2)
    assert "GOOGLE_APPLICATION_CREDENTIALS" in result.output and "loop auth" in result.output


def test_a_missing_key_file_is_exit_2(workspace, google, cli):
    result = cli("status", "--sheet", KEY, "--credentials", "nope.json", code=2)
    assert "No credentials file at nope.json" in result.output


def test_init_adds_drafts_and_runs_and_leaves_other_tabs_alone(workspace, google, cli):
    google.add_spreadsheet(KEY, {"Team notes": [["keep", "me"]]})
    cli("init", "--sheet", KEY)
    assert google.titles(KEY) == ["Team notes", schema.DRAFTS, schema.RUNS]
    assert google.values(KEY, "Team notes") == [["keep", "me"]]
    assert google.values(KEY, schema.DRAFTS) == [schema.DRAFT_HEADERS]
    assert google.properties(KEY, schema.DRAFTS)["gridProperties"]["frozenRowCount"] == 1
    score = schema.DRAFT_HEADERS.index("score")
    rule = google.validations(KEY, schema.DRAFTS)[0]
    assert rule["range"]["startColumnIndex"] == score
    assert [v["userEnteredValue"] for v in rule["rule"]["condition"]["values"]] == ["👍", "👎"]
    assert "already has" in cli("init", "--sheet", KEY).output


def test_text_over_the_cell_limit_is_cut_with_a_marker(workspace, google, model, cli):
    sheet = GoogleSheet(google)
    sheet.create(reviewed(6))
    long_rationale = "r" * 60_000
    model.queue({}, {"json": {"edits": [{"pattern": "p", "find": "Read the ticket", "replace": "Read the whole ticket",
                                          "rationale": long_rationale, "evidence": ["t0"]}]}})
    cli("improve", "--sheet", KEY)
    title = next(t for t in sheet.titles() if t.startswith(schema.EDITS_PREFIX))
    rationale = sheet.tab(title)[0]["rationale"]
    assert len(rationale) == 50_000 and "more characters]" in rationale[-40:]


def test_runs_row_lands_below_existing_rows_and_adds_missing_columns(workspace, google, model, cli):
    sheet = GoogleSheet(google)
    sheet.create(reviewed(6))
    google.add_spreadsheet(KEY, {schema.DRAFTS: [schema.DRAFT_HEADERS] + [
        [r.get(h) if h != "created_at" else 46000 for h in schema.DRAFT_HEADERS] for r in reviewed(6)],
        schema.RUNS: [["run_id", "notes"], ["old", "keep"]]})
    cli("improve", "--sheet", KEY, "--since", "2000-01-01")
    runs = sheet.tab(schema.RUNS)
    assert runs[0] == {**{h: None for h in runs[0]}, "run_id": "old", "notes": "keep"}
    assert runs[1]["failures"] == 2 and "llm_calls" in runs[1]
    assert json.dumps(google.values(KEY, schema.RUNS)[0][:2]) == json.dumps(["run_id", "notes"])
    assert (workspace / "prompts" / "support_agent.md").read_text() == PROMPT


def test_loop_auth_signs_a_person_in_and_later_commands_use_their_token(workspace, google, cli, monkeypatch):
    """The OAuth flow end to end: consent in a (simulated) browser, the code exchanged at the token
    endpoint, the token kept, and the next command refreshing it without any key file."""
    import threading
    import urllib.parse
    import urllib.request
    import webbrowser

    class Browser:
        def open(self, url, new=0, autoraise=True):
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
            back = f"{query['redirect_uri'][0]}?code=consented&state={query['state'][0]}"
            threading.Thread(target=urllib.request.urlopen, args=(back,), daemon=True).start()
            return True

    monkeypatch.setattr(webbrowser, "get", lambda using=None: Browser())
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the fake token endpoint is plain http
    token_file = workspace / "token.json"
    monkeypatch.setenv("LOOP_GOOGLE_TOKEN", str(token_file))
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    secret = workspace / "client_secret.json"
    secret.write_text(json.dumps({"installed": {
        "client_id": "123.apps.googleusercontent.com", "client_secret": "s", "auth_uri": google.url + "/auth",
        "token_uri": google.url + "/token", "redirect_uris": ["http://localhost"]}}))

    assert "Signed in" in cli("auth", "--client-secret", str(secret)).output
    assert json.loads(token_file.read_text())["refresh_token"] == "1//fake-refresh"
    GoogleSheet(google).create(reviewed(3))
    assert "Drafts: 3 in all" in cli("status", "--sheet", KEY).output


def test_a_request_that_times_out_is_retried(workspace, google, model, cli, monkeypatch):
    from loop.sheets.google import RetryingHTTPClient

    monkeypatch.setattr(RetryingHTTPClient, "timeout_seconds", (2.0, 0.5))
    GoogleSheet(google).create(reviewed(6))
    google.fail({"delay": 1.5, "match": "batchGet"})
    cli("status", "--sheet", KEY)
    assert len(api_requests(google, "values:batchGet")) == 2


def test_the_judge_works_on_a_google_sheet_without_touching_scores(workspace, google, model, cli):
    (workspace / "prompts" / "judge.md").write_text("Down if the draft is too long.\n")
    headers = [h for h in schema.DRAFT_HEADERS if not h.startswith("judge")]  # the judge adds its columns
    sheet = GoogleSheet(google)
    sheet.create([draft(trace_id="p", score="👍", comment="fine"),
                  draft(trace_id="u", score=None, comment=None, draft="Long reply. " * 80)], headers=headers)
    google.requests.clear()
    assert "Judged 1 of 1" in cli("judge", "--sheet", KEY).output
    reads = [r["query"]["ranges"] for r in api_requests(google, "values:batchGet")]
    assert reads[0] == ["'Drafts'"]  # Drafts is read once, whole
    assert all(":" in r and r.split("!")[1][0] == r.split(":")[1][0] for r in reads[1])  # then single columns
    rows = {r["trace_id"]: r for r in sheet.tab(schema.DRAFTS)}
    assert (rows["p"]["score"], rows["p"]["comment"], rows["p"].get("judge_score")) == ("👍", "fine", None)
    assert (rows["u"]["judge_score"], rows["u"]["score"]) == ("👎", None)
    assert len(google.requests) == 4  # metadata, read, read again before writing, one batchUpdate


# --- a write whose answer was lost (timeout or dropped connection after Google applied it) ----------


def _lost_answer_cases():
    return [{"after": True, "delay": 1.5, "match": "batchUpdate"}, {"after": True, "drop": True, "match": "batchUpdate"}]


def test_an_improve_whose_write_landed_but_timed_out_finishes_with_one_tab(workspace, google, model, cli, monkeypatch):
    from loop.sheets.google import RetryingHTTPClient

    monkeypatch.setattr(RetryingHTTPClient, "timeout_seconds", (2.0, 0.5))
    sheet = GoogleSheet(google)
    for fault in _lost_answer_cases():
        sheet.create(reviewed(12))
        google.requests.clear()
        google.fail(fault)
        result = cli("improve", "--sheet", KEY)
        assert "Wrote tab" in result.output
        tabs = [t for t in sheet.titles() if t.startswith(schema.EDITS_PREFIX)]
        assert len(tabs) == 1, (fault, tabs)
        assert len(sheet.tab(schema.RUNS)) == 1
        assert len(api_requests(google, ":batchUpdate")) == 1  # recognised as landed: not sent again


def test_logged_drafts_whose_write_landed_but_was_lost_are_not_doubled(workspace, google, model, cli, monkeypatch):
    from loop.sheets.google import RetryingHTTPClient

    monkeypatch.setattr(RetryingHTTPClient, "timeout_seconds", (2.0, 0.5))
    sheet = GoogleSheet(google)
    sheet.create([draft(trace_id="old")])
    for fault in _lost_answer_cases():
        google.fail(fault)
        result = cli("log", "--sheet", KEY, "--ticket", "t", "--draft", "d")
        trace_id = result.stdout.split()[0]
        ids = [r["trace_id"] for r in sheet.tab(schema.DRAFTS)]
        assert ids.count(trace_id) == 1, (fault, ids)
    assert len(sheet.tab(schema.DRAFTS)) == 3


def test_a_tab_title_another_run_took_is_not_mistaken_for_this_runs(workspace, google, model, cli):
    from datetime import datetime, timezone

    sheet = GoogleSheet(google)
    sheet.create(reviewed(12))
    now = datetime.now(timezone.utc)
    google.fail({"status": 400, "match": "batchUpdate",
                 "message": f'Invalid requests[0].addSheet: A sheet with the name "Edits {now:%Y-%m-%d %H%M}" '
                            'already exists. Please enter another name.'})
    result = cli("improve", "--sheet", KEY)
    title = result.output.split("Wrote tab '")[1].split("'")[0]
    assert title.endswith("(2)") or title != f"Edits {now:%Y-%m-%d %H%M}"
    assert sheet.tab(schema.RUNS)[0]["edits_tab"] == title and title in sheet.titles()
