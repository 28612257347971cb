"""What the terminal tells the engineer beside the reviewer: each edit by its pattern and its change,
the review window `loop check` replays, the knowledge base the bundled agent drafts with, what
`apply` did in one line, and which model to set when none is (issue 16, "The terminal")."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from loop import schema
from tests.conftest import PROMPT, draft, edits_tab, read_tab, tick, write_workbook
from tests.local_server import LocalServer

ROOT = Path(__file__).resolve().parent.parent
NO_KB = "warning: No knowledge base: there is no kb/ folder here"


def verbose(i: int, days_ago: float = 1, **fields) -> dict:
    return draft(trace_id=f"v{i}", comment="too long, two sentences would do", days_ago=days_ago + i / 10, **fields)


def menu(i: int, days_ago: float = 1) -> dict:
    return draft(trace_id=f"m{i}", comment="that menu path doesn't exist", days_ago=days_ago)


def output(result) -> str:
    return result.output  # stdout and stderr, as the terminal shows them


# --- 1. improve names each edit by its pattern and its change -----------------------------------------


def test_improve_names_each_edit_by_its_pattern_and_its_change(workspace, model, cli):
    write_workbook(workspace / "loop.xlsx", [verbose(i) for i in range(3)] + [
        draft(trace_id="ok1", score="👍", comment="good", ticket="How do I add a member?")])
    result = cli("improve")
    assert ('  Too verbose: adds "- Guard against too verbose: check before sending." — fixed 3/3 cited and '
            "0/0 held-out failures, regressed 0/1 successes") in result.output


def test_improve_shows_a_rewrite_as_old_and_new_text_shortened_and_without_control_codes(workspace, model, cli):
    write_workbook(workspace / "loop.xlsx", [verbose(i) for i in range(3)] + [menu(0)])
    long_tail = " ".join(["and keep it friendly"] * 10)
    model.queue(
        {"json": {"patterns": [{"name": "Too \x1b[31mverbose", "description": "Long.", "trace_ids": ["v0", "v1", "v2"]},
                               {"name": "Wrong menu paths", "description": "Paths.", "trace_ids": ["m0"]}]}},
        {"json": {"edits": [
            {"pattern": "Too \x1b[31mverbose", "find": "Be friendly and professional in every reply.",
             "replace": "Be friendly, and keep replies to 2–4 sentences.", "rationale": "r", "evidence": ["v0", "v1"]},
            {"pattern": "Wrong menu paths", "find": "Never invent UI paths; copy them from the knowledge base.",
             "replace": f"Never invent UI paths;\n\tcopy them from the knowledge base {long_tail}.",
             "rationale": "r", "evidence": ["m0"]},
            {"pattern": "Wrong menu paths", "find": "This passage is not in the prompt.", "replace": "Something else.",
             "rationale": "r", "evidence": ["m0"]}]}})
    lines = cli("improve", "--no-check").output.splitlines()
    assert '  Too \ufffd[31mverbose: "Be friendly and professional in every reply." → "Be friendly, and keep ' \
           'replies to 2–4 sentences."' in lines
    menu_line = next(line for line in lines if line.startswith("  Wrong menu paths: "))
    old, new = menu_line.removeprefix("  Wrong menu paths: ").split(" → ")
    assert old == '"Never invent UI paths; copy them from the knowledge base."'
    assert new.startswith('"Never invent UI paths; copy them') and new.endswith('…"') and len(new) <= 62
    assert "\t" not in menu_line and "\x1b" not in "\n".join(lines)
    rejected = next(line for line in lines if line.startswith("  rejected "))
    assert rejected.startswith('  rejected Wrong menu paths: "This passage is not in the prompt." → "Something else." — ')


# --- 2. loop check replays the window of the run that proposed the edits -------------------------------


def test_loop_check_replays_the_window_of_the_run_that_proposed_the_ticked_edits(workspace, model, cli):
    rows = [verbose(i, days_ago=20) for i in range(4)] + [menu(i, days_ago=20) for i in range(3)]
    path = write_workbook(workspace / "loop.xlsx", rows + [
        draft(trace_id="ok1", score="👍", comment="good", ticket="How do I add a member?", days_ago=2)])
    cli("improve", "--since", "30d", "--no-check")
    run = read_tab(path, schema.RUNS)[0]
    tick(path, edits_tab(path), [2, 3])

    result = cli("check")
    assert (f"Review window: since {run['since'][:16]} UTC, the window of improve run {run['run_id']} that proposed "
            "the ticked edits (--since changes it).") in result.output
    assert "fixed 6/6 cited and 1/1 held-out failures" in result.output and "older than the window" not in result.output

    narrow = cli("check", "--since", "14d")  # an explicit --since still wins
    assert "Review window: since " in narrow.output and "(--since 14d)." in narrow.output
    cited = {t.strip() for edit in read_tab(path, edits_tab(path))[:2] for t in edit["evidence"].split(",")}
    oldest = min(r["created_at"] for r in rows if r["trace_id"] in cited)  # whatever the hour, the cited one's date
    assert (f"6 cited failures are older than the window, so not replayed: --since {oldest:%Y-%m-%d} brings them in."
            in narrow.output)
    assert "fixed 0/0 cited" in narrow.output and "No conflict showed" not in narrow.output
    assert "No failure they cite was replayed" in narrow.output


def test_loop_check_without_a_runs_row_takes_the_14_days_before_the_run_named_in_the_edit_ids(workspace, model, cli):
    import openpyxl

    path = write_workbook(workspace / "loop.xlsx", [verbose(i) for i in range(3)])
    cli("improve", "--no-check")
    book = openpyxl.load_workbook(path)
    del book[schema.RUNS]
    book.save(path)
    tick(path, edits_tab(path), [2])
    edit_id = read_tab(path, edits_tab(path))[0]["edit_id"]
    result = cli("check")
    assert f"the window of improve run {edit_id.rsplit('-', 1)[0]} that proposed" in result.output
    assert "fixed 3/3 cited" in result.output


def test_loop_check_says_which_flag_brings_in_cited_failures_scored_by_the_judge_only(workspace, model, cli):
    rows = [verbose(i) for i in range(2)] + [
        draft(trace_id="j1", score=None, comment="", judge_score="👎", judge_comment="too long, way too long")]
    path = write_workbook(workspace / "loop.xlsx", rows)
    model.queue({"json": {"patterns": [{"name": "Too verbose", "description": "Long.", "trace_ids": ["v0", "v1", "j1"]}]}},
                {"json": {"edits": [{"pattern": "Too verbose", "find": "Be friendly and professional in every reply.",
                                     "replace": "Be friendly.\n- Guard against too verbose: say it short.", "rationale": "r",
                                     "evidence": ["v0", "v1", "j1"]}]}})
    cli("improve", "--include-judge", "--no-check")
    tick(path, edits_tab(path), [2])
    result = cli("check")
    assert "1 cited failure is scored by the judge only, so not replayed: --include-judge brings it in." in result.output
    assert "fixed 2/2 cited" in result.output
    judged = cli("check", "--include-judge")
    assert "scored by the judge only" not in judged.output and "fixed 3/3 cited" in judged.output


# --- 3. one rule for the bundled agent's knowledge base -------------------------------------------------


def test_without_a_kb_folder_improve_check_and_draft_replay_all_draft_without_one_and_say_so_once(workspace, model,
                                                                                                   cli):
    path = write_workbook(workspace / "loop.xlsx", [verbose(i) for i in range(3)])
    assert not (workspace / "kb").exists()
    improved = output(cli("improve"))
    assert improved.count(NO_KB) == 1 and "LOOP_KB" in improved
    assert "the bundled agent, without a knowledge base" in read_tab(path, schema.RUNS)[0]["replay"]
    tick(path, edits_tab(path), [2])
    checked = output(cli("check"))
    assert checked.count(NO_KB) == 1 and "fixed 3/3 cited" in checked
    replayed = cli("draft", "--replay", "v0")
    assert output(replayed).count(NO_KB) == 1 and "Thanks for reaching out" in replayed.stdout
    assert not any(r.get("tools") for r in model.requests)  # no tool offered: there is nothing to search


def test_a_kb_folder_that_is_named_but_missing_is_refused_by_every_command(workspace, model, cli, monkeypatch):
    path = write_workbook(workspace / "loop.xlsx", [verbose(i) for i in range(3)])
    cli("improve", "--no-check")
    tick(path, edits_tab(path), [2])
    replayed = cli("draft", "--replay", "v0", "--kb", "articles", code=2)
    assert "Knowledge-base folder articles does not exist" in output(replayed)
    monkeypatch.setenv("LOOP_KB", "articles")
    assert "Knowledge-base folder articles does not exist" in output(cli("check", code=2))
    assert "Knowledge-base folder articles does not exist" in output(cli("draft", "--replay", "v0", code=2))
    improved = output(cli("improve", "--force"))  # improve still writes its edits, marked not replayed
    assert "not replayed: Knowledge-base folder articles does not exist" in improved


def test_a_kb_folder_that_exists_is_used_without_a_warning(workspace, model, cli):
    shutil.copytree(ROOT / "examples" / "kb", workspace / "kb")
    write_workbook(workspace / "loop.xlsx", [verbose(i) for i in range(3)])
    result = output(cli("draft", "--replay", "v0"))
    assert "No knowledge base" not in result and any(r.get("tools") for r in model.requests)


# --- 4. apply ends with one summary line ----------------------------------------------------------------


def test_apply_ends_with_one_summary_line_and_says_when_it_recorded_a_hand_edit(workspace, model, cli):
    path = write_workbook(workspace / "loop.xlsx", [verbose(i) for i in range(3)] + [menu(0)])
    cli("improve", "--no-check")
    title = edits_tab(path)
    edits = read_tab(path, title)
    tick(path, title, [2, 3])
    prompt = workspace / "prompts" / "support_agent.md"
    stale = next(e for e in edits if e["pattern"] == "Wrong menu paths")["find"]
    prompt.write_text(PROMPT.replace(stale, "Copy UI paths from the knowledge base, never from memory."))

    lines = cli("apply").output.strip().splitlines()
    assert ("Recorded the hand edit of prompts/support_agent.md as v2 first, so it can be rolled back to; the ticked "
            "edits go on top of it.") in lines
    assert lines[-1] == "Summary: 1 applied, 1 stale, 0 ignored, 0 duplicates; prompts/support_agent.md is at v3."
    again = cli("apply").output.strip().splitlines()
    assert "Recorded the hand edit" not in "\n".join(again)  # said once, when it happened
    assert again[-1] == "Summary: 0 applied, 0 stale, 0 ignored, 0 duplicates; prompts/support_agent.md is at v3."


def test_singular_and_plural_agree_in_what_apply_judge_and_log_print(workspace, model, cli):
    path = write_workbook(workspace / "loop.xlsx", [verbose(i) for i in range(3)] + [
        draft(trace_id="u1", score=None, comment="")])
    (workspace / "prompts" / "judge.md").write_text("Down if the draft is longer than five sentences.\n")
    cli("improve", "--no-check")
    import openpyxl

    book = openpyxl.load_workbook(path)
    book[edits_tab(path)].cell(2, 1).value = True
    book.copy_worksheet(book[edits_tab(path)]).title = "Edits copy"
    book.save(path)
    assert cli("apply").output.strip().splitlines()[-1].startswith("Summary: 1 applied, 0 stale, 0 ignored, 1 duplicate;")
    assert "Judged 1 of 1 unreviewed draft with rubric" in cli("judge").output
    (workspace / "~$loop.xlsx").write_text("owner")  # open in Excel: the draft waits as pending
    logged = output(cli("log", "--ticket", "Where is my invoice?", "--draft", "Under Invoices."))
    assert "1 draft waits in the store" in logged and "and reaches the sheet" in logged


# --- 5. a missing model is named before anything is installed or sent -----------------------------------


class FakeLocalModelServer(LocalServer):
    """A local model server's model list, as Ollama (/api/tags) or vLLM and llama-server (/v1/models) answer."""

    def __init__(self, path: str, body: dict, delay: float = 0.0):
        super().__init__()
        self.path, self.body, self.delay, self.requests = path, body, delay, []

    def handle(self, handler) -> None:
        self.requests.append((handler.command, handler.path))
        time.sleep(self.delay)
        payload = json.dumps(self.body if handler.path == self.path else {"error": "not found"}).encode()
        handler.send_response(200 if handler.path == self.path else 404)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


