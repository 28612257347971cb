"""The reference support agent (tools, long threads, replay) and the LLM judge (CONTRACT §7)."""

import json

import pytest

from loop import config, schema
from loop.collect import support_agent
from loop.collect.knowledge_base import KnowledgeBase
from loop.model import ModelClient
from tests.conftest import draft, read_tab, write_workbook

DOCS = {
    "timesheets/week-start.md": "# Change the first day of the week\n\nGo to Settings → Workspace → General and "
                                "choose Monday under Week starts on. Past timesheets keep their dates.",
    "billing/plans.md": "# Plans and pricing\n\nSSO is available on the Business plan only. Team costs 8 euros.",
}


@pytest.fixture
def kb(tmp_path):
    folder = tmp_path / "kb"
    for name, text in DOCS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return KnowledgeBase(folder)


def test_the_agent_searches_reads_and_answers_from_the_docs(workspace, model, kb):
    ticket = support_agent.Ticket("How do I make the week start on Monday in timesheets?", "TH-1")
    reply = support_agent.draft_reply(ModelClient(config.resolve()), kb, "You are a support agent.", ticket)
    assert reply.sources == ["timesheets/week-start.md"] and reply.tool_calls == 2
    assert "Settings → Workspace → General" in reply.draft
    requests = model.requests
    assert [len([m for m in r["messages"] if m["role"] == "tool"]) for r in requests] == [0, 1, 2]
    assert requests[0]["tools"][0]["function"]["name"] == "search_kb"
    assert requests[0]["messages"][0] == {"role": "system", "content": "You are a support agent."}
    searched = json.loads(requests[1]["messages"][-1]["content"])
    assert searched[0]["doc_id"] == "timesheets/week-start.md"


def test_a_long_thread_keeps_its_newest_messages_whole_and_trims_the_oldest():
    messages = [f"Customer (Nov {d}): message number {d} " + "words " * 300 + "\n" for d in range(1, 41)]
    thread = "".join(messages)
    fitted = support_agent.fit_thread(thread, limit=12_000)
    assert len(fitted) <= 12_000
    assert fitted.endswith(messages[-1]) and messages[-2] in fitted
    assert "message number 1 " not in fitted.split("]", 1)[1]
    assert fitted.startswith("[") and "earlier message(s) left out" in fitted
    assert "The conversation began: Customer (Nov 1): message number 1" in fitted
    assert support_agent.fit_thread("short thread") == "short thread"


def test_draft_logs_every_ticket_with_sources_and_prompt_version(workspace, model, kb, cli):
    write_workbook(workspace / "loop.xlsx", [])
    tickets = workspace / "tickets.jsonl"
    tickets.write_text("\n".join(json.dumps({"ticket_id": f"TH-{i}", "ticket": q}) for i, q in enumerate(
        ["How do I make the week start on Monday?", "Is SSO on the Team plan?", "Week start Monday please"])))
    result = cli("draft", "--tickets", str(tickets), "--kb", str(kb.folder), "--concurrency", "3")
    assert "Logged 3 drafts" in result.output
    rows = read_tab(workspace / "loop.xlsx", schema.DRAFTS)
    assert [r["ticket_id"] for r in rows] == ["TH-0", "TH-1", "TH-2"]
    assert rows[1]["kb_sources"] == "billing/plans.md" and rows[0]["kb_sources"] == "timesheets/week-start.md"
    assert all(r["prompt_version"] == "v1" and r["draft"] and r["score"] is None for r in rows)


