"""The committed template and example match the code that makes them, and the demo runs on a copy."""

import hashlib
import json
import shutil
from pathlib import Path

import openpyxl

from loop import schema
from loop.collect import workbook_template
from tests.conftest import read_tab

ROOT = Path(__file__).resolve().parent.parent


def structure(path: Path) -> dict:
    book = openpyxl.load_workbook(path)
    shape = {}
    for sheet in book.worksheets:
        shape[sheet.title] = {
            "header": [c.value for c in sheet[1]],
            "freeze": sheet.freeze_panes,
            "widths": {k: v.width for k, v in sheet.column_dimensions.items()},
            "validations": [(v.type, v.formula1, str(v.sqref)) for v in sheet.data_validations.dataValidation],
            "cells": [[c.value for c in row] for row in sheet.iter_rows()] if sheet.title == "About" else None,
        }
    return shape


def test_the_committed_template_matches_what_the_code_builds(tmp_path):
    workbook_template.build(tmp_path / "fresh.xlsx")
    committed = structure(ROOT / "sheets_template.xlsx")
    assert committed == structure(tmp_path / "fresh.xlsx"), "run `make template` and commit the result"
    assert list(committed) == [schema.DRAFTS, schema.RUNS, "About"]
    assert committed[schema.DRAFTS]["header"] == schema.DRAFT_HEADERS
    assert committed[schema.RUNS]["header"] == schema.RUN_HEADERS
    assert committed[schema.DRAFTS]["header"][:5] == ["ticket", "draft", "score", "comment", "final_reply"]
    assert committed[schema.DRAFTS]["freeze"] == "B2"  # the header row and the ticket column
    assert committed[schema.DRAFTS]["validations"] == [("list", '"👍,👎"', "C2:C1048576")]
    about = " ".join(str(v) for row in committed["About"]["cells"] for v in row if v)
    for name in schema.DRAFT_HEADERS + schema.EDIT_HEADERS:
        assert name in about


def test_the_committed_example_matches_its_source(tmp_path):
    import examples.build_example as example

    example.build(tmp_path / "loop.xlsx")
    fresh = read_tab(tmp_path / "loop.xlsx", schema.DRAFTS)
    assert fresh == read_tab(ROOT / "examples" / "loop.xlsx", schema.DRAFTS)
    assert [r["prompt_version"] for r in fresh].count("v3") == 53 and len(fresh) == 153
    (tmp_path / "prompts").mkdir()
    prompt = shutil.copy(ROOT / "examples" / "prompts" / "support_agent.md", tmp_path / "prompts")
    example.build_history(Path(prompt))
    committed = ROOT / "examples" / "prompts" / "support_agent.md.history"
    built = tmp_path / "prompts" / "support_agent.md.history"
    assert sorted(p.name for p in built.iterdir()) == sorted(p.name for p in committed.iterdir())
    assert all((built / p.name).read_bytes() == p.read_bytes() for p in committed.iterdir())
    assert fresh[0]["ticket"] and any(str(r["ticket"]).startswith("=") for r in fresh)


def test_the_demo_drafts_judges_and_improves_on_a_copy_and_leaves_the_example_alone(tmp_path, monkeypatch, model, cli):
    """What `make demo` runs, step by step."""
    digests = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (ROOT / "examples").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.name != ".kb-index.sqlite"}
    for name in ("prompts", "kb"):
        shutil.copytree(ROOT / "examples" / name, tmp_path / name, ignore=shutil.ignore_patterns(".kb-index.sqlite"))
    for name in ("loop.xlsx", "tickets.jsonl"):
        shutil.copy(ROOT / "examples" / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOOP_JUDGE_PROMPT", raising=False)

    assert "Logged 12 drafts" in cli("draft", "--tickets", "tickets.jsonl", "--kb", "kb").output
    drafted = read_tab(tmp_path / "loop.xlsx", schema.DRAFTS)[-12:]
    assert all(row["kb_sources"] and row["draft"] for row in drafted)
    assert "Judged 15 of 15" in cli("judge").output  # the 12 new drafts and the 3 nobody reviewed
    result = cli("improve", "--since", "2026-11-01", "--include-judge")
    assert "failures" in result.output and "Wrote tab" in result.output
    newest = [t for t in openpyxl.load_workbook(tmp_path / "loop.xlsx").sheetnames if t.startswith("Edits ")][-1]
    assert newest.startswith("Edits 20") and newest not in ("Edits 2026-10-12 0830", "Edits 2026-10-26 0830")
    edits = read_tab(tmp_path / "loop.xlsx", newest)
    assert edits and all(e["status"] == "proposed" for e in edits)
    assert all(e["fixed_cited"] and e["regressed"] for e in edits)  # every edit arrives replayed
    assert "fixed " in result.output and "regressed" in result.output
    assert len(read_tab(tmp_path / "loop.xlsx", "Runs")) == 1
    # the demo ends with a Dashboard: three versions, the two edits that made v2 and v3, the judge
    result = cli("report", "--json")
    figures = json.loads(result.stdout)
    assert [(v["version"], v["reviewed"], v["up"]) for v in figures["versions"]] == [
        ("v1", 50, 8), ("v2", 50, 12), ("v3", 50, 14)]
    assert [e["verdict"] for e in figures["edits"]][0] == "helped"
    assert figures["edits"][1]["failures_after"] > 0  # this run placed v3's failures in patterns
    assert figures["judge"][0]["both"] == 50
    book = openpyxl.load_workbook(tmp_path / "loop.xlsx")
    assert book.sheetnames[-1] == "Dashboard" and len(book["Dashboard"]._charts) == 1
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (ROOT / "examples").rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.name != ".kb-index.sqlite"}
    assert after == digests