def test_with_no_model_set_the_error_names_a_local_server_that_answers_its_models_and_what_to_set(
        workspace, cli, monkeypatch):
    from loop import model as model_module

    write_workbook(workspace / "loop.xlsx", [verbose(0)])
    ollama = FakeLocalModelServer("/api/tags", {"models": [{"name": "qwen2.5:14b"}, {"name": "llama3.2:3b"}]})
    with ollama, FakeLocalModelServer("/v1/models", {"object": "list", "data": [{"id": "Qwen/Qwen2.5-7B"}]}) as vllm:
        monkeypatch.setattr(model_module, "LOCAL_SERVERS", [("Ollama", ollama.root, "/api/tags"),
                                                            ("vLLM", vllm.root, "/v1/models")])
        result = cli("improve", code=2)
    text = output(result)
    assert text.startswith("error: No model configured: set OPENAI_API_KEY, or OPENAI_BASE_URL")
    assert (f"Ollama at {ollama.root} serves qwen2.5:14b, llama3.2:3b: to use it, set "
            f"OPENAI_BASE_URL={ollama.root}/v1 and LOOP_MODEL=qwen2.5:14b.") in text
    assert len(text.strip().splitlines()) == 2
    assert ollama.requests == [("GET", "/api/tags")] and vllm.requests == [("GET", "/v1/models")]  # nothing else sent


