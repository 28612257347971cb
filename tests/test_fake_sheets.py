"""The Sheets fake, driven by the real gspread 6.2.1 + google-auth clients, answers as Google does."""

from __future__ import annotations

import json

import gspread
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.oauth2.service_account import Credentials

from tests.fake_sheets import FakeSheets

KEY = "1Mt7PAP53WxrZzHTL49wbg_EOQy18omB4PD2aJLMBs2o"
PRIVATE = "1jIKzPs8LsiZZdLdeMEP-5ZIHw6RkjiOmj1LrJN706Yc"
EDITS = "Edits 2026-11-23 1530"
EMAIL = "loop-bot@proj.iam.gserviceaccount.com"
DRAFTS = [
    ["Trace ID", "Score", "Resolved", "Ratio", "Comment"],
    ["t-1", 3, True, 2.5, "too long"],
    ["t-2", 1, False, None, None],
    [None, None, None, None, None],
    ["t-4", 4.0, None, 0.125, "=not a formula"],
]


class _Redirect(requests.adapters.HTTPAdapter):
    def __init__(self, root):
        super().__init__()
        self.root = root

    def send(self, request, **kwargs):
        request.url = self.root + request.url[len("https://sheets.googleapis.com"):]
        return super().send(request, **kwargs)


@pytest.fixture(scope="module")
def rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@pytest.fixture
def fake():
    with FakeSheets() as server:
        server.add_spreadsheet(KEY, {"Drafts": DRAFTS, EDITS: [["Pattern", "Apply"], ["Too verbose", False]]})
        server.add_spreadsheet(PRIVATE, shared=False)
        yield server


@pytest.fixture
def gc(fake, rsa_pem, tmp_path):
    path = tmp_path / "sa.json"
    path.write_text(json.dumps({
        "type": "service_account", "client_email": EMAIL, "private_key": rsa_pem, "private_key_id": "1",
        "token_uri": fake.url + "/token", "project_id": "proj", "client_id": "1",
    }))
    creds = Credentials.from_service_account_file(str(path), scopes=["https://www.googleapis.com/auth/spreadsheets"])
    client = gspread.Client(creds)
    client.http_client.session.mount("https://sheets.googleapis.com", _Redirect(fake.url))
    return client


def error_of(excinfo) -> dict:
    return excinfo.value.response.json()["error"]


def test_open_by_key_metadata_and_titles(fake, gc):
    sh = gc.open_by_key(KEY)
    assert sh.title == "Loop reviews" and sh.locale == "en_US" and sh.timezone == "Etc/GMT"
    assert [ws.title for ws in sh.worksheets()] == ["Drafts", EDITS]
    first, second = sh.worksheets()
    assert (first.id, first.index, first.row_count, first.col_count) == (0, 0, 1000, 26)
    assert second.id != 0 and second.index == 1
    meta = gc.http_client.fetch_sheet_metadata(KEY)
    assert meta["spreadsheetUrl"] == f"https://docs.google.com/spreadsheets/d/{KEY}/edit"
    assert meta["sheets"][0]["properties"] == {"sheetId": 0, "title": "Drafts", "index": 0, "sheetType": "GRID",
                                               "gridProperties": {"rowCount": 1000, "columnCount": 26}}
    assert fake.requests[0]["method"] == "GET" and fake.requests[0]["path"] == f"/v4/spreadsheets/{KEY}"
    assert fake.requests[0]["query"] == {"includeGridData": ["false"]} and fake.requests[0]["body"] is None
    assert fake.titles(KEY) == ["Drafts", EDITS]


