"""Arbitrary text from outside (tickets, drafts, model answers) through `loop log`, `improve` and
`apply`: the workbook always opens again with both readers, and the text comes back as written,
or with the documented replacement (a character XML forbids becomes U+FFFD)."""

from __future__ import annotations

import json

import openpyxl
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from python_calamine import CalamineWorkbook

from loop import schema
from loop.cell_values import xml_safe
from loop.cli import main
from loop.workspace import Workspace
from tests.conftest import PROMPT, _literal, draft, edits_tab, write_workbook

# The characters nobody thinks of, mixed into ordinary arbitrary text.
NASTY = ["\ud800", "\udfff", "\ufffe", "\uffff", "\x00", "\x01", "\x0b", "\x1f", "\x7f", "\x85", "\r", "\r\n", "\n",
         "\t", "\xa0", "\u2028", "\u200f", "\ufeff", "_x0041_", "_x005F_", "_x000D_", "=", "+", "@", "<", "&", "]]>",
         "😀", "👍🏽", "é", "\U0010ffff", " "]
TEXT = st.lists(st.one_of(st.text(st.characters(exclude_categories=[]), max_size=8), st.sampled_from(NASTY)),
                max_size=12).map("".join)
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def reopens(path) -> None:
    for sheet in openpyxl.load_workbook(path).worksheets:
        list(sheet.iter_rows(values_only=True))
    book = CalamineWorkbook.from_path(str(path))
    for name in book.sheet_names:
        book.get_sheet_by_name(name).to_python()


def read_back(title: str) -> list[dict]:
    """Rows as the product reads them (python-calamine), raw: no stripping."""
    table = Workspace().workbook.read([title])[title]
    return [record for _, record in table.records()]


def stored(text: str) -> str:
    """What a cell holds for `text`: XML-forbidden characters replaced; a cell of only whitespace reads empty."""
    safe = xml_safe(text)
    return "" if not safe.strip(" \t\n\r") else safe


def has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def as_sent(text: str) -> str:
    """The text after a trip through JSON: a surrogate pair written as two escapes is one character."""
    return json.loads(json.dumps(text))


@SETTINGS
@given(ticket=TEXT.map(as_sent), reply=TEXT.map(as_sent))
def test_any_text_logged_comes_back_as_written_or_is_refused_cleanly(workspace, ticket, reply):
    path = write_workbook(workspace / "loop.xlsx", [])
    line = json.dumps({"ticket": "T:" + ticket, "draft": "D:" + reply})  # ensure_ascii: surrogates as \ud800
    result = CliRunner().invoke(main, ["log"], input=line + "\n")
    if has_surrogate(ticket + reply):
        assert result.exit_code == 2 and "lone surrogate" in result.output, result.output
        assert read_back(schema.DRAFTS) == []
        return
    assert result.exit_code == 0, result.output
    reopens(path)
    row = read_back(schema.DRAFTS)[0]
    assert (row["ticket"] or "") == stored("T:" + ticket)
    assert (row["draft"] or "") == stored("D:" + reply)
    assert row["traceid"] == result.stdout.strip()


@SETTINGS
@given(name=TEXT.map(as_sent), addition=TEXT.map(as_sent), rationale=TEXT.map(as_sent))
def test_any_model_answer_goes_through_improve_and_apply_safely(workspace, model, name, addition, rationale):
    prompt_file = workspace / "prompts" / "support_agent.md"
    prompt_file.write_text(PROMPT, encoding="utf-8")
    path = write_workbook(workspace / "loop.xlsx", [draft(trace_id="f1"), draft(trace_id="s1", score="👍")])
    find = "Be friendly and professional in every reply."
    model.queue(
        {"json": {"patterns": [{"name": "P" + name, "description": rationale, "trace_ids": ["f1"]}]}},
        {"json": {"edits": [{"pattern": "P" + name, "find": find, "replace": find + " Also:" + addition,
                             "rationale": rationale, "evidence": ["f1"]}]}},
    )
    runner = CliRunner()
    result = runner.invoke(main, ["improve"])
    assert result.exit_code == 0, result.output
    reopens(path)
    title = edits_tab(path)
    row = read_back(title)[0]
    replace = find + " Also:" + addition
    # the improver trims pattern names and rationales; find and replace keep every character
    assert (row["pattern"] or "") == stored(("P" + name).strip())
    assert (row["replace"] or "") == stored(replace)
    assert (row["rationale"] or "") == stored(rationale.strip())

    book = openpyxl.load_workbook(path)
    book[title].cell(2, 1).value = True
    book.save(path)
    result = runner.invoke(main, ["apply"])
    assert result.exit_code == 0, result.output
    reopens(path)
    text = prompt_file.read_bytes().decode("utf-8")  # always valid UTF-8
    if row["status"] == "proposed":
        assert text == PROMPT.replace(find, row["replace"])
        assert read_back(title)[0]["status"] == "applied"
    else:
        assert text == PROMPT


@SETTINGS
@given(pattern=TEXT.map(xml_safe).filter(lambda t: t.strip()), label=TEXT.map(xml_safe))
def test_any_pattern_name_reaches_the_dashboard_as_plain_text(tmp_path_factory, pattern, label):
    """Pattern names come from a model and edit ids from a sheet anyone can type in (as a workbook
    can hold them): the Dashboard shows them as text, never a formula, and the workbook opens again."""
    from loop.measure import report
    from loop.config import resolve

    folder = tmp_path_factory.mktemp("dash")
    path = folder / "loop.xlsx"
    book = openpyxl.Workbook(write_only=True)  # written once: an openpyxl round trip would unescape _x0000_
    tabs = {schema.DRAFTS: [schema.DRAFT_HEADERS] + [
        [row.get(h) for h in schema.DRAFT_HEADERS] for row in (
            draft(score="👎", prompt_version="v1", pattern=pattern), draft(score="👎", prompt_version="v2", pattern=pattern))],
        "Edits 2026-11-01 0900": [schema.EDIT_HEADERS, [
            {"edit_id": "e1" + label, "pattern": pattern, "status": "applied", "applied_version": "v2"}.get(h)
            for h in schema.EDIT_HEADERS]]}
    for title, rows in tabs.items():
        sheet = book.create_sheet(title)
        for values in rows:
            sheet.append([_literal(sheet, v) for v in values])
    book.save(path)
    found = report.refresh(resolve(sheet=str(path), prompt=str(folder / "none.md")))
    reopens(path)
    sheet = openpyxl.load_workbook(path)[report.DASHBOARD]
    assert not [c.coordinate for r in sheet.iter_rows() for c in r if c.data_type == "f"]
    if found.edits and stored(found.edits[0].pattern):
        dashboard = CalamineWorkbook.from_path(str(path)).get_sheet_by_name(report.DASHBOARD).to_python()
        assert stored(found.edits[0].pattern) in {str(v) for row in dashboard for v in row}
