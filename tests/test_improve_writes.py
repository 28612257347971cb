"""What `loop improve` writes into Drafts: each failure's pattern, and only where it changes, so a run
over failures already placed writes no Drafts cell at all (at 50,000 rows each one costs)."""

from __future__ import annotations

from loop import schema
from loop.sheets.xlsx import XlsxWorkbook
from tests.conftest import draft, read_tab, write_workbook


def test_a_run_that_places_failures_where_they_already_are_writes_no_drafts_cell(workspace, model, cli,
                                                                                   monkeypatch):
    rows = [draft(trace_id=f"v{i}", comment="way too long, cut it") for i in range(3)]
    rows += [draft(trace_id="m0", comment="that menu path doesn't exist")]
    path = write_workbook(workspace / "loop.xlsx", rows)
    batches, write = [], XlsxWorkbook.write

    def recorded(self, batch, wait=None, **kwargs):
        batches.append(batch)
        return write(self, batch, wait, **kwargs)

    monkeypatch.setattr(XlsxWorkbook, "write", recorded)
    cli("improve", "--no-check")
    placed = {r["trace_id"]: r["pattern"] for r in read_tab(path, schema.DRAFTS)}
    assert all(placed.values()) and len([u for u in batches[-1].updates if u.tab == schema.DRAFTS]) == 4
    cli("improve", "--no-check", "--force")
    assert [u for u in batches[-1].updates if u.tab == schema.DRAFTS] == []
    assert {r["trace_id"]: r["pattern"] for r in read_tab(path, schema.DRAFTS)} == placed