def test_values_batch_get_renders_like_the_api(fake, gc):
    sh = gc.open_by_key(KEY)
    params = {"valueRenderOption": "UNFORMATTED_VALUE", "dateTimeRenderOption": "FORMATTED_STRING",
              "majorDimension": "ROWS"}
    got = sh.values_batch_get(["Drafts", f"'{EDITS}'!A1:B", "Drafts!1:1", "Drafts!B2", "Drafts!F1:G9"], params)
    assert got["spreadsheetId"] == KEY
    whole, edits, header, cell, empty = got["valueRanges"]
    assert whole["range"] == "Drafts!A1:Z1000" and whole["majorDimension"] == "ROWS"
    assert whole["values"] == [
        ["Trace ID", "Score", "Resolved", "Ratio", "Comment"],
        ["t-1", 3, True, 2.5, "too long"],
        ["t-2", 1, False],
        [],
        ["t-4", 4, "", 0.125, "=not a formula"],
    ]
    assert type(whole["values"][4][1]) is int and whole["values"][1][2] is True
    assert edits == {"range": f"'{EDITS}'!A1:B1000", "majorDimension": "ROWS",
                     "values": [["Pattern", "Apply"], ["Too verbose", False]]}
    assert header["range"] == "Drafts!A1:Z1" and header["values"] == [DRAFTS[0]]
    assert cell == {"range": "Drafts!B2", "majorDimension": "ROWS", "values": [[3]]}
    assert empty == {"range": "Drafts!F1:G9", "majorDimension": "ROWS"}
    formatted = sh.values_batch_get(["Drafts!A2:D5"])["valueRanges"][0]["values"]
    assert formatted == [["t-1", "3", "TRUE", "2.5"], ["t-2", "1", "FALSE"], [], ["t-4", "4", "", "0.125"]]
    assert fake.requests[-1]["query"] == {"ranges": ["Drafts!A2:D5"]}

    with pytest.raises(gspread.exceptions.APIError) as excinfo:
        sh.values_batch_get(["Nope!A1"])
    assert error_of(excinfo) == {"code": 400, "message": "Unable to parse range: Nope!A1", "status": "INVALID_ARGUMENT"}


def test_batch_update_adds_a_tab_writes_cells_and_a_validation(fake, gc):
    sh = gc.open_by_key(KEY)
    title = "Edits 2026-12-01 0900"
    reply = sh.batch_update({"requests": [
        {"addSheet": {"properties": {"sheetId": 777, "title": title, "index": 1,
                                     "gridProperties": {"rowCount": 3, "columnCount": 4, "frozenRowCount": 1}}}},
        {"updateCells": {"start": {"sheetId": 777, "rowIndex": 0, "columnIndex": 0}, "fields": "userEnteredValue",
                         "rows": [{"values": [{"userEnteredValue": {"stringValue": "Pattern"}},
                                              {"userEnteredValue": {"stringValue": "Count"}},
                                              {"userEnteredValue": {"stringValue": "Link"}},
                                              {"userEnteredValue": {"stringValue": "Apply"}}]},
                                  {"values": [{"userEnteredValue": {"stringValue": "=plain text"}},
                                              {"userEnteredValue": {"numberValue": 7}},
                                              {"userEnteredValue": {"formulaValue": '=HYPERLINK("#gid=0","t-1")'}},
                                              {"userEnteredValue": {"boolValue": False}}]}]}},
        {"setDataValidation": {"range": {"sheetId": 777, "startRowIndex": 1, "endRowIndex": 3,
                                         "startColumnIndex": 3, "endColumnIndex": 4},
                               "rule": {"condition": {"type": "BOOLEAN"}, "strict": True, "showCustomUi": True}}},
    ]})
    assert reply == {"spreadsheetId": KEY, "replies": [
        {"addSheet": {"properties": {"sheetId": 777, "title": title, "index": 1, "sheetType": "GRID",
                                     "gridProperties": {"rowCount": 3, "columnCount": 4, "frozenRowCount": 1}}}},
        {}, {},
    ]}
    assert fake.titles(KEY) == ["Drafts", title, EDITS]
    ws = sh.worksheet(title)
    assert (ws.id, ws.row_count, ws.col_count, ws.frozen_row_count) == (777, 3, 4, 1)
    assert ws.get_all_values() == [["Pattern", "Count", "Link", "Apply"],
                                   ["=plain text", "7", '=HYPERLINK("#gid=0","t-1")', "FALSE"]]
    got = sh.values_batch_get([title], {"valueRenderOption": "UNFORMATTED_VALUE"})["valueRanges"][0]
    assert got["range"] == f"'{title}'!A1:D3" and got["values"][1][1:] == [7, '=HYPERLINK("#gid=0","t-1")', False]
    assert fake.values(KEY, title)[1] == ["=plain text", 7, '=HYPERLINK("#gid=0","t-1")', False]
    assert fake.formulas(KEY, title) == [(1, 2)]
    assert fake.properties(KEY, title)["gridProperties"] == {"rowCount": 3, "columnCount": 4, "frozenRowCount": 1}
    assert fake.validations(KEY, title) == [{
        "range": {"sheetId": 777, "startRowIndex": 1, "endRowIndex": 3, "startColumnIndex": 3, "endColumnIndex": 4},
        "rule": {"condition": {"type": "BOOLEAN"}, "strict": True, "showCustomUi": True}}]


