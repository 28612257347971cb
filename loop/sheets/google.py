"""The Google Sheets backend, through gspread's HTTP client and google-auth.

A command costs a small, fixed number of requests whatever the size of the sheet: one for the
spreadsheet's metadata, one values:batchGet for every tab it reads, and one spreadsheets.batchUpdate
for everything it writes. A batchUpdate is atomic, so a new Edits tab, its rows, its checkboxes and
the Runs row appear together or not at all. Values are written as typed cell values
(`stringValue`), never parsed, so text starting with `=` stays text.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from datetime import date, datetime

import gspread
import requests
from gspread.exceptions import APIError
from gspread.utils import absolute_range_name, extract_id_from_url
from requests.adapters import HTTPAdapter

from loop.cell_values import as_text, cell_text, normalize_header
from loop.errors import LoopError, RunFailure, TitleTaken, UnconfirmedWrite, UsageError
from loop.sheets import google_cells
from loop.sheets.base import Append, CellUpdate, DeleteRows, NewTab, Table, WriteBatch, unstyled
from loop.sheets.base import is_google
from loop.sheets.google_auth import account_email, load_credentials
from loop.sheets.google_cells import CELL_FIELDS, GOOGLE_CELL_LIMIT, new_tab_requests

log = logging.getLogger(__name__)

SHEETS_ROOT = "https://sheets.googleapis.com"
_RETRIABLE = {408, 429, 500, 502, 503, 504}


def spreadsheet_key(location: str) -> str | None:
    """The spreadsheet key in a Google Sheets URL or a bare key; None for anything else."""
    if location.startswith(("http://", "https://")):
        try:
            return extract_id_from_url(location)
        except gspread.exceptions.NoValidUrlKeyFound:
            raise UsageError(f"{location} is not a Google Sheets URL; copy the URL from the browser's address bar.") from None
    return location if is_google(location) else None


class AmbiguousWrite(Exception):
    """A write whose answer was lost (a timeout, a dropped connection, a server error): Google may
    have applied it. Sending it again blindly could add a second tab or the same rows twice."""


class OutOfTime(RunFailure):
    """The command's time for the sheet ran out before a request could be sent: nothing was written."""


