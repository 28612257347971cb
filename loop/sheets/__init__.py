"""Open the workbook named by LOOP_SHEET with the backend that serves it."""

from __future__ import annotations

from typing import Callable

from .base import Append, CellUpdate, NewTab, Table, Workbook, WriteBatch
from .xlsx import XlsxWorkbook
from ..errors import UsageError

__all__ = ["Append", "CellUpdate", "NewTab", "Table", "Workbook", "WriteBatch", "open_workbook"]


def open_workbook(location: str, warn: Callable[[str], None] = lambda message: None) -> Workbook:
    if location.startswith(("http://", "https://")) or (
        not location.lower().endswith((".xlsx", ".xlsm")) and "/" not in location and len(location) >= 30
    ):
        raise UsageError(
            f"{location!r} looks like a Google Sheet; this version reads local .xlsx workbooks only."
        )
    return XlsxWorkbook(location, warn=warn)