def test_batch_update_is_atomic(fake, gc):
    sh = gc.open_by_key(KEY)
    before = fake.values(KEY, "Drafts")
    write = {"updateCells": {"start": {"sheetId": 0, "rowIndex": 1, "columnIndex": 4}, "fields": "userEnteredValue",
                             "rows": [{"values": [{"userEnteredValue": {"stringValue": "changed"}}]}]}}
    outside = {"updateCells": {"start": {"sheetId": 0, "rowIndex": 1000, "columnIndex": 0},
                               "fields": "userEnteredValue",
                               "rows": [{"values": [{"userEnteredValue": {"stringValue": "x"}}]}]}}
    with pytest.raises(gspread.exceptions.APIError) as excinfo:
        sh.batch_update({"requests": [write, {"addSheet": {"properties": {"title": "New"}}}, outside]})
    assert error_of(excinfo) == {"code": 400, "status": "INVALID_ARGUMENT", "message": (
        "Invalid requests[2].updateCells: GridCoordinate.rowIndex[1000] is after last row in grid[999]")}
    assert fake.values(KEY, "Drafts") == before and fake.titles(KEY) == ["Drafts", EDITS]

    too_long = {"updateCells": {"start": {"sheetId": 0}, "fields": "userEnteredValue",
                                "rows": [{"values": [{"userEnteredValue": {"stringValue": "x" * 50_001}}]}]}}
    duplicate = {"addSheet": {"properties": {"title": "drafts"}}}
    for request, message in [
        (too_long, ("Invalid requests[1].updateCells: Your input contains more than the maximum of 50000 "
                    "characters in a single cell.")),
        (duplicate, ('Invalid requests[1].addSheet: A sheet with the name "drafts" already exists. '
                     "Please enter another name.")),
        ({"mergeCells": {}}, "Invalid requests[1]: fake_sheets does not support 'mergeCells'."),
    ]:
        with pytest.raises(gspread.exceptions.APIError) as excinfo:
            sh.batch_update({"requests": [write, request]})
        assert excinfo.value.code == 400 and error_of(excinfo)["message"] == message
    assert fake.values(KEY, "Drafts") == before


def test_grid_requests(fake, gc):
    sh = gc.open_by_key(KEY)
    sheet_id = sh.worksheet(EDITS).id
    row = {"values": [{"userEnteredValue": {"stringValue": "Wrong menu paths"}},
                      {"userEnteredValue": {"boolValue": True}}]}
    sh.batch_update({"requests": [
        {"updateSheetProperties": {"properties": {"sheetId": sheet_id, "gridProperties": {"rowCount": 2}},
                                   "fields": "gridProperties/rowCount"}},
        {"appendCells": {"sheetId": sheet_id, "rows": [row, row], "fields": "userEnteredValue"}},
        {"appendDimension": {"sheetId": sheet_id, "dimension": "COLUMNS", "length": 4}},
        {"updateSheetProperties": {"properties": {"sheetId": sheet_id, "gridProperties": {"frozenRowCount": 1}},
                                   "fields": "gridProperties.frozenRowCount"}},
        {"updateDimensionProperties": {"range": {"sheetId": sheet_id, "dimension": "COLUMNS", "startIndex": 0,
                                                 "endIndex": 1}, "properties": {"pixelSize": 300},
                                       "fields": "pixelSize"}},
        {"updateCells": {"range": {"sheetId": sheet_id, "startRowIndex": 1, "endRowIndex": 2, "startColumnIndex": 0,
                                   "endColumnIndex": 2}, "fields": "userEnteredValue",
                         "rows": [{"values": [{"userEnteredValue": {"stringValue": "Tone"}}]}]}},
    ]})
    assert fake.values(KEY, EDITS) == [["Pattern", "Apply"], ["Tone"], ["Wrong menu paths", True],
                                       ["Wrong menu paths", True]]
    assert fake.properties(KEY, EDITS)["gridProperties"] == {"rowCount": 4, "columnCount": 30, "frozenRowCount": 1}
    sh.batch_update({"requests": [{"deleteSheet": {"sheetId": sheet_id}}]})
    assert fake.titles(KEY) == ["Drafts"]
    with pytest.raises(gspread.exceptions.APIError) as excinfo:
        sh.batch_update({"requests": [{"deleteSheet": {"sheetId": 0}}]})
    assert error_of(excinfo)["message"] == (
        "Invalid requests[0].deleteSheet: You can't remove all the sheets in a document.")


