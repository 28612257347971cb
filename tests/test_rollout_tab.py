"""The Rollout tab (CONTRACT §5b): a row per canary, its promote and stop checkboxes first, rewritten in
place, never doubled, on the local workbook and on the fake Google API."""

from __future__ import annotations

from loop import schema
from loop.ship import rollout
from loop.store.prompts import RUNNING, STOPPED
from loop.workspace import Workspace


def start_canary(here: Workspace, text: str, share: float = 0.1):
    """A new version of the prompt served to `share` of tickets, as `loop apply --canary` leaves it."""
    records = rollout.records_of(here)
    serving = records.serving()
    with records.change(serving) as change:
        if serving is None:
            first = change.add_version(b"You are a support agent.\n", None, "initial")
            change.make_current(first.number, "initial")
        new = change.add_version(text.encode(), change.serving.current, "apply")
        return change.start_canary(new.number, share)


def stop_canary(here: Workspace, reason: str = "the guardrail: canary worse") -> None:
    rollout.records_of(here).stop_canary(reason, who="loop report")


def test_no_canary_no_tab_and_the_sheet_is_not_read(sheet):
    sheet.create([])
    assert rollout.act(Workspace()) == []
    assert schema.ROLLOUT not in sheet.titles()


def test_the_tab_has_a_row_per_canary_with_checkboxes_first(sheet):
    sheet.create([])
    here = Workspace()
    first = start_canary(here, "v2 text\n", 0.1)
    rollout.act(here)
    assert sheet.titles()[-1] == schema.ROLLOUT
    (row,) = sheet.tab(schema.ROLLOUT)
    assert list(row)[:2] == ["promote", "stop"] and list(row) == schema.ROLLOUT_HEADERS
    assert (row["promote"], row["stop"]) == (False, False)
    assert (row["version"], row["base"], row["share"], row["status"]) == ("v2", "v1", "10%", RUNNING)
    assert str(row["canary_id"]) == str(first.id) and not row["ended"]
    assert all(row[name] in (None, "") for name in schema.ROLLOUT_FIGURES)  # no figures without a callable
    if sheet.name == "google":
        columns = sorted(v["range"]["startColumnIndex"] for v in sheet.fake.validations(sheet.location, "Rollout")
                         if v["rule"]["condition"]["type"] == "BOOLEAN")
        assert columns == [0, 1]


def test_rows_are_rewritten_in_place_and_a_new_canary_is_appended(sheet):
    sheet.create([])
    here = Workspace()
    first = start_canary(here, "v2 text\n")
    rollout.act(here)
    stop_canary(here)
    rollout.act(here)
    rollout.act(here)
    (row,) = sheet.tab(schema.ROLLOUT)
    assert (row["status"], row["reason"], row["share"]) == (STOPPED, "the guardrail: canary worse", "10%")
    assert row["ended"]
    second = start_canary(here, "v3 text\n", 0.25)
    rollout.act(here, figures=lambda version: {"reviews_current": 40, "reviews_canary": 12,
                                               "difference": "-3 points (-20 to +14)",
                                               "verdict": f"too early to tell for v{version}"})
    rows = sheet.tab(schema.ROLLOUT)
    assert [str(r["canary_id"]) for r in rows] == [str(first.id), str(second.id)]
    assert [(r["version"], r["base"], r["share"], r["status"]) for r in rows] == [
        ("v2", "v1", "10%", STOPPED), ("v3", "v1", "25%", RUNNING)]
    assert rows[1]["verdict"] == "too early to tell for v3" and rows[1]["reviews_canary"] == 12
    assert rows[0]["verdict"] == "too early to tell for v2"
    if sheet.name == "google":  # the appended row's ticks are checkboxes too
        ticks = {(v["range"]["startRowIndex"], v["range"]["startColumnIndex"])
                 for v in sheet.fake.validations(sheet.location, "Rollout")}
        assert {(2, 0), (2, 1)} <= ticks


def test_a_running_canarys_ticks_and_unknown_columns_are_left_alone(sheet, tmp_path):
    sheet.create([])
    here = Workspace()
    start_canary(here, "v2 text\n")
    rollout.act(here)
    if sheet.name == "google":
        cells = sheet.fake._sheet(sheet.location, "Rollout")["cells"]
        cells[(0, 20)], cells[(1, 20)] = "our notes", "ask Dana first"
    else:
        import openpyxl

        book = openpyxl.load_workbook(sheet.path)
        book["Rollout"].cell(1, 21).value, book["Rollout"].cell(2, 21).value = "our notes", "ask Dana first"
        book.save(sheet.path)
    records = rollout.records_of(here)
    with records.change(records.serving()) as change:
        change.set_share(0.5)
    table = here.workbook.read(["Rollout"])["Rollout"]
    batch = rollout.rows_batch(records, table)
    assert {u.column for u in batch.updates} == {"share"} and not batch.appends
    here.write(batch)
    (row,) = sheet.tab(schema.ROLLOUT)
    assert row["share"] == "50%" and row["our notes"] == "ask Dana first"


def test_the_tab_is_found_whatever_its_case_and_spacing(sheet):
    sheet.create([])
    here = Workspace()
    start_canary(here, "v2 text\n")
    rollout.act(here)
    if sheet.name == "google":
        sheet.fake._sheet(sheet.location, "Rollout")["properties"]["title"] = " rollout "
    else:
        import openpyxl

        book = openpyxl.load_workbook(sheet.path)
        book["Rollout"].title = "ROLL OUT"
        book.save(sheet.path)
    stop_canary(here)
    start_canary(here, "v3 text\n")
    rollout.act(Workspace())
    title = rollout.tab_title(Workspace().workbook)
    assert title != schema.ROLLOUT and [r["version"] for r in sheet.tab(title)] == ["v2", "v3"]
    assert [t for t in sheet.titles() if "roll" in t.lower()] == [title]  # no second tab


def test_a_tab_another_command_added_meanwhile_is_written_into_not_doubled(sheet):
    sheet.create([])
    here = Workspace()
    start_canary(here, "v2 text\n")
    records = rollout.records_of(here)
    rollout.refresh(Workspace())  # another command adds the tab after this one found none
    rollout._write_rows(here, records, None, {}, lambda version: {"verdict": "canary better"})
    (row,) = sheet.tab(schema.ROLLOUT)
    assert row["verdict"] == "canary better"
    assert [t for t in sheet.titles() if "roll" in t.lower()] == [schema.ROLLOUT]
