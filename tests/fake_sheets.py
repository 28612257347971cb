"""A local Google Sheets API v4 (and OAuth token endpoint) for tests.

The real gspread / google-auth clients talk to it over HTTP. Response shapes, error bodies and range
labels follow traffic recorded against the real API (gspread's cassettes): spreadsheets.get metadata,
values:batchGet and values.get, spreadsheets:batchUpdate replies, and the 403/404/400 error bodies.

- Every API request needs "Authorization: Bearer <token>" issued by POST /token, else 401.
- An unknown key answers 404; a spreadsheet added with shared=False answers 403.
- batchUpdate is atomic: requests apply to a deep copy that is kept only if all of them succeed.
- Reads label a range as requested, clipped to the grid ("Drafts" -> "Drafts!A1:Z1000"), omit trailing
  empty rows and cells, give "" for empty cells inside the data, and give numbers and booleans as JSON
  values (UNFORMATTED_VALUE, FORMULA) or as text (FORMATTED_VALUE, the default).

Not modelled: formula evaluation (a formula cell reads back as its formula text in every render option),
number formats and dates, strict validation of written values, and values.update/append/clear (404).
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
import time
import uuid
import zlib
from urllib.parse import parse_qs, unquote, urlsplit

from tests.local_server import LocalServer

MAX_CELL_CHARS = 50_000
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
          429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
MESSAGES = {403: "The caller does not have permission", 404: "Requested entity was not found.",
            429: "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute per user' of service "
                 "'sheets.googleapis.com' for consumer 'project_number:1'.",
            500: "Internal error encountered.", 503: "The service is currently unavailable."}
AUTH_HELP = ("Expected OAuth 2 access token, login cookie or other valid authentication credential. "
             "See https://developers.google.com/identity/sign-in/web/devconsole-project.")
SPREADSHEET_PROPERTIES = {
    "locale": "en_US", "autoRecalc": "ON_CHANGE", "timeZone": "Etc/GMT",
    "defaultFormat": {
        "backgroundColor": {"red": 1, "green": 1, "blue": 1},
        "padding": {"top": 2, "right": 3, "bottom": 2, "left": 3},
        "verticalAlignment": "BOTTOM", "wrapStrategy": "OVERFLOW_CELL",
        "textFormat": {"foregroundColor": {}, "fontFamily": "arial,sans,sans-serif", "fontSize": 10, "bold": False,
                       "italic": False, "strikethrough": False, "underline": False,
                       "foregroundColorStyle": {"rgbColor": {}}},
        "backgroundColorStyle": {"rgbColor": {"red": 1, "green": 1, "blue": 1}},
    },
}
VALUE_TYPES = {"stringValue": str, "numberValue": (int, float), "boolValue": bool, "formulaValue": str}
ROUTE = re.compile(r"/v4/spreadsheets/([^/:]+)(:batchUpdate|/values:batchGet|/values/(.+))?", re.DOTALL)
A1 = re.compile(r"([A-Za-z]*)(\d*)(?::([A-Za-z]*)(\d*))?")


class ApiError(Exception):
    def __init__(self, code: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.code, self.message, self.headers = code, message, headers or {}


def col_index(letters: str) -> int:
    return sum((ord(ch) - 64) * 26**power for power, ch in enumerate(reversed(letters.upper()))) - 1


def col_letters(index: int) -> str:
    letters = ""
    while index >= 0:
        index, rem = divmod(index, 26)
        letters, index = chr(65 + rem) + letters, index - 1
    return letters


def quote_title(title: str) -> str:
    """Sheet names are quoted in range labels unless they are a plain identifier ("Drafts", "Sheet1")."""
    looks_like_a_cell = re.fullmatch(r"[A-Z]{1,3}\d+|R\d*C\d*", title, re.IGNORECASE)
    if re.fullmatch(r"[A-Za-z_]\w*", title, re.ASCII) and not looks_like_a_cell:
        return title
    return "'" + title.replace("'", "''") + "'"


def split_range(text: str) -> tuple[str, str | None]:
    """'It''s'!A1 -> ("It's", "A1"); Drafts -> ("Drafts", None); Edits 2026!A:A -> ("Edits 2026", "A:A")."""
    if text.startswith("'"):
        match = re.fullmatch(r"'((?:[^']|'')*)'(?:!(.*))?", text, re.DOTALL)
        if not match:
            raise ApiError(400, f"Unable to parse range: {text}")
        return match.group(1).replace("''", "'"), match.group(2)
    title, bang, cells = text.rpartition("!")
    return (title, cells) if bang else (text, None)


def plain(value):
    """A number as the API prints it: 2.0 -> 2."""
    return int(value) if isinstance(value, float) and value.is_integer() and abs(value) < 2**53 else value


def formatted(value) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        value = plain(value)
        return str(value) if isinstance(value, int) else format(value, ".10g").upper()
    return value


def new_sheet(sheet_id: int, title: str, rows: int, cols: int) -> dict:
    return {"properties": {"sheetId": sheet_id, "title": title, "index": 0, "sheetType": "GRID",
                           "gridProperties": {"rowCount": rows, "columnCount": cols}},
            "cells": {}, "formulas": set(), "validations": [], "runs": {}, "formats": {}, "sizes": {},
            "filter": None, "charts": []}


# the enums of a basic chart, as the API documents them
CHART_TYPES = {"BAR", "LINE", "AREA", "COLUMN", "SCATTER", "COMBO", "STEPPED_AREA"}
LEGENDS = {"BOTTOM_LEGEND", "LEFT_LEGEND", "RIGHT_LEGEND", "TOP_LEGEND", "NO_LEGEND"}
AXES = {"BOTTOM_AXIS", "LEFT_AXIS", "RIGHT_AXIS"}
DASHES = {"INVISIBLE", "CUSTOM", "SOLID", "DOTTED", "MEDIUM_DASHED", "MEDIUM_DASHED_DOTTED", "LONG_DASHED",
          "LONG_DASHED_DOTTED"}


def new_sheet_id(sheets: list, seed: str) -> int:
    taken = {s["properties"]["sheetId"] for s in sheets}
    sheet_id = zlib.crc32(seed.encode()) % 2_000_000_000 + 1
    while sheet_id in taken:
        sheet_id += 1
    return sheet_id


def find(sheets: list, title: str) -> dict | None:
    return next((s for s in sheets if s["properties"]["title"].casefold() == title.casefold()), None)


def by_id(sheets: list, sheet_id) -> dict:
    sheet = next((s for s in sheets if s["properties"]["sheetId"] == sheet_id), None)
    if sheet is None:
        raise ApiError(400, f"No grid with id: {sheet_id}")
    return sheet


def reindex(sheets: list) -> None:
    for index, sheet in enumerate(sheets):
        sheet["properties"]["index"] = index


def last_row(sheet: dict) -> int:
    return max((r for r, _ in sheet["cells"]), default=-1) + 1


def check_grid(sheet: dict, first_r: int, last_r: int, first_c: int, last_c: int) -> None:
    """Name the first row (then column) of a block that falls outside the grid, as the API does."""
    grid = sheet["properties"]["gridProperties"]
    rows, cols = grid["rowCount"], grid["columnCount"]
    if max(first_r, last_r) >= rows:
        raise ApiError(400, f"GridCoordinate.rowIndex[{max(first_r, rows)}] is after last row in grid[{rows - 1}]")
    if max(first_c, last_c) >= cols:
        raise ApiError(400, f"GridCoordinate.columnIndex[{max(first_c, cols)}] is after last column "
                            f"in grid[{cols - 1}]")


class FakeSheets(LocalServer):
    """Start with `with FakeSheets() as fake:`; API root is `fake.url`, token endpoint `fake.url + "/token"`."""

    def __init__(self):
        self.requests: list[dict] = []
        self.token_requests = 0
        self.service_account_emails: list[str] = []
        self._books: dict[str, dict] = {}
        self._tokens: set[str] = set()
        self._faults: list[dict] = []
        self._lock = threading.RLock()
        super().__init__()
        self.url = self.root

    def handle(self, handler) -> None:
        self._handle(handler)

    # ----- test-side API -----

    def add_spreadsheet(self, key: str, tabs: dict[str, list[list]] | None = None, title: str = "Loop reviews",
                        shared: bool = True, charts: tuple[str, ...] = ()) -> None:
        """`charts`: titles of sheets that are a chart of their own (sheetType OBJECT, no grid), as a chart
        moved to its own sheet is."""
        sheets: list[dict] = []
        for name, rows in (tabs or {"Sheet1": []}).items():
            width = max((len(row) for row in rows), default=0)
            sheet = new_sheet(new_sheet_id(sheets, f"{key}/{name}") if sheets else 0, name,
                              max(1000, len(rows)), max(26, width))
            sheet["cells"] = {(r, c): v for r, row in enumerate(rows) for c, v in enumerate(row) if v not in (None, "")}
            sheets.append(sheet)
        for name in charts:
            sheet = new_sheet(new_sheet_id(sheets, f"{key}/{name}"), name, 1, 1)
            sheet["properties"]["sheetType"] = "OBJECT"
            del sheet["properties"]["gridProperties"]
            sheets.append(sheet)
        reindex(sheets)
        with self._lock:
            self._books[key] = {"title": title, "shared": shared, "sheets": sheets}

    def values(self, key: str, title: str) -> list[list]:
        sheet = self._sheet(key, title)
        rows: list[list] = [[] for _ in range(last_row(sheet))]
        for (r, c), value in sorted(sheet["cells"].items()):
            rows[r].extend([None] * (c - len(rows[r])) + [value])
        return rows

    def titles(self, key: str) -> list[str]:
        with self._lock:
            return [s["properties"]["title"] for s in self._books[key]["sheets"]]

    def properties(self, key: str, title: str) -> dict:
        return copy.deepcopy(self._sheet(key, title)["properties"])

    def validations(self, key: str, title: str) -> list[dict]:
        return copy.deepcopy(self._sheet(key, title)["validations"])

    def formulas(self, key: str, title: str) -> list[tuple[int, int]]:
        return sorted(self._sheet(key, title)["formulas"])

    def runs(self, key: str, title: str) -> dict[tuple[int, int], list[dict]]:
        """(row, column) → the textFormatRuns of each cell that has them (0-based, as the API counts)."""
        return copy.deepcopy(self._sheet(key, title)["runs"])

    def formats(self, key: str, title: str) -> dict[tuple[int, int], dict]:
        """(row, column) → the userEnteredFormat set on each cell (by updateCells or repeatCell)."""
        return copy.deepcopy(self._sheet(key, title)["formats"])

    def sizes(self, key: str, title: str) -> dict[tuple[str, int], int]:
        """(ROWS or COLUMNS, index) → pixelSize set by updateDimensionProperties."""
        return dict(self._sheet(key, title)["sizes"])

    def basic_filter(self, key: str, title: str) -> dict | None:
        return copy.deepcopy(self._sheet(key, title)["filter"])

    def charts(self, key: str, title: str) -> list[dict]:
        """The charts added to a tab (addChart's EmbeddedChart, with its chartId)."""
        return copy.deepcopy(self._sheet(key, title)["charts"])

    def fail(self, *actions: dict) -> None:
        """Queue {"status": 429, "headers": {...}, "message": ...} or {"delay": s}, optionally with
        "match": "batchUpdate" | "batchGet" | "metadata" | "values" to wait for a request of that kind.
        With "after": True the request is applied first, then {"delay": s} holds the answer back or
        {"drop": True} closes the connection without one: a write whose answer was lost. {"call": f}
        runs f() before the request is applied: another person editing the sheet at that moment
        ({"match": ...} alone lets one such request pass untouched); with "after": True, once the
        answer is made and before it is sent."""
        with self._lock:
            self._faults.extend(actions)

    def _sheet(self, key: str, title: str) -> dict:
        with self._lock:
            sheet = find(self._books[key]["sheets"], title)
        if sheet is None:
            raise KeyError(f"no tab {title!r} in {key!r}")
        return sheet

    # ----- HTTP -----

    def _handle(self, handler) -> None:
        method, parts = handler.command, urlsplit(handler.path)
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        if parts.path == "/token" and method == "POST":
            return self._token(handler, raw)
        path, query = unquote(parts.path), parse_qs(parts.query, keep_blank_values=True)
        try:
            body, bad_json = (json.loads(raw) if raw else None), False
        except ValueError:
            body, bad_json = None, True
        with self._lock:
            self.requests.append({"method": method, "path": path, "query": query, "body": body})
        token = handler.headers.get("Authorization", "")
        try:
            if not token.startswith("Bearer "):
                raise ApiError(401, f"Request is missing required authentication credential. {AUTH_HELP}")
            if token[len("Bearer "):] not in self._tokens:
                raise ApiError(401, f"Request had invalid authentication credentials. {AUTH_HELP}")
            after = self._inject_fault(path)
            if bad_json or not isinstance(body, (dict, type(None))):
                raise ApiError(400, "Invalid JSON payload received.")
            payload = self._route(method, path, query, body or {})
            if after and after.get("call"):  # applied and answered as it stood; then another writer acts
                after["call"]()
            if after and after.get("drop"):  # applied, then the connection broke before the answer
                handler.close_connection = True
                handler.connection.shutdown(2)
                return
            if after and after.get("delay"):  # applied, then the answer came too late
                time.sleep(after["delay"])
        except Exception as exc:  # noqa: BLE001 -- an ApiError answers as Google would; anything else is a bug: 500
            err = exc if isinstance(exc, ApiError) else ApiError(500, f"fake_sheets crashed: {exc!r}")
            if err.code == 401:
                err.headers.setdefault("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"')
            error = {"code": err.code, "message": err.message, "status": STATUS.get(err.code, "UNKNOWN")}
            return self._send(handler, err.code, {"error": error}, err.headers)
        self._send(handler, 200, payload)

    def _inject_fault(self, path: str) -> dict | None:
        """Act on the next queued fault for this kind of request; a fault marked "after" is returned,
        to act once the request has been applied."""
        match = ROUTE.fullmatch(path)
        suffix = match.group(2) if match else None  # None: metadata; ":batchUpdate", "/values:batchGet", "/values/..."
        kind = (suffix.split(":")[-1] if suffix in (":batchUpdate", "/values:batchGet")
                else "values" if suffix else "metadata")
        with self._lock:
            action = next((a for a in self._faults if a.get("match") in (None, kind)), None)
            if action is not None:
                self._faults.remove(action)
        if action and action.get("after"):
            return action
        if action and action.get("call"):
            action["call"]()
        if action and action.get("delay"):
            time.sleep(action["delay"])
        if action and "status" in action:
            status = action["status"]
            message = action.get("message", MESSAGES.get(status, "Error"))
            raise ApiError(status, message, dict(action.get("headers", {})))
        return None

    def _token(self, handler, raw: bytes) -> None:
        form = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        with self._lock:
            self.token_requests += 1
        grant = form.get("grant_type")
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            try:  # a service-account JWT: read the payload, do not verify the signature
                segment = form["assertion"].split(".")[1]
                claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
            except (KeyError, IndexError, ValueError):
                return self._send(handler, 400, {"error": "invalid_grant", "error_description": "Invalid JWT."})
            with self._lock:
                self.service_account_emails.append(claims.get("iss", ""))
        elif grant == "authorization_code":  # a person's consent, as the OAuth flow of `loop auth` ends
            if not form.get("code"):
                return self._send(handler, 400, {"error": "invalid_grant", "error_description": "Missing code."})
        elif grant != "refresh_token" or not form.get("refresh_token"):
            return self._send(handler, 400, {"error": "unsupported_grant_type",
                                             "error_description": f"Invalid grant_type: {grant or ''}"})
        token = "ya29.fake-" + uuid.uuid4().hex
        with self._lock:
            self._tokens.add(token)
        answer = {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
        if grant == "authorization_code":
            answer.update(refresh_token="1//fake-refresh", scope="https://www.googleapis.com/auth/spreadsheets")
        self._send(handler, 200, answer)

    @staticmethod
    def _send(handler, status: int, payload: dict, headers: dict | None = None) -> None:
        data = (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=UTF-8")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    # ----- reads -----

    def _route(self, method: str, path: str, query: dict, body: dict) -> dict:
        match = ROUTE.fullmatch(path)
        if not match:
            raise ApiError(404, f"fake_sheets has no handler for {method} {path}")
        key, suffix, one_range = match.groups()
        with self._lock:
            book = self._books.get(key)
            if book is None:
                raise ApiError(404, MESSAGES[404])
            if not book["shared"]:
                raise ApiError(403, MESSAGES[403])
            if method == "GET" and suffix is None:
                return {"spreadsheetId": key,
                        "properties": {"title": book["title"], **copy.deepcopy(SPREADSHEET_PROPERTIES)},
                        "sheets": [{"properties": copy.deepcopy(s["properties"])} for s in book["sheets"]],
                        "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{key}/edit"}
            if method == "GET" and suffix == "/values:batchGet":
                ranges = [self._read(book, text, query) for text in query.get("ranges", [])]
                return {"spreadsheetId": key, "valueRanges": ranges}
            if method == "GET" and one_range is not None:
                return self._read(book, one_range, query)
            if method == "POST" and suffix == ":batchUpdate":
                return self._batch_update(key, book, body)
        raise ApiError(404, f"fake_sheets has no handler for {method} {path}")

    def _read(self, book: dict, text: str, query: dict) -> dict:
        sheet = find(book["sheets"], split_range(text)[0])
        if sheet is not None and sheet["properties"].get("sheetType") == "OBJECT":
            raise ApiError(400, f"Unable to parse range: {text}")  # a chart sheet has no cells
        sheet, (r0, c0, r1, c1) = self._resolve(book, text)
        render = query.get("valueRenderOption", ["FORMATTED_VALUE"])[0]
        major = query.get("majorDimension", ["ROWS"])[0]
        grid = [[sheet["cells"].get((r, c)) for c in range(c0, c1)] for r in range(r0, min(r1, last_row(sheet)))]
        if major == "COLUMNS":
            grid = [list(column) for column in zip(*grid)]
        rows = []
        for row in grid:
            while row and row[-1] is None:
                row.pop()
            rows.append(["" if v is None else formatted(v) if render == "FORMATTED_VALUE" else plain(v) for v in row])
        while rows and not rows[-1]:
            rows.pop()
        label = f"{col_letters(c0)}{r0 + 1}" + ("" if (r1 - r0, c1 - c0) == (1, 1) else f":{col_letters(c1 - 1)}{r1}")
        result = {"range": f"{quote_title(sheet['properties']['title'])}!{label}", "majorDimension": major}
        return {**result, "values": rows} if rows else result

    @staticmethod
    def _resolve(book: dict, text: str) -> tuple[dict, tuple[int, int, int, int]]:
        """A range -> (sheet, (first row, first col, end row, end col)), open ends filled from the grid."""
        title, cells = split_range(text)
        sheet = find(book["sheets"], title)
        if sheet is None and cells is None and A1.fullmatch(text):  # "A1:B2" with no title: the first sheet
            sheet, cells = book["sheets"][0], text
        match = A1.fullmatch("A:ZZZ" if cells is None else cells)
        if sheet is None or not match or not any(match.groups()) or (
                match.group(3) is None and not (match.group(1) and match.group(2))):
            raise ApiError(400, f"Unable to parse range: {text}")
        grid = sheet["properties"]["gridProperties"]
        rows, cols = grid["rowCount"], grid["columnCount"]
        c_a, r_a, c_b, r_b = match.groups() if match.group(3) is not None else match.groups()[:2] * 2
        r0, c0 = (int(r_a) - 1 if r_a else 0), (col_index(c_a) if c_a else 0)
        r1, c1 = (int(r_b) if r_b else rows), (col_index(c_b) + 1 if c_b else cols)
        r0, r1, c0, c1 = min(r0, r1 - 1), max(r0 + 1, r1), min(c0, c1 - 1), max(c0 + 1, c1)
        return sheet, (r0, c0, max(r0 + 1, min(r1, rows)), max(c0 + 1, min(c1, cols)))

    # ----- batchUpdate -----

    def _batch_update(self, key: str, book: dict, body: dict) -> dict:
        requests = body.get("requests") or []
        if not requests:
            raise ApiError(400, "Must specify at least one request.")
        sheets = copy.deepcopy(book["sheets"])
        replies = []
        for i, request in enumerate(requests):
            if len(request) != 1:
                raise ApiError(400, f"Invalid requests[{i}]: exactly one kind of request must be set.")
            (kind, args), = request.items()
            handler = getattr(self, f"_do_{kind}", None)
            if handler is None:
                raise ApiError(400, f"Invalid requests[{i}]: fake_sheets does not support {kind!r}.")
            try:
                replies.append(handler(key, sheets, args) or {})
            except ApiError as err:
                raise ApiError(400, f"Invalid requests[{i}].{kind}: {err.message}") from None
        book["sheets"] = sheets
        return {"spreadsheetId": key, "replies": replies}

    def _do_addSheet(self, key: str, sheets: list, args: dict) -> dict:
        props = args.get("properties", {})
        title = props.get("title") or next(f"Sheet{n}" for n in range(len(sheets) + 1, 10**6)
                                           if find(sheets, f"Sheet{n}") is None)
        if find(sheets, title) is not None:
            raise ApiError(400, f'A sheet with the name "{title}" already exists. Please enter another name.')
        sheet_id = props.get("sheetId", new_sheet_id(sheets, f"{key}/{title}"))
        if any(s["properties"]["sheetId"] == sheet_id for s in sheets):
            raise ApiError(400, f"Sheet with id {sheet_id} already exists.")
        grid = props.get("gridProperties", {})
        sheet = new_sheet(sheet_id, title, grid.get("rowCount", 1000), grid.get("columnCount", 26))
        for frozen, count in (("frozenRowCount", "rowCount"), ("frozenColumnCount", "columnCount")):
            if grid.get(frozen):
                if grid[frozen] >= sheet["properties"]["gridProperties"][count]:
                    raise ApiError(400, "You can't freeze all visible rows on the sheet." if frozen == "frozenRowCount"
                                   else "You can't freeze all visible columns on the sheet.")
                sheet["properties"]["gridProperties"][frozen] = grid[frozen]
        sheets.insert(min(props.get("index", len(sheets)), len(sheets)), sheet)
        reindex(sheets)
        return {"addSheet": {"properties": copy.deepcopy(sheet["properties"])}}

    def _do_deleteSheet(self, key: str, sheets: list, args: dict) -> None:
        sheet = by_id(sheets, args.get("sheetId"))
        if len(sheets) == 1:
            raise ApiError(400, "You can't remove all the sheets in a document.")
        sheets.remove(sheet)
        reindex(sheets)

    def _do_updateSheetProperties(self, key: str, sheets: list, args: dict) -> None:
        new = args.get("properties", {})
        sheet = by_id(sheets, new.get("sheetId"))
        props, fields = sheet["properties"], args.get("fields", "").replace(" ", "")
        for path in ["title", "index", "gridProperties"] if fields == "*" else filter(None, fields.split(",")):
            *parents, leaf = re.split(r"[./]", path)  # "gridProperties.frozenRowCount" or gspread's "a/b"
            src, dst = new, props
            for part in parents:
                src, dst = src.get(part, {}), dst.setdefault(part, {})
            if leaf in ("sheetId", "sheetType"):
                raise ApiError(400, f"{leaf} cannot be changed.")
            if leaf == "title" and find(sheets, new.get("title", "")) not in (None, sheet):
                raise ApiError(400, f'A sheet with the name "{new["title"]}" already exists. '
                                    "Please enter another name.")
            if leaf in src:
                dst[leaf] = copy.deepcopy(src[leaf])
            else:
                dst.pop(leaf, None)
        grid = props.setdefault("gridProperties", {})
        if not props.get("title") or grid.get("rowCount", 0) < 1 or grid.get("columnCount", 0) < 1:
            raise ApiError(400, "title, rowCount and columnCount must be set.")
        if grid.get("frozenRowCount", 0) >= grid["rowCount"]:
            raise ApiError(400, "You can't freeze all visible rows on the sheet.")
        if not grid.get("frozenRowCount"):
            grid.pop("frozenRowCount", None)
        for cell in [(r, c) for r, c in sheet["cells"] if r >= grid["rowCount"] or c >= grid["columnCount"]]:
            del sheet["cells"][cell]
            sheet["formulas"].discard(cell)
        old, target = sheets.index(sheet), props.get("index", 0)  # "before the move" index, as the API counts
        sheets.remove(sheet)
        sheets.insert(min(target - (target > old), len(sheets)), sheet)
        reindex(sheets)

    def _do_updateCells(self, key: str, sheets: list, args: dict) -> None:
        if "range" in args:
            area = args["range"]
            sheet = by_id(sheets, area.get("sheetId"))
            grid = sheet["properties"]["gridProperties"]
            self._write(sheet, args, area.get("startRowIndex", 0), area.get("startColumnIndex", 0),
                        area.get("endRowIndex", grid["rowCount"]), area.get("endColumnIndex", grid["columnCount"]))
        else:
            start = args.get("start", {})
            sheet = by_id(sheets, start.get("sheetId"))
            self._write(sheet, args, start.get("rowIndex", 0), start.get("columnIndex", 0))

    def _do_appendCells(self, key: str, sheets: list, args: dict) -> None:
        sheet = by_id(sheets, args.get("sheetId"))
        start, grid = last_row(sheet), sheet["properties"]["gridProperties"]
        grid["rowCount"] = max(grid["rowCount"], start + len(args.get("rows", [])))
        self._write(sheet, args, start, 0)

    def _do_appendDimension(self, key: str, sheets: list, args: dict) -> None:
        grid = by_id(sheets, args.get("sheetId"))["properties"]["gridProperties"]
        length, dimension = args.get("length"), args.get("dimension")
        if not isinstance(length, int) or length < 1 or dimension not in ("ROWS", "COLUMNS"):
            raise ApiError(400, "dimension must be ROWS or COLUMNS and length greater than 0.")
        grid["rowCount" if dimension == "ROWS" else "columnCount"] += length

    def _do_deleteDimension(self, key: str, sheets: list, args: dict) -> None:
        """Rows [startIndex, endIndex) go; every row below moves up with its values, formulas (their text
        as it was: formulas are not modelled), formats, sizes, validations and filter; the grid shrinks."""
        area = args.get("range", {})
        sheet = by_id(sheets, area.get("sheetId"))
        if area.get("dimension") != "ROWS":
            raise ApiError(400, "fake_sheets models deleteDimension of ROWS only.")
        grid = sheet["properties"]["gridProperties"]
        start, end = area.get("startIndex", 0), area.get("endIndex", grid["rowCount"])
        if not 0 <= start < end:
            raise ApiError(400, f"Invalid dimension range: startIndex {start}, endIndex {end}.")
        if end > grid["rowCount"]:
            raise ApiError(400, f"Cannot delete a row that doesn't exist. Tried to delete row index "
                                f"{max(start, grid['rowCount'])} but there are only {grid['rowCount']} rows.")
        if end - start == grid["rowCount"]:
            raise ApiError(400, "You can't delete all the rows on the sheet.")
        if grid.get("frozenRowCount") and grid["rowCount"] - (end - start) <= grid["frozenRowCount"] <= start:
            raise ApiError(400, "Sorry, it is not possible to delete all non-frozen rows.")

        def moved(index: int) -> int:  # a row index, or a half-open range's end, after the move
            return index if index <= start else max(start, index - (end - start))

        for name in ("cells", "runs", "formats"):
            sheet[name] = {(moved(r), c): v for (r, c), v in sheet[name].items() if not start <= r < end}
        sheet["formulas"] = {(moved(r), c) for r, c in sheet["formulas"] if not start <= r < end}
        sheet["sizes"] = {(d, moved(i) if d == "ROWS" else i): v for (d, i), v in sheet["sizes"].items()
                          if d != "ROWS" or not start <= i < end}
        kept = []
        for validation in sheet["validations"]:
            rows = validation["range"]
            rows["startRowIndex"] = moved(rows.get("startRowIndex", 0))
            if "endRowIndex" in rows:
                rows["endRowIndex"] = moved(rows["endRowIndex"])
            if rows.get("endRowIndex", grid["rowCount"]) > rows["startRowIndex"]:
                kept.append(validation)
        sheet["validations"] = kept
        if sheet["filter"] is not None:
            rows = sheet["filter"].get("range", {})
            for end_name in ("startRowIndex", "endRowIndex"):
                if end_name in rows:
                    rows[end_name] = moved(rows[end_name])
        frozen = moved(grid.pop("frozenRowCount", 0))
        if frozen:
            grid["frozenRowCount"] = frozen
        grid["rowCount"] -= end - start

    def _do_setDataValidation(self, key: str, sheets: list, args: dict) -> None:
        area, rule = args.get("range", {}), args.get("rule")
        sheet = by_id(sheets, area.get("sheetId"))
        check_grid(sheet, area.get("startRowIndex", 0), area.get("endRowIndex", 1) - 1,
                   area.get("startColumnIndex", 0), area.get("endColumnIndex", 1) - 1)
        condition = (rule or {}).get("condition", {})
        if condition.get("type") == "ONE_OF_LIST" and not condition.get("values"):
            raise ApiError(400, "ConditionType 'ONE_OF_LIST' requires at least one ConditionValue.")
        sheet["validations"] = [v for v in sheet["validations"] if v["range"] != area]
        if rule is not None:  # no rule clears the range's validation
            sheet["validations"].append({"range": copy.deepcopy(area), "rule": copy.deepcopy(rule)})

    def _do_updateDimensionProperties(self, key: str, sheets: list, args: dict) -> None:
        area = args.get("range", {})
        sheet = by_id(sheets, area.get("sheetId"))
        if args.get("fields") != "pixelSize" or "pixelSize" not in args.get("properties", {}):
            raise ApiError(400, "fake_sheets models pixelSize only.")
        for index in range(area.get("startIndex", 0), area.get("endIndex", 0)):
            sheet["sizes"][(area.get("dimension"), index)] = args["properties"]["pixelSize"]

    def _do_repeatCell(self, key: str, sheets: list, args: dict) -> None:
        area = args.get("range", {})
        sheet = by_id(sheets, area.get("sheetId"))
        grid = sheet["properties"]["gridProperties"]
        r0, r1 = area.get("startRowIndex", 0), area.get("endRowIndex", grid["rowCount"])
        c0, c1 = area.get("startColumnIndex", 0), area.get("endColumnIndex", grid["columnCount"])
        check_grid(sheet, r0, r1 - 1, c0, c1 - 1)
        fields = args.get("fields", "")
        if not fields.startswith("userEnteredFormat"):
            raise ApiError(400, "fake_sheets models repeatCell of userEnteredFormat only.")
        look = args.get("cell", {}).get("userEnteredFormat", {})
        for r in range(r0, r1):
            for c in range(c0, c1):
                _merge(sheet["formats"].setdefault((r, c), {}), look)

    def _do_setBasicFilter(self, key: str, sheets: list, args: dict) -> None:
        area = args.get("filter", {}).get("range", {})
        sheet = by_id(sheets, area.get("sheetId"))
        sheet["filter"] = copy.deepcopy(args["filter"])

    def _do_addChart(self, key: str, sheets: list, args: dict) -> dict:
        """Checks what the API checks of a basic chart: its anchor and every source range lie in a grid."""
        chart = copy.deepcopy(args.get("chart", {}))
        anchor = chart.get("position", {}).get("overlayPosition", {}).get("anchorCell")
        if anchor is None:
            raise ApiError(400, "fake_sheets models overlayPosition charts only.")
        sheet = by_id(sheets, anchor.get("sheetId"))
        check_grid(sheet, anchor.get("rowIndex", 0), anchor.get("rowIndex", 0),
                   anchor.get("columnIndex", 0), anchor.get("columnIndex", 0))
        basic = chart.get("spec", {}).get("basicChart")
        if not basic or not basic.get("series"):
            raise ApiError(400, "fake_sheets models basicChart with at least one series only.")
        for field, value, allowed in [("chartType", basic.get("chartType"), CHART_TYPES),
                                      ("legendPosition", basic.get("legendPosition", "BOTTOM_LEGEND"), LEGENDS),
                                      *(("axis.position", a.get("position"), AXES) for a in basic.get("axis", [])),
                                      *(("series.targetAxis", s.get("targetAxis", "LEFT_AXIS"), AXES)
                                        for s in basic["series"]),
                                      *(("lineStyle.type", s["lineStyle"].get("type"), DASHES)
                                        for s in basic["series"] if "lineStyle" in s)]:
            if value not in allowed:
                raise ApiError(400, f"Invalid value at 'requests[0].add_chart.chart.spec.basic_chart.{field}' "
                                    f"({value!r})")
        sources = [d["domain"] for d in basic.get("domains", [])] + [s["series"] for s in basic["series"]]
        for source in sources:
            for area in source.get("sourceRange", {}).get("sources", []):
                check_grid(by_id(sheets, area.get("sheetId")), area.get("startRowIndex", 0),
                           area.get("endRowIndex", 1) - 1, area.get("startColumnIndex", 0),
                           area.get("endColumnIndex", 1) - 1)
        taken = {c["chartId"] for s in sheets for c in s["charts"]}
        chart["chartId"] = chart.get("chartId") or next(n for n in range(1, 10**9) if n not in taken)
        sheet["charts"].append(chart)
        return {"addChart": {"chart": copy.deepcopy(chart)}}

    def _write(self, sheet: dict, args: dict, r0: int, c0: int, r1: int | None = None, c1: int | None = None) -> None:
        """Write args["rows"] from (r0, c0); with an end (a GridRange) the rest of the range is cleared."""
        fields = args.get("fields", "").replace(" ", "")
        if not fields:
            raise ApiError(400, "At least one field must be specified in 'fields'.")
        values_too = fields == "*" or "userEnteredValue" in fields.split(",")
        runs_too = fields == "*" or "textFormatRuns" in fields.split(",")
        format_too = fields == "*" or any(f.startswith("userEnteredFormat") for f in fields.split(","))
        rows = [row.get("values", []) for row in args.get("rows", [])]
        last_r = r0 + len(rows) - 1 if r1 is None else r1 - 1
        last_c = c0 + max(map(len, rows), default=0) - 1 if c1 is None else c1 - 1
        if rows or r1 is not None:
            check_grid(sheet, r0, last_r, c0, last_c)
        for i, row in enumerate(rows):
            if r1 is not None and row and r0 + i >= r1:
                raise ApiError(400, f"Attempting to write row: {r0 + i}, beyond the last requested row of: {r1 - 1}")
            if c1 is not None and c0 + len(row) > c1:
                raise ApiError(400, f"Attempting to write column: {c1}, beyond the last requested column of: {c1 - 1}")
            for j, cell in enumerate(row):
                if values_too:
                    self._set(sheet, r0 + i, c0 + j, cell.get("userEnteredValue"))
                if runs_too:
                    self._set_runs(sheet, r0 + i, c0 + j, cell)
                if format_too and cell.get("userEnteredFormat"):
                    _merge(sheet["formats"].setdefault((r0 + i, c0 + j), {}), cell["userEnteredFormat"])
                if "dataValidation" in fields.split(",") and "dataValidation" in cell:
                    area = {"sheetId": sheet["properties"]["sheetId"], "startRowIndex": r0 + i,
                            "endRowIndex": r0 + i + 1, "startColumnIndex": c0 + j, "endColumnIndex": c0 + j + 1}
                    sheet["validations"] = [v for v in sheet["validations"] if v["range"] != area]
                    sheet["validations"].append({"range": area, "rule": copy.deepcopy(cell["dataValidation"])})
        if values_too and r1 is not None:
            for r, c in [(r, c) for r, c in sheet["cells"] if r0 <= r < r1 and c0 <= c < c1]:
                if r - r0 >= len(rows) or c - c0 >= len(rows[r - r0]):
                    self._set(sheet, r, c, None)

    @staticmethod
    def _set_runs(sheet: dict, r: int, c: int, cell: dict) -> None:
        """Runs start at increasing UTF-16 offsets inside the cell's text, as the API requires."""
        runs = cell.get("textFormatRuns")
        if not runs:
            sheet["runs"].pop((r, c), None)
            return
        text = (cell.get("userEnteredValue") or {}).get("stringValue", "")
        length = len(text.encode("utf-16-le")) // 2
        starts = [run.get("startIndex", 0) for run in runs]
        if starts != sorted(set(starts)) or starts[-1] >= max(length, 1):
            raise ApiError(400, f"Invalid textFormatRuns: startIndex values {starts} for text of length {length}.")
        sheet["runs"][(r, c)] = copy.deepcopy(runs)

    @staticmethod
    def _set(sheet: dict, r: int, c: int, entered: dict | None) -> None:
        entered = entered or {}
        kind, value = next(iter(entered.items()), (None, None))
        wrong_type = kind and (not isinstance(value, VALUE_TYPES.get(kind, ())) or
                               (kind == "numberValue" and isinstance(value, bool)))
        if len(entered) > 1 or wrong_type:
            raise ApiError(400, f"Invalid userEnteredValue {json.dumps(entered)}: set one of {', '.join(VALUE_TYPES)}.")
        if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
            raise ApiError(400, f"Your input contains more than the maximum of {MAX_CELL_CHARS} characters "
                                "in a single cell.")
        sheet["formulas"].discard((r, c))
        if value is None or value == "":
            sheet["cells"].pop((r, c), None)
        else:
            sheet["cells"][(r, c)] = value
            if kind == "formulaValue":
                sheet["formulas"].add((r, c))


def _merge(into: dict, update: dict) -> None:
    """Set the fields of a format, nested ones included, as a field mask would."""
    for name, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(name), dict):
            _merge(into[name], value)
        else:
            into[name] = copy.deepcopy(value)