def test_add_chart_checks_its_ranges_and_enums(fake, gc):
    sh = gc.open_by_key(KEY)
    sheet_id = sh.worksheet("Drafts").id

    def chart(rows_end=3, chart_type="LINE", anchor_row=0):
        source = {"sourceRange": {"sources": [{"sheetId": sheet_id, "startRowIndex": 1, "endRowIndex": rows_end,
                                               "startColumnIndex": 1, "endColumnIndex": 2}]}}
        return {"addChart": {"chart": {"spec": {"title": "t", "basicChart": {
            "chartType": chart_type, "domains": [{"domain": source}],
            "series": [{"series": source, "lineStyle": {"type": "MEDIUM_DASHED"}}]}},
            "position": {"overlayPosition": {"anchorCell": {"sheetId": sheet_id, "rowIndex": anchor_row}}}}}}

    reply = sh.batch_update({"requests": [chart()]})
    assert reply["replies"][0]["addChart"]["chart"]["chartId"] == fake.charts(KEY, "Drafts")[0]["chartId"]
    for bad in (chart(rows_end=5000), chart(chart_type="LINES"), chart(anchor_row=5000)):
        with pytest.raises(gspread.exceptions.APIError) as excinfo:
            sh.batch_update({"requests": [bad]})
        assert excinfo.value.response.status_code == 400
    assert len(fake.charts(KEY, "Drafts")) == 1


def test_403_and_404_carry_the_real_bodies(fake, gc):
    with pytest.raises(gspread.exceptions.SpreadsheetNotFound) as excinfo:
        gc.open_by_key("test")
    missing = excinfo.value.__cause__
    assert isinstance(missing, gspread.exceptions.APIError) and missing.code == 404
    assert missing.error == {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}
    # gspread 6.2.1 turns a 403 from open_by_key into PermissionError, chained to the APIError
    with pytest.raises(PermissionError) as excinfo:
        gc.open_by_key(PRIVATE)
    assert isinstance(excinfo.value.__cause__, gspread.exceptions.APIError)
    with pytest.raises(gspread.exceptions.APIError) as excinfo:
        gc.http_client.fetch_sheet_metadata(PRIVATE)
    assert excinfo.value.code == 403
    assert str(excinfo.value) == "APIError: [403]: The caller does not have permission"
    assert excinfo.value.response.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert excinfo.value.response.text == (
        '{\n  "error": {\n    "code": 403,\n    "message": "The caller does not have permission",\n'
        '    "status": "PERMISSION_DENIED"\n  }\n}\n')


def test_fail_queues_faults(fake, gc):
    sh = gc.open_by_key(KEY)
    url = f"https://sheets.googleapis.com/v4/spreadsheets/{KEY}/values:batchGet"
    fake.fail({"status": 429, "headers": {"Retry-After": "1"}})
    first = gc.http_client.session.get(url, params={"ranges": "Drafts!A1"})
    assert first.status_code == 429 and first.headers["Retry-After"] == "1"
    assert first.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    second = gc.http_client.session.get(url, params={"ranges": "Drafts!A1"})
    assert second.status_code == 200 and second.json()["valueRanges"][0]["values"] == [["Trace ID"]]

    fake.fail({"status": 503, "match": "batchUpdate"}, {"delay": 0.2, "match": "metadata"})
    assert sh.values_batch_get(["Drafts!A1"])["valueRanges"][0]["values"] == [["Trace ID"]]
    with pytest.raises(gspread.exceptions.APIError) as excinfo:
        sh.batch_update({"requests": [{"appendDimension": {"sheetId": 0, "dimension": "ROWS", "length": 1}}]})
    assert excinfo.value.code == 503 and error_of(excinfo)["status"] == "UNAVAILABLE"
    assert fake.properties(KEY, "Drafts")["gridProperties"]["rowCount"] == 1000
    assert gc.open_by_key(KEY).title == "Loop reviews"  # delayed, then answered


def test_token_endpoint_and_authentication(fake, gc):
    gc.open_by_key(KEY).values_batch_get(["Drafts"])
    assert fake.token_requests == 1 and fake.service_account_emails == [EMAIL]
    bare = requests.get(f"{fake.url}/v4/spreadsheets/{KEY}")
    assert bare.status_code == 401 and bare.json()["error"]["status"] == "UNAUTHENTICATED"
    forged = requests.get(f"{fake.url}/v4/spreadsheets/{KEY}", headers={"Authorization": "Bearer forged"})
    assert forged.status_code == 401 and forged.json()["error"]["code"] == 401
    token = requests.post(f"{fake.url}/token", data={"grant_type": "refresh_token", "refresh_token": "r",
                                                     "client_id": "c", "client_secret": "s"}).json()
    assert token["expires_in"] == 3599 and token["token_type"] == "Bearer"
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    ok = requests.get(f"{fake.url}/v4/spreadsheets/{KEY}", headers=bearer)
    assert ok.status_code == 200 and fake.token_requests == 2
    assert len(fake.requests) == 5  # token requests are not logged as API requests