class RetryingHTTPClient(gspread.HTTPClient):
    """gspread's client with what it lacks: a timeout on every request, and bounded, jittered
    exponential backoff on rate limits, server errors and dropped connections, honouring Retry-After.

    A batchUpdate is only retried by this layer when Google surely did not apply it (a rate limit,
    or a connection never made); otherwise AmbiguousWrite lets the caller look before it writes again.
    With a `deadline` (time.monotonic()), every request, retries and waits included, ends by then:
    requests' own connect and read timeouts are cut to the time left."""

    attempts = 5
    base_delay = 1.0
    max_delay = 32.0
    timeout_seconds = (10.0, 60.0)

    def __init__(self, auth, session=None):
        super().__init__(auth, session)
        self.set_timeout(self.timeout_seconds)
        self.deadline: float | None = None

    def _time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def request(self, method, endpoint, *args, **kwargs):
        once = method.lower() == "post" and endpoint.endswith(":batchUpdate")
        for attempt in range(1, self.attempts + 1):
            left = self._time_left()
            if left is not None and left <= 0.05:
                raise OutOfTime(f"Google Sheets did not answer in the time this command has; nothing was written "
                                "by this request.")
            connect, read = self.timeout_seconds
            self.set_timeout((connect, read) if left is None else (min(connect, left), min(read, left)))
            try:
                return super().request(method, endpoint, *args, **kwargs)
            except APIError as error:
                status = error.response.status_code
                if status not in _RETRIABLE:
                    raise
                if once and status != 429:
                    raise AmbiguousWrite(f"HTTP {status}") from error
                if attempt == self.attempts:
                    raise
                delay = _retry_after(error.response) or self._backoff(attempt)
            except requests.ConnectTimeout:
                if attempt == self.attempts:
                    raise
                delay = self._backoff(attempt)
            except (requests.ConnectionError, requests.Timeout) as error:
                if once:
                    raise AmbiguousWrite(error.__class__.__name__) from error
                if attempt == self.attempts:
                    raise
                delay = self._backoff(attempt)
            left = self._time_left()
            if left is not None and delay >= left:
                raise OutOfTime("Google Sheets kept refusing or timing out until the time this command has ran out; "
                                "nothing was written by this request.")
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        return min(self.max_delay, self.base_delay * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


def _retry_after(response) -> float | None:
    """Retry-After in seconds, at most 120; None (the usual backoff) when it is not a usable number."""
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return min(seconds, 120.0) if 0 <= seconds < float("inf") else None


class _ApiRoot(HTTPAdapter):
    """Sends requests meant for the Sheets API to another root (LOOP_SHEETS_API_ROOT: a proxy or emulator)."""

    def __init__(self, root: str):
        super().__init__()
        self.root = root.rstrip("/")

    def send(self, request, **kwargs):
        request.url = self.root + request.url[len(SHEETS_ROOT):]
        return super().send(request, **kwargs)


class GoogleWorkbook:
    cell_limit = GOOGLE_CELL_LIMIT
    landing_grace = 30.0  # seconds Google may still take to apply a request whose client gave up

    def __init__(self, key: str, credentials_file: str | None = None):
        self.key = key
        self.location = f"https://docs.google.com/spreadsheets/d/{key}"
        self._credentials = load_credentials(credentials_file)
        self._http = gspread.Client(self._credentials, http_client=RetryingHTTPClient).http_client
        root = os.environ.get("LOOP_SHEETS_API_ROOT")
        if root:
            self._http.session.mount(SHEETS_ROOT, _ApiRoot(root))
        self._metadata: dict | None = None
        self._headers: dict[str, list[str]] = {}
        self._layout: tuple[dict[str, int], dict[str, list[str]]] = ({}, {})  # what the last write laid out

    # -- reading ---------------------------------------------------------------------------

    def _sheets(self) -> dict[str, dict]:
        """title → sheet properties, fetched once per command."""
        if self._metadata is None:
            self._metadata = self._call(lambda: self._http.fetch_sheet_metadata(self.key))
        return {s["properties"]["title"]: s["properties"] for s in self._metadata.get("sheets", [])}

    def titles(self) -> list[str]:
        return list(self._sheets())

    def link(self, title: str) -> str:
        """A link that opens the tab (its gid changes when the tab is written whole)."""
        found = self._sheets().get(title)
        return f"{self.location}/edit" + (f"#gid={found['sheetId']}" if found else "")

    def ensure_writable(self) -> None:
        self._sheets()  # surfaces "not shared" and "no such sheet" before any model call

    def rows_left(self, title: str) -> int | None:
        return None  # appendCells grows the grid; only the spreadsheet's cell limit bounds it

    def read(self, titles: list[str]) -> dict[str, Table]:
        """The named tabs that exist and hold a grid of cells; a tab that is a chart of its own (an
        OBJECT sheet) has no cells to read and is left out, like a tab that does not exist."""
        present = [t for t in titles if t in self._sheets() and self._sheets()[t].get("sheetType", "GRID") == "GRID"]
        if not present:
            return {}
        answer = self._call(lambda: self._http.values_batch_get(
            self.key,
            [absolute_range_name(t) for t in present],
            params={"valueRenderOption": "UNFORMATTED_VALUE", "dateTimeRenderOption": "SERIAL_NUMBER",
                    "majorDimension": "ROWS"},
        ))
        tables = {}
        for title, value_range in zip(present, answer.get("valueRanges", [])):
            rows = value_range.get("values", [])
            headers = [str(v).strip() for v in (rows[0] if rows else [])]
            width = len(headers)
            body = [[None if v == "" else v for v in (row + [None] * width)[:width]] for row in rows[1:]]
            tables[title] = Table(title, headers, body)
            self._headers[title] = headers
        return tables

    # -- writing ---------------------------------------------------------------------------

    @property
    def landing_seconds(self) -> float:
        """The longest a batchUpdate may still land after the check that let it start: its own connect
        and read timeouts, and the time Google may take to apply a request its client gave up on."""
        return sum(self._http.timeout_seconds) + self.landing_grace

    @contextmanager
    def time_limit(self, seconds: float):
        """Every request made meanwhile, retries and their waits included, ends within `seconds`."""
        client, before = self._http, self._http.deadline
        ends = time.monotonic() + seconds
        client.deadline = ends if before is None else min(before, ends)
        try:
            yield
        finally:
            client.deadline = before

    def write(self, batch: WriteBatch, wait: float | None = None, fence=None) -> None:
        """One atomic batchUpdate, within `wait` seconds (HTTP timeouts and retries included) when given.
        `fence()` runs just before each send and raises if this writer may no longer write.

        If its answer is lost, the sheet is asked whether it landed. A batch that cannot be told apart
        from a copy of itself (rows to append or delete, and no new tab whose title would refuse a second
        copy) is then never sent again: UnconfirmedWrite says its outcome is unknown."""
        if not batch:
            return
        client = self._http
        guarded = bool(batch.new_tabs) or not (batch.appends or batch.deletions)
        with self.time_limit(wait) if wait is not None else nullcontext():
            for attempt in range(1, client.attempts + 1):
                try:
                    requests_ = self._requests(batch)
                    if requests_:
                        if fence is not None:
                            fence()
                        self._call(lambda: client.batch_update(self.key, {"requests": requests_}))
                    self._size_rows([a for a in batch.appends if a.key and a.lines and a.lines > 1])
                    return
                except AmbiguousWrite as lost:
                    self._forget()
                    try:
                        if self._landed(batch):
                            log.info("A write to the Google Sheet timed out but had landed; it was not sent again.")
                            return
                    except LoopError:
                        raise UnconfirmedWrite(f"Google Sheets did not confirm a write ({lost}), and whether it "
                                               "landed could not be read.") from None
                    if not guarded:
                        raise UnconfirmedWrite(f"Google Sheets did not confirm a write ({lost}) and does not show "
                                               "it yet; it may still land, so it is not sent again now.") from None
                    if attempt == client.attempts:
                        raise RunFailure(f"Google Sheets did not confirm a write ({lost}) after {attempt} attempts; "
                                         "Nothing was written; try again later.") from None
                    batch = replace(batch, recheck=True)
                    time.sleep(client._backoff(attempt))
                except TitleTaken:
                    self._forget()
                    if self._landed(batch):  # an earlier attempt added it: the write is done
                        return
                    raise
                finally:
                    self._forget()

    def _size_rows(self, appends: list[Append]) -> None:
        """Rows just appended, made as tall as their text needs (`Append.lines`, capped by the caller).
        Google appends below its own last row, so the rows are found by their keys, read once, and sized
        in a second request; that one only sets heights, so if it fails the rows are there, as tall as
        Google makes them, and the command goes on."""
        if not appends:
            return
        ids, headers = self._layout  # as the write just laid the tabs out: no second look at the sheet
        try:
            spots = {}
            for append in appends:
                names = [normalize_header(h) for h in headers.get(append.tab, [])]
                if append.tab in ids and normalize_header(append.key) in names:
                    spots[(append.tab, append.key)] = _letter(names.index(normalize_header(append.key)))
            if not spots:
                return
            answer = self._call(lambda: self._http.values_batch_get(
                self.key, [absolute_range_name(tab, f"{letter}1:{letter}") for (tab, _), letter in spots.items()],
                params={"valueRenderOption": "UNFORMATTED_VALUE", "majorDimension": "COLUMNS"}))
            columns = {spot: (found.get("values") or [[]])[0]
                       for spot, found in zip(spots, answer.get("valueRanges", []))}
            requests_ = []
            for append in appends:
                values = columns.get((append.tab, append.key), [])
                wanted = as_text(append.values.get(append.key))
                row = next((i for i, v in enumerate(values) if i and as_text(v) == wanted), None)
                if row is not None:
                    requests_.append(google_cells.row_height(ids[append.tab], row, append.lines))
            if requests_:
                self._call(lambda: self._http.batch_update(self.key, {"requests": requests_}))
        except (LoopError, AmbiguousWrite, APIError, requests.RequestException) as problem:
            log.warning("The new rows were written; sizing them to their text failed (%s).", problem)
        finally:
            self._forget()

    def _forget(self) -> None:
        """Drop what this command read of the sheet's shape, so the next look is fresh."""
        self._metadata = None
        self._headers = {}

    def _requests(self, batch: WriteBatch) -> list[dict]:
        sheets = self._sheets()
        taken = {title.casefold() for title in sheets}
        for tab in batch.new_tabs:
            if tab.title.casefold() in taken:
                raise TitleTaken(tab.title)
        missing = next((d.tab for d in batch.deletions if d.tab not in sheets), None)
        if missing:
            raise UsageError(f"The Google Sheet has no {missing} tab; add it (see sheets_template.xlsx).")
        self._fetch_headers({a.tab for a in batch.appends} | {u.tab for u in batch.updates}
                            | {d.tab for d in batch.deletions})
        keyed = [u for u in batch.updates if u.key]
        cells = self._columns_of({(u.tab, c) for u in keyed for c in (u.key[0], u.unless) if c}
                                 | {(d.tab, name) for d in batch.deletions for name in _checked_columns(d)})
        appends = self._unwritten(batch.appends) if batch.recheck else batch.appends
        used_ids = {p["sheetId"] for p in sheets.values()}
        ids = {title: p["sheetId"] for title, p in sheets.items()}
        columns = {title: p.get("gridProperties", {}).get("columnCount", 26) for title, p in sheets.items()}
        headers = {title: list(h) for title, h in self._headers.items()}
        requests_: list[dict] = []

        planned: dict[str, int] = {}

        def new_tab(tab: NewTab) -> None:
            sheet_id = planned.pop(tab.title, None) or _new_sheet_id(used_ids)
            used_ids.add(sheet_id)
            ids[tab.title], columns[tab.title], headers[tab.title] = sheet_id, len(tab.headers), list(tab.headers)
            requests_.extend(new_tab_requests(tab, sheet_id, ids))

        for tab in batch.new_tabs:  # every new tab's id first: one may link to the rows of another
            planned[tab.title] = ids[tab.title] = _new_sheet_id(used_ids)
            used_ids.add(planned[tab.title])
        for tab in batch.new_tabs:
            new_tab(tab)
        rows: dict[str, list[dict]] = {}
        for append in appends:
            if append.tab not in ids:
                new_tab(NewTab(append.tab, append.headers, []))
            column_of = self._columns(append.tab, list(append.values), headers, columns, ids, requests_)
            width = max(column_of.values()) + 1
            row = [None] * width
            for key, value in append.values.items():
                row[column_of[normalize_header(key)]] = value
            new_row = google_cells.row(row, self.cell_limit, ids)
            for name in append.checkboxes:
                new_row["values"][column_of[normalize_header(name)]]["dataValidation"] = google_cells.CHECKBOX
            rows.setdefault(append.tab, []).append(new_row)
        for tab, tab_rows in rows.items():  # one appendCells per tab carries all of its rows, in order
            ticks = any("dataValidation" in c for r in tab_rows for c in r["values"])
            requests_.append({"appendCells": {"sheetId": ids[tab], "rows": tab_rows,
                                              "fields": CELL_FIELDS + (",dataValidation" if ticks else "")}})
        for grid in batch.grids:  # written whole: the old tab (and its chart) goes, the new one takes its place
            old = sheets.get(grid.title)
            if old is not None:
                requests_.append({"deleteSheet": {"sheetId": old["sheetId"]}})
            sheet_id = _new_sheet_id(used_ids)
            used_ids.add(sheet_id)
            requests_.extend(google_cells.grid_requests(grid, sheet_id, old.get("index") if old else None, ids))
        for update in self._placed(batch.updates, cells):
            column_of = self._columns(update.tab, [update.column], headers, columns, ids, requests_)
            requests_.append({"updateCells": {
                "start": {"sheetId": ids[update.tab], "rowIndex": update.row - 1,
                          "columnIndex": column_of[normalize_header(update.column)]},
                "rows": [google_cells.row([update.value], self.cell_limit, ids)],
                "fields": google_cells.fields_for(update.value)}})
        requests_.extend(_row_deletions(batch.deletions, cells, sheets))  # last: the rows named above have not moved
        self._layout = (ids, headers)
        return requests_

    def _columns_of(self, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], list]:
        """(tab, header) → that column's values from row 1 down, for the existing ones: one narrow read."""
        spots = []
        for tab, name in sorted(wanted):
            headers = [normalize_header(h) for h in self._headers.get(tab, [])]
            if normalize_header(name) in headers:
                spots.append((tab, name, _letter(headers.index(normalize_header(name)))))
        columns: dict[tuple[str, str], list] = {}
        if spots:
            answer = self._call(lambda: self._http.values_batch_get(
                self.key, [absolute_range_name(tab, f"{letter}1:{letter}") for tab, _, letter in spots],
                params={"valueRenderOption": "UNFORMATTED_VALUE", "majorDimension": "COLUMNS"}))
            for (tab, name, _), value_range in zip(spots, answer.get("valueRanges", [])):
                columns[(tab, name)] = (value_range.get("values") or [[]])[0]
        return columns

    def _placed(self, updates: list[CellUpdate], columns: dict[tuple[str, str], list]) -> list[CellUpdate]:
        """Updates with a key, at the row that holds the key now (in `columns`, read just before);
        dropped when it is gone, or when their `unless` cell is no longer empty."""

        def cell(tab: str, name: str, row: int) -> str:
            values = columns.get((tab, name), [])
            return as_text(values[row - 1]) if row - 1 < len(values) else ""

        placed = []
        for update in updates:
            row = update.row
            if update.key:
                name, wanted = update.key
                if cell(update.tab, name, row) != wanted:
                    row = next((i + 1 for i, v in enumerate(columns.get((update.tab, name), [])) if as_text(v) == wanted), None)
                    if row is None:
                        continue
                if update.unless and cell(update.tab, update.unless, row):
                    continue
            placed.append(replace(update, row=row))
        return placed

    def _landed(self, batch: WriteBatch) -> bool:
        """Whether an atomic batch is already in the sheet: its first new tab holds what it wrote,
        and its first identified row is there. A batch of cell updates only is safe to send again."""
        witnesses = []
        if batch.new_tabs:
            tab = batch.new_tabs[0]
            witnesses.append(lambda: self._holds(tab))
        keyed = next((a for a in batch.appends if a.key), None)
        if keyed:
            witnesses.append(lambda: bool(keyed.tab in self._sheets() and not self._unwritten([keyed])))
        return bool(witnesses) and all(check() for check in witnesses)

    def _holds(self, tab: NewTab) -> bool:
        if tab.title not in self._sheets():
            return False
        answer = self._call(lambda: self._http.values_batch_get(
            self.key, [absolute_range_name(tab.title, "1:2")], params={"valueRenderOption": "UNFORMATTED_VALUE"}))
        found = (answer.get("valueRanges") or [{}])[0].get("values", [])
        wrote = [tab.headers] + tab.rows[:1]
        return len(found) == len(wrote) and all(
            [_plain(v) for v in got] == [_plain(v) for v in _trim(want)] for got, want in zip(found, wrote))

    def _unwritten(self, appends: list[Append]) -> list[Append]:
        """The appends whose key is not in their tab yet: one read of each key column."""
        keyed = {(a.tab, a.key) for a in appends if a.key and a.tab in self._sheets()}
        self._fetch_headers({tab for tab, _ in keyed})
        ranges, where = [], []
        for tab, key in sorted(keyed):
            headers = [normalize_header(h) for h in self._headers.get(tab, [])]
            position = headers.index(normalize_header(key)) if normalize_header(key) in headers else None
            if position is not None:
                letter = _letter(position)
                ranges.append(absolute_range_name(tab, f"{letter}2:{letter}"))
                where.append((tab, key))
        present: dict[tuple[str, str], set[str]] = {}
        if ranges:
            answer = self._call(lambda: self._http.values_batch_get(
                self.key, ranges, params={"valueRenderOption": "UNFORMATTED_VALUE", "majorDimension": "COLUMNS"}))
            for spot, value_range in zip(where, answer.get("valueRanges", [])):
                present[spot] = {str(v) for v in (value_range.get("values") or [[]])[0]}
        return [a for a in appends
                if not a.key or str(a.values.get(a.key)) not in present.get((a.tab, a.key), set())]

    def _fetch_headers(self, tabs: set[str]) -> None:
        """Row 1 of existing tabs this command did not read, in one request."""
        missing = [t for t in tabs if t in self._sheets() and t not in self._headers]
        if missing:
            answer = self._call(lambda: self._http.values_batch_get(
                self.key, [absolute_range_name(t, "1:1") for t in missing]))
            for title, value_range in zip(missing, answer.get("valueRanges", [])):
                self._headers[title] = [str(v).strip() for v in (value_range.get("values") or [[]])[0]]

    @staticmethod
    def _columns(tab, names, headers, columns, ids, requests_) -> dict[str, int]:
        """Header → column index for `tab`, adding the columns `names` need at the end of row 1."""
        row = headers.setdefault(tab, [])
        index = {}
        for position, header in enumerate(row):
            index.setdefault(normalize_header(header), position)
        for name in names:
            key = normalize_header(name)
            if key in index:
                continue
            position = len(row)
            if position >= columns[tab]:
                requests_.append({"appendDimension": {"sheetId": ids[tab], "dimension": "COLUMNS", "length": 1}})
                columns[tab] += 1
            requests_.append({"updateCells": {"start": {"sheetId": ids[tab], "rowIndex": 0, "columnIndex": position},
                                              "rows": [google_cells.row([name])], "fields": "userEnteredValue"}})
            row.append(name)
            index[key] = position
        return index

    # -- errors ----------------------------------------------------------------------------

    def _call(self, action):
        from google.auth.exceptions import RefreshError, TransportError

        try:
            return action()
        except APIError as error:
            if error.response.status_code == 400 and "already exists" in str(error.error.get("message", "")):
                title = re.search(r'name "(.*)" already exists', error.error["message"], re.S)
                raise TitleTaken(title.group(1) if title else "") from None
            raise self._explain(error) from None
        except RefreshError as error:
            raise UsageError(f"Google refused the credentials ({error}); check the key file or run `loop auth` again.") from None
        except (requests.ConnectionError, requests.Timeout, TransportError) as error:
            raise RunFailure(
                f"Google Sheets could not be reached ({error.__class__.__name__}) after retries; "
                "try again. Nothing was written."
            ) from None

    def _explain(self, error: APIError) -> Exception:
        status = error.response.status_code
        if status == 403:
            who = account_email(self._credentials)
            share = f"share it with {who} (Editor)" if who else "share it with your Google account (Editor)"
            return UsageError(f"No permission to open spreadsheet {self.key}; {share} and run again.")
        if status == 404:
            return UsageError(f"No spreadsheet with key {self.key}; check LOOP_SHEET (the URL or the key between /d/ and /edit).")
        if status == 401:
            return UsageError("Google rejected the credentials; check GOOGLE_APPLICATION_CREDENTIALS or run `loop auth`.")
        if status in _RETRIABLE:
            return RunFailure(f"Google Sheets answered HTTP {status} after retries; try again later. Nothing was written.")
        message = str(error.error.get("message", error))
        if "above the limit" in message and "cells" in message:
            return UsageError("The Google Sheet is full (Google allows 10 million cells in a spreadsheet); move older "
                              "rows to another spreadsheet and run again. Nothing was written.")
        return RunFailure(f"Google Sheets refused the request: {message}")


