"""Open the workbook named by LOOP_SHEET with the backend that serves it."""

from __future__ import annotations

import re

from .base import (Append, CellUpdate, Chart, DeleteRows, Grid, NewTab, RichText, Run, Table, Workbook,
                   WriteBatch)

_KEY = re.compile(r"^[A-Za-z0-9_-]{25,}$")  # a spreadsheet key, as in /spreadsheets/d/<key>/edit

__all__ = ["Append", "CellUpdate", "Chart", "DeleteRows", "Grid", "NewTab", "RichText", "Run", "Table", "Workbook",
           "WriteBatch", "is_google", "open_workbook"]


def is_google(location: str) -> bool:
    """A Sheets URL or a bare spreadsheet key (not a local path): decided without importing gspread,
    which a local workbook never needs."""
    if location.startswith(("http://", "https://")):
        return True
    return _KEY.match(location) is not None and not location.lower().endswith((".xlsx", ".xlsm"))


def open_workbook(location: str, credentials: str | None = None) -> Workbook:
    """A Google Sheet for a Sheets URL or spreadsheet key, else a local .xlsx workbook."""
    if is_google(location):
        from .google import GoogleWorkbook, spreadsheet_key

        return GoogleWorkbook(spreadsheet_key(location), credentials_file=credentials)
    from .xlsx import XlsxWorkbook

    return XlsxWorkbook(location)