def test_tickets_come_from_csv_too(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("ticket_id,ticket,thread\nTH-9,\"Hello, help\",\n")
    assert support_agent.load_tickets(path) == [support_agent.Ticket("Hello, help", "TH-9", "")]


def test_replay_drafts_a_logged_trace_again_with_a_candidate_prompt(workspace, model, kb, cli):
    write_workbook(workspace / "loop.xlsx", [draft(trace_id="t-1", ticket="Is SSO on the Team plan?")])
    candidate = workspace / "candidate.md"
    candidate.write_text("You are a support agent. Answer in two sentences.")
    result = cli("draft", "--replay", "t-1", "--candidate", str(candidate), "--kb", str(kb.folder))
    assert "SSO is available on the Business plan only" in result.output
    assert model.requests[0]["messages"][0]["content"] == candidate.read_text()
    assert "Is SSO on the Team plan?" in model.requests[0]["messages"][1]["content"]
    assert len(read_tab(workspace / "loop.xlsx", schema.DRAFTS)) == 1  # replay logs nothing
    assert "No draft with trace_id nope" in cli("draft", "--replay", "nope", "--kb", str(kb.folder), code=2).output


def judge_rubric(workspace):
    (workspace / "prompts" / "judge.md").write_text("Down if the draft is longer than five sentences.\n")


def test_the_judge_fills_only_its_own_columns_of_unreviewed_drafts(workspace, model, cli):
    judge_rubric(workspace)
    long_draft = "This is a long reply. " * 40
    write_workbook(workspace / "loop.xlsx", [
        draft(trace_id="person", score="👍", comment="fine", draft=long_draft),
        draft(trace_id="long", score=None, comment=None, draft=long_draft),
        draft(trace_id="short", score=None, comment=None, draft="Done: Settings → General."),
    ])
    result = cli("judge")
    assert "Judged 2 of 2" in result.output
    rows = {r["trace_id"]: r for r in read_tab(workspace / "loop.xlsx", schema.DRAFTS)}
    assert (rows["person"]["score"], rows["person"]["comment"], rows["person"]["judge_score"]) == ("👍", "fine", None)
    assert (rows["long"]["judge_score"], rows["long"]["score"], rows["long"]["comment"]) == ("👎", None, None)
    assert rows["long"]["judge_comment"].startswith("Too long") and rows["short"]["judge_score"] == "👍"
    assert rows["long"]["judge_version"] == "v1"  # the rubric version that scored it
    schema_name = model.requests[0]["response_format"]["json_schema"]
    assert schema_name["name"] == "judge_verdict" and schema_name["strict"] is True
    assert "longer than five sentences" in model.requests[0]["messages"][1]["content"]
    assert "Judged" not in cli("judge").output  # nothing left to judge


def test_judge_limit_and_the_judge_counts_in_improve_only_when_asked(workspace, model, cli):
    judge_rubric(workspace)
    long_draft = "This is a long reply. " * 40
    write_workbook(workspace / "loop.xlsx", [draft(trace_id=f"j{i}", score=None, comment=None, draft=long_draft)
                                            for i in range(5)])
    assert "Judged 2 of 5" in cli("judge", "--limit", "2").output
    assert "nothing to improve" in cli("improve").output
    assert "2 failures" in cli("improve", "--include-judge").output
    edits_tab = next(t for t in __import__("openpyxl").load_workbook(workspace / "loop.xlsx").sheetnames
                     if t.startswith("Edits"))
    assert all(r["rationale"].startswith("[evidence is judge-only]") for r in read_tab(workspace / "loop.xlsx", edits_tab))


def test_a_person_who_scores_while_the_judge_runs_wins(workspace, model, cli, monkeypatch):
    judge_rubric(workspace)
    path = write_workbook(workspace / "loop.xlsx", [draft(trace_id="x", score=None, comment=None)])
    from loop.collect import judge as judge_module

    original = judge_module.JudgeVerdict

    class ScoredMeanwhile(original):
        @classmethod
        def model_validate(cls, data, **kwargs):
            write_workbook(path, [draft(trace_id="x", score="👍", comment="person")])
            return original.model_validate(data, **kwargs)

    monkeypatch.setattr(judge_module, "JudgeVerdict", ScoredMeanwhile)
    cli("judge")
    row = read_tab(path, schema.DRAFTS)[0]
    assert (row["score"], row["comment"], row["judge_score"]) == ("👍", "person", None)


def test_the_judge_reads_drafts_once_and_its_verdicts_follow_rows_a_reviewer_sorted(workspace, model, cli, monkeypatch):
    judge_rubric(workspace)
    long_draft = "This is a long reply. " * 40
    rows = [draft(trace_id="a", score=None, comment=None, draft=long_draft),
            draft(trace_id="b", score=None, comment=None),
            draft(trace_id="c", score="👎", comment="reviewed")]
    path = write_workbook(workspace / "loop.xlsx", rows)
    from loop.collect import judge as judge_module
    from loop.sheets.xlsx import XlsxWorkbook

    reads = []
    original_read = XlsxWorkbook.read
    monkeypatch.setattr(XlsxWorkbook, "read", lambda self, titles: reads.append(titles) or original_read(self, titles))
    original = judge_module.JudgeVerdict
    sorted_once = []

    class SortedMeanwhile(original):
        @classmethod
        def model_validate(cls, data, **kwargs):
            if not sorted_once:  # a reviewer sorts the tab by trace id, descending, while the judge runs
                sorted_once.append(True)
                write_workbook(path, list(reversed(rows)))
            return original.model_validate(data, **kwargs)

    monkeypatch.setattr(judge_module, "JudgeVerdict", SortedMeanwhile)
    cli("judge")
    assert reads == [[schema.DRAFTS]]  # the write found the moved rows in the part it writes, not by a second read
    by_id = {r["trace_id"]: r for r in read_tab(path, schema.DRAFTS)}
    assert (by_id["a"]["judge_score"], by_id["b"]["judge_score"], by_id["c"]["judge_score"]) == ("👎", "👍", None)

    reads.clear()
    write_workbook(path, [draft(trace_id="d", score=None, comment=None)])  # nothing moves this time
    cli("judge")
    assert reads == [[schema.DRAFTS]]  # Drafts is read once
    assert read_tab(path, schema.DRAFTS)[0]["judge_score"] == "👍"


def test_tickets_can_come_from_a_tickets_tab(workspace, model, kb, cli):
    import openpyxl

    path = write_workbook(workspace / "loop.xlsx", [])
    book = openpyxl.load_workbook(path)
    tab = book.create_sheet("Tickets")
    tab.append(["Ticket ID", "Ticket", "Thread"])
    tab.append(["TH-77", "Is SSO on the Team plan?", ""])
    book.save(path)
    assert "Logged 1 draft " in cli("draft", "--kb", str(kb.folder)).output
    assert read_tab(path, schema.DRAFTS)[0]["ticket_id"] == "TH-77"