def test_a_vllm_or_llama_server_is_named_by_its_v1_models_list(workspace, cli, monkeypatch):
    from loop import model as model_module

    write_workbook(workspace / "loop.xlsx", [verbose(0)])
    with FakeLocalModelServer("/v1/models", {"object": "list", "data": [{"id": "gemma-3-4b"}]}) as server:
        monkeypatch.setattr(model_module, "LOCAL_SERVERS", [("llama.cpp's llama-server", server.root, "/v1/models")])
        text = output(cli("improve", code=2))
    assert f"llama.cpp's llama-server at {server.root} serves gemma-3-4b" in text and "LOOP_MODEL=gemma-3-4b" in text


def test_the_probe_asks_only_loopback_waits_at_most_its_timeout_and_falls_back_to_the_plain_hint(
        workspace, cli, monkeypatch):
    from loop import model as model_module

    write_workbook(workspace / "loop.xlsx", [verbose(0)])
    with FakeLocalModelServer("/api/tags", {"models": [{"name": "slow"}]}, delay=2) as slow:
        monkeypatch.setattr(model_module, "LOCAL_SERVERS", [("Ollama", slow.root, "/api/tags"),
                                                            ("Remote", "http://192.0.2.1:11434", "/api/tags")])
        started = time.monotonic()
        text = output(cli("improve", code=2))
        assert time.monotonic() - started < 1.5
    assert model_module.PROBE_SECONDS <= 0.3
    assert "No model configured" in text and "Ollama at" not in text and "Remote" not in text
    assert len(text.strip().splitlines()) == 1


@pytest.mark.skipif(not shutil.which("make"), reason="no make")
def test_make_demo_says_a_model_is_missing_before_it_installs_anything(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "MAKEFLAGS")}
    venv = tmp_path / "venv"
    result = subprocess.run(["make", "--no-print-directory", "demo", f"VENV={venv}", f"DEMO_DIR={tmp_path / 'demo'}"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "make demo needs a model: set OPENAI_API_KEY, or OPENAI_BASE_URL" in result.stderr
    assert not venv.exists() and not (tmp_path / "demo").exists()
