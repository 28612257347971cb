"""The canary through the CLI (CONTRACT §5b): `apply --canary` on ticked edits, one canary at a time,
`promote`, `rollback` during a canary, and the two arms measured side by side by `loop report` and
`loop status`, with the guardrail stopping a worse canary on scripted reviews; on SQLite and on the
real PostgreSQL server."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import openpyxl
import pytest

from loop.prompt_store import PromptStore
from loop.store.db import connect
from tests.conftest import PROMPT, draft, edits_tab, read_tab, tick, write_workbook

V2 = PROMPT + "Keep replies under 120 words.\n"


@pytest.fixture
def desk(workspace, store_url, monkeypatch):
    monkeypatch.setenv("LOOP_STORE", store_url)
    return PromptStore(workspace / "prompts" / "support_agent.md", db=connect(store_url))


def reviews(version: str, up: int, down: int, after: datetime) -> list[dict]:
    at = after.replace(tzinfo=None, microsecond=0)  # after the canary started, before anything ended it
    return ([draft(score="👍", comment="", prompt_version=version, created_at=at) for _ in range(up)]
            + [draft(score="👎", prompt_version=version, created_at=at) for _ in range(down)])


def started_canary(desk) -> datetime:
    desk.sync()
    desk.commit(V2, "apply", canary_share=0.5)
    time.sleep(1.1)  # drafts below are written after the canary started, to the second
    return datetime.now(timezone.utc)


def test_the_guardrail_stops_a_worse_canary_and_the_report_says_so(desk, workspace, cli):
    after = started_canary(desk)
    before = reviews("v1", 40, 0, after - timedelta(days=3))  # before the canary: never counted
    write_workbook(workspace / "loop.xlsx", before + reviews("v1", 50, 10, after) + reviews("v2", 20, 40, after))
    found = json.loads(cli("report", "--json").output)["canary"]
    assert found["arms"]["current"] == {"drafts": 60, "reviewed": 60, "up": 50, "rate": pytest.approx(50 / 60),
                                        "low": pytest.approx(0.7197, abs=1e-3), "high": pytest.approx(0.9069, abs=1e-3)}
    assert (found["arms"]["canary"]["reviewed"], found["arms"]["canary"]["up"]) == (60, 20)
    assert found["difference"]["points"] == pytest.approx(-50.0) and found["difference"]["high"] < 0
    assert (found["verdict"], found["stopped"], found["share"]) == ("worse", True, 0.0)
    assert "guardrail" in found["reason"]
    serving = desk.serving()
    assert serving.canary is None and serving.current == 1  # v1 keeps serving everyone
    assert desk.records.canaries()[0].outcome == "stopped"
    status = cli("status").output
    assert "Canary v2 (stopped" in status and "Stopped: the guardrail" in status
    book = openpyxl.load_workbook(workspace / "loop.xlsx")
    cells = [c for row in book["Dashboard"].iter_rows(values_only=True) for c in row if isinstance(c, str)]
    assert any(c.startswith("Canary v2 (stopped") for c in cells) and "v2 (stopped canary)" in cells
    rollout = {r["canary_id"]: r for r in read_tab(workspace / "loop.xlsx", "Rollout")}[1]
    assert (rollout["status"], rollout["reviews_canary"], rollout["reviews_current"]) == ("stopped", 60, 60)
    assert rollout["verdict"] == "worse" and rollout["difference"].startswith("-50 points")
    again = json.loads(cli("report", "--json").output)["canary"]
    assert again["stopped"] and len(desk.records.events()) == 3  # stopped once: initial, canary, stop


def test_a_running_watch_stops_a_worse_canary_and_says_why(desk, workspace, caplog):
    from loop.config import resolve
    from loop.measure.report import watch_round
    from loop.store import outbox
    from loop.workspace import Workspace

    after = started_canary(desk)
    write_workbook(workspace / "loop.xlsx", reviews("v1", 50, 10, after) + reviews("v2", 20, 40, after))
    outbox.watch(Workspace(resolve()), 0.01, rounds=1, also=watch_round)
    assert desk.serving().canary is None and "guardrail" in desk.records.canaries()[0].reason
    assert any("Stopped: the guardrail" in r.getMessage() for r in caplog.records)


def test_the_digest_names_a_stopped_canary(desk, workspace):
    from loop.measure import digest
    from loop.measure.report import refresh

    after = started_canary(desk)
    write_workbook(workspace / "loop.xlsx", reviews("v1", 50, 10, after) + reviews("v2", 20, 40, after))
    text = digest.report_digest(refresh(None), "https://example.invalid/dashboard")
    assert "⛔ Canary v2 (stopped" in text and "guardrail" in text


def test_too_early_says_how_many_more_reviews_would_tell_and_never_promotes(desk, workspace, cli):
    after = started_canary(desk)
    write_workbook(workspace / "loop.xlsx", reviews("v1", 8, 4, after) + reviews("v2", 9, 3, after))
    found = json.loads(cli("report", "--json").output)["canary"]
    assert found["verdict"] == "too early" and not found["stopped"] and found["more_reviews_per_arm"] > 0
    assert "Too early to tell; about" in cli("report").output
    assert desk.serving().canary.share == 0.5


def test_a_better_canary_recommends_the_tick_and_stays_a_canary(desk, workspace, cli):
    after = started_canary(desk)
    write_workbook(workspace / "loop.xlsx", reviews("v1", 20, 60, after) + reviews("v2", 70, 10, after))
    found = json.loads(cli("report", "--json").output)["canary"]
    assert found["verdict"] == "better" and not found["stopped"]
    assert "tick promote in the Rollout tab or run `loop promote`" in cli("report").output
    assert desk.serving().canary is not None and desk.current().number == 1


def test_apply_canary_then_promote_through_the_cli(workspace, model, cli, desk):
    path = write_workbook(workspace / "loop.xlsx", [draft(), draft(comment="wrong menu path")])
    cli("improve")
    title = edits_tab(path)
    tick(path, title, [2])
    output = cli("apply", "--canary", "10%").output
    assert "as the canary v2, served to 10% of tickets; the rest keep v1" in output
    assert (workspace / "prompts" / "support_agent.md").read_text() == PROMPT  # the file keeps the current one
    row = read_tab(path, title)[0]
    assert (row["status"], row["applied_version"]) == ("applied", "v2") and "canary at 10%" in row["check"]
    tick(path, title, [3])
    refused = cli("apply", code=2).output
    assert "canary v2" in refused and "loop promote" in refused and read_tab(path, title)[1]["status"] == "proposed"
    assert "now serves 50%" in cli("promote", "--to", "50%").output
    assert "only raises" in cli("promote", "--to", "20", code=2).output
    assert "v1 → v2 for everyone" in cli("promote").output
    assert (workspace / "prompts" / "support_agent.md").read_text() != PROMPT
    assert "at v2" in cli("status").output


def test_rollback_during_a_canary_ends_it_and_marks_its_edits(workspace, model, cli, desk):
    path = write_workbook(workspace / "loop.xlsx", [draft(), draft(comment="wrong menu path")])
    cli("improve")
    title = edits_tab(path)
    tick(path, title, [2])
    cli("apply", "--canary", "25")
    assert "Ended the canary v2; v1 serves everyone" in cli("rollback").output
    row = read_tab(path, title)[0]
    assert row["status"] == "rolled back" and not row["approve"]
    assert (workspace / "prompts" / "support_agent.md").read_text() == PROMPT
    assert desk.records.canaries()[0].outcome == "rolled back"


@pytest.mark.parametrize("share", ["0", "100%", "ten", "-5"])
def test_a_share_out_of_range_is_refused_changing_nothing(workspace, cli, share, desk):
    write_workbook(workspace / "loop.xlsx", [draft()])
    assert "--canary" in cli("apply", "--canary", share, code=2).output
    assert desk.records.serving() is None
