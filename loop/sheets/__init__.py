"""Open the workbook named by LOOP_SHEET with the backend that serves it."""

from __future__ import annotations

from .base import Append, CellUpdate, NewTab, Table, Workbook, WriteBatch

__all__ = ["Append", "CellUpdate", "NewTab", "Table", "Workbook", "WriteBatch", "is_google", "open_workbook"]


def is_google(location: str) -> bool:
    from .google import spreadsheet_key

    return spreadsheet_key(location) is not None


def open_workbook(location: str, credentials: str | None = None) -> Workbook:
    """A Google Sheet for a Sheets URL or spreadsheet key, else a local .xlsx workbook."""
    from .google import GoogleWorkbook, spreadsheet_key

    key = spreadsheet_key(location)
    if key:
        return GoogleWorkbook(key, credentials_file=credentials)
    from .xlsx import XlsxWorkbook

    return XlsxWorkbook(location)
