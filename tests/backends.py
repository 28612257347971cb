"""The same workbook on either backend, for tests that hold for both (CONTRACT §3–§5).

`XlsxSheet` is a local file; `GoogleSheet` is a spreadsheet on the fake Sheets API server, reached
by the real gspread and google-auth through a service-account key whose token_uri is the fake's.
Both offer: create the Drafts tab, read a tab back as dicts, tick an Edits row, list formulas.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

import openpyxl

from loop import schema
from loop.cell_values import to_serial
from tests.conftest import read_tab, write_workbook

KEY = "1LoopTestSpreadsheetKey0123456789abcdef"


def service_account_key(path: Path, token_uri: str, email: str = "loop-bot@proj.iam.gserviceaccount.com") -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "proj", "private_key_id": "1", "private_key": pem,
        "client_email": email, "client_id": "1", "token_uri": token_uri,
    }))
    return path


class XlsxSheet:
    name = "xlsx"

    def __init__(self, folder: Path):
        self.path = folder / "loop.xlsx"
        self.location = str(self.path)

    def create(self, rows: list[dict], headers: list[str] | None = None) -> None:
        write_workbook(self.path, rows, headers)

    def tab(self, title: str) -> list[dict]:
        return read_tab(self.path, title)

    def titles(self) -> list[str]:
        return openpyxl.load_workbook(self.path, read_only=True).sheetnames

    def tick(self, title: str, row: int, value=True) -> None:
        book = openpyxl.load_workbook(self.path)
        book[title].cell(row, 1).value = value
        book.save(self.path)

    def formulas(self, title: str) -> list:
        sheet = openpyxl.load_workbook(self.path)[title]
        return [cell.coordinate for row in sheet.iter_rows() for cell in row if cell.data_type == "f"]

    def snapshot(self):
        return self.path.read_bytes()


class GoogleSheet:
    name = "google"

    def __init__(self, fake):
        self.fake = fake
        self.location = KEY

    def create(self, rows: list[dict], headers: list[str] | None = None) -> None:
        headers = headers or schema.DRAFT_HEADERS
        keys = [h.lower().replace(" ", "_") for h in headers]
        grid = [list(headers)] + [[_as_google(row.get(key)) for key in keys] for row in rows]
        self.fake.add_spreadsheet(KEY, {schema.DRAFTS: grid, "Notes": [["kept as it is"]]})

    def tab(self, title: str) -> list[dict]:
        rows = self.fake.values(KEY, title)
        return [dict(zip(rows[0], row + [None] * (len(rows[0]) - len(row)))) for row in rows[1:]]

    def titles(self) -> list[str]:
        return self.fake.titles(KEY)

    def tick(self, title: str, row: int, value=True) -> None:
        self.fake._sheet(KEY, title)["cells"][(row - 1, 0)] = value

    def formulas(self, title: str) -> list:
        return self.fake.formulas(KEY, title)

    def snapshot(self):
        return {t: (self.fake.values(KEY, t), self.fake.validations(KEY, t)) for t in self.fake.titles(KEY)}


def _as_google(value):
    """A value as the Sheets API returns it unformatted: dates as serial numbers."""
    if isinstance(value, datetime):
        return to_serial(value if value.tzinfo else value.replace(tzinfo=timezone.utc))
    if isinstance(value, date):
        return to_serial(datetime(value.year, value.month, value.day, tzinfo=timezone.utc))
    return value