def _checked_columns(deletion: DeleteRows) -> set[str]:
    """The columns a deletion reads right before the write: its key, and every cell it expects."""
    return {deletion.key} | {name for cells in deletion.expected.values() for name in cells}


def _row_deletions(deletions: list[DeleteRows], columns: dict[tuple[str, str], list], sheets: dict[str, dict]
                   ) -> list[dict]:
    """deleteDimension requests for the rows (below the header) whose key is one of a deletion's values
    and whose cells still hold what it expects, in `columns` as read just before the batchUpdate (the
    Sheets API has no conditional delete: a change landing between that read and the write goes with
    the row). One request per run of adjacent rows, from the bottom up, so each request's indexes still
    name the rows meant. Google refuses to delete every row below the frozen ones: an empty row is
    added first when it would."""

    def now(tab: str, index: int):
        def cell(name: str):
            values = columns.get((tab, name), [])
            return values[index] if index < len(values) else None
        return cell

    rows: dict[str, set[int]] = {}
    for deletion in deletions:
        values = columns.get((deletion.tab, deletion.key), [])
        rows.setdefault(deletion.tab, set()).update(
            index for index, value in enumerate(values) if index and as_text(value) in deletion.values
            and deletion.still_as_read(as_text(value), now(deletion.tab, index)))
    requests_ = []
    for tab, indexes in rows.items():
        grid, sheet_id = sheets[tab].get("gridProperties", {}), sheets[tab]["sheetId"]
        if indexes and grid.get("rowCount", 1000) - len(indexes) <= grid.get("frozenRowCount", 0):
            requests_.append({"appendDimension": {"sheetId": sheet_id, "dimension": "ROWS", "length": 1}})
        runs: list[list[int]] = []
        for index in sorted(indexes):
            if runs and runs[-1][1] == index:
                runs[-1][1] = index + 1
            else:
                runs.append([index, index + 1])
        requests_ += [{"deleteDimension": {"range": {"sheetId": sheet_id, "dimension": "ROWS",
                                                     "startIndex": start, "endIndex": end}}}
                      for start, end in reversed(runs)]
    return requests_


def _new_sheet_id(used: set[int]) -> int:
    while True:
        candidate = random.randint(1, 2**31 - 1)
        if candidate not in used:
            return candidate


def _letter(position: int) -> str:
    """The column letters of a 0-based column position."""
    return gspread.utils.rowcol_to_a1(1, position + 1).rstrip("0123456789")


def _plain(value):
    """A cell value as written or read back, for comparing the two."""
    value = unstyled(value)
    if value is None:
        return ""
    if isinstance(value, (datetime, date)):
        return google_cells.cell(value)["userEnteredValue"]["numberValue"]
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return str(value)


def _trim(row: list) -> list:
    """A row as the API reads it back: without its trailing empty cells, text cut to the cell limit."""
    row = [cell_text(v, GOOGLE_CELL_LIMIT) if isinstance(v, str) else v for v in row]
    while row and row[-1] in (None, ""):
        row.pop()
    return row
