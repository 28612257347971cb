"""The whole loop through the CLI: improve → tick → apply → rollback, against the fake model."""


from tests.conftest import PROMPT, draft, edits_tab, read_tab, tick, write_workbook


def reviewed_drafts():
    return (
        [draft(comment="too long, two sentences would do") for _ in range(4)]
        + [draft(comment="that menu path doesn't exist") for _ in range(3)]
        + [draft(score="👍", comment="") for _ in range(2)]
    )


def test_improve_writes_an_edits_tab_and_a_runs_row(workspace, model, cli):
    write_workbook(workspace / "loop.xlsx", reviewed_drafts())
    result = cli("improve")
    assert "7 failures, 2 successes" in result.output
    title = edits_tab(workspace / "loop.xlsx")
    edits = read_tab(workspace / "loop.xlsx", title)
    assert [e["status"] for e in edits] == ["proposed", "proposed"]
    assert all(e["approve"] is False for e in edits)
    runs = read_tab(workspace / "loop.xlsx", "Runs")
    assert len(runs) == 1 and runs[0]["failures"] == 7
    assert runs[0]["llm_calls"] == 2 + runs[0]["replay_llm_calls"] and runs[0]["replay_llm_calls"] > 0
    assert runs[0]["replay"].startswith("2 edits, ") and "the bundled agent" in runs[0]["replay"]
    assert (workspace / "prompts" / "support_agent.md").read_text() == PROMPT


def test_apply_changes_the_prompt_by_exactly_the_ticked_edits_and_rollback_undoes_it(workspace, model, cli):
    book = workspace / "loop.xlsx"
    write_workbook(book, reviewed_drafts())
    cli("improve")
    title = edits_tab(book)
    edits = read_tab(book, title)
    tick(book, title, [2])
    result = cli("apply")
    assert "v1 → v2" in result.output
    prompt = (workspace / "prompts" / "support_agent.md").read_text()
    assert prompt == PROMPT.replace(edits[0]["find"], edits[0]["replace"])
    after = read_tab(book, title)
    assert [e["status"] for e in after] == ["applied", "proposed"]
    assert after[0]["applied_version"] == "v2"

    again = cli("apply")
    assert "No ticked edits" in again.output
    assert (workspace / "prompts" / "support_agent.md").read_text() == prompt

    cli("rollback")
    assert (workspace / "prompts" / "support_agent.md").read_text() == PROMPT
