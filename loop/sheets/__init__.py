"""Open the workbook named by LOOP_SHEET with the backend that serves it."""

from __future__ import annotations

from loop.sheets.base import (Append, CellUpdate, Chart, DeleteRows, Grid, NewTab, RichText, Run, Table, Workbook,
                              WriteBatch, is_google)

__all__ = ["Append", "CellUpdate", "Chart", "DeleteRows", "Grid", "NewTab", "RichText", "Run", "Table", "Workbook",
           "WriteBatch", "is_google", "open_workbook"]


def open_workbook(location: str, credentials: str | None = None) -> Workbook:
    """A Google Sheet for a Sheets URL or spreadsheet key, else a local .xlsx workbook."""
    if is_google(location):
        from loop.sheets.google import GoogleWorkbook, spreadsheet_key

        return GoogleWorkbook(spreadsheet_key(location), credentials_file=credentials)
    from loop.sheets.xlsx import XlsxWorkbook

    return XlsxWorkbook(location)
