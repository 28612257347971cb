"""Values and new tabs as Sheets API requests: typed cell values (never parsed, so `=` stays text),
rich text runs with links, dates with a date format, and a new tab with its bold frozen header,
widths, wrapped columns, rows sized to their text, greyed rows, checkboxes, dropdowns and filter."""

from __future__ import annotations

from datetime import date, datetime, timezone

from loop.cell_values import cell_text, to_serial
from loop.sheets.base import Grid, NewTab, RichText, Styled
from loop.sheets.tab_xml import SECTION_FILL

GOOGLE_CELL_LIMIT = 50_000
ROW_PIXELS = 21
CHARACTER_PIXELS = 7  # a column `width` characters wide is this many pixels a character
GREY = {"red": 0.5, "green": 0.5, "blue": 0.5}
DATE_FORMAT = {"type": "DATE_TIME", "pattern": "yyyy-mm-dd hh:mm:ss"}
# What a write sets on each cell: the value, its rich text runs and its number format (for dates).
CELL_FIELDS = "userEnteredValue,textFormatRuns,userEnteredFormat.numberFormat"
CHECKBOX = {"condition": {"type": "BOOLEAN"}, "showCustomUi": True}  # a TRUE/FALSE cell shown as a checkbox
# What a new tab (or a tab written whole) sets on each cell: also the look a `Styled` cell asks for.
STYLED_FIELDS = "userEnteredValue,textFormatRuns,userEnteredFormat"


def cell(value, limit: int = GOOGLE_CELL_LIMIT, sheet_ids: dict[str, int] | None = None) -> dict:
    """CellData for `value`; `sheet_ids` (title → sheetId) resolves the links of rich text runs."""
    if isinstance(value, Styled):
        data = cell(value.value, limit, sheet_ids)
        look = data.setdefault("userEnteredFormat", {})
        text = _text_format(bold=value.bold, italic=value.italic, color=value.color)
        if text:
            look["textFormat"] = text
        if value.fill:
            look["backgroundColorStyle"] = {"rgbColor": _rgb(value.fill)}
        if value.align:
            look["horizontalAlignment"] = value.align.upper()
        if value.number_format:
            look["numberFormat"] = {"type": "NUMBER", "pattern": value.number_format}
        if value.wrap:
            look["wrapStrategy"] = "WRAP"
        if not look:
            del data["userEnteredFormat"]
        return data
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"userEnteredValue": {"boolValue": value}}
    if isinstance(value, (datetime, date)):
        moment = value if isinstance(value, datetime) else datetime(value.year, value.month, value.day)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        return {"userEnteredValue": {"numberValue": to_serial(moment)}, "userEnteredFormat": {"numberFormat": DATE_FORMAT}}
    if isinstance(value, (int, float)):
        return {"userEnteredValue": {"numberValue": value}}
    if isinstance(value, RichText):
        return _rich(value, limit, sheet_ids or {})
    return {"userEnteredValue": {"stringValue": cell_text(value, limit)}}


def _rich(value: RichText, limit: int, sheet_ids: dict[str, int]) -> dict:
    """A string with textFormatRuns: each run's start counted in UTF-16 code units, as the API counts."""
    text, runs = "", []
    for run in value.runs:
        piece = run.text[:max(limit - len(text), 0)]
        if not piece:
            break
        look = _text_format(bold=run.bold, strike=run.strike, color=run.color)
        if run.link and run.link[0] in sheet_ids:
            look["link"] = {"uri": f"#gid={sheet_ids[run.link[0]]}&range=A{run.link[1]}"}
        runs.append({"startIndex": len(text.encode("utf-16-le")) // 2, "format": look})
        text += piece
    data = {"userEnteredValue": {"stringValue": text}}
    if any(r["format"] for r in runs):
        data["textFormatRuns"] = runs
    return data


def _text_format(bold: bool = False, italic: bool = False, strike: bool = False, color: str | None = None) -> dict:
    """A TextFormat with only what is asked for set, so the rest of the cell's look is left alone."""
    look = {}
    if bold:
        look["bold"] = True
    if italic:
        look["italic"] = True
    if strike:
        look["strikethrough"] = True
    if color:
        look["foregroundColorStyle"] = {"rgbColor": _rgb(color)}
    return look


def _rgb(hex_color: str) -> dict:
    return {name: int(hex_color[i:i + 2], 16) / 255 for name, i in (("red", 0), ("green", 2), ("blue", 4))}


def fields_for(value) -> str:
    """The field mask for writing `value` into an existing cell: its value, and only the formatting
    the value itself carries, so a cell's own format is otherwise left alone."""
    if isinstance(value, RichText):
        return "userEnteredValue,textFormatRuns"
    if isinstance(value, (datetime, date)):
        return "userEnteredValue,userEnteredFormat.numberFormat"
    return "userEnteredValue"


def row(values: list, limit: int = GOOGLE_CELL_LIMIT, sheet_ids: dict[str, int] | None = None) -> dict:
    return {"values": [cell(v, limit, sheet_ids) for v in values]}


def new_tab_requests(tab: NewTab, sheet_id: int, sheet_ids: dict[str, int]) -> list[dict]:
    rows = max(len(tab.rows) + 1, 2 if not tab.dropdowns else 1000)
    columns = len(tab.headers)
    tall_header = any(len(h) + 2 > (tab.width(h) or 10) for h in tab.headers)
    grid = {"rowCount": rows, "columnCount": columns, "frozenRowCount": 1}
    if tab.frozen_columns:
        grid["frozenColumnCount"] = tab.frozen_columns
    requests = [
        {"addSheet": {"properties": {"sheetId": sheet_id, "title": tab.title, "gridProperties": grid}}},
        {"updateCells": {"start": {"sheetId": sheet_id, "rowIndex": 0, "columnIndex": 0},
                         "rows": [{"values": [dict(cell(h), userEnteredFormat={
                             "textFormat": {"bold": True}, "wrapStrategy": "WRAP", "verticalAlignment": "TOP"})
                             for h in tab.headers]}],
                         "fields": "userEnteredValue,userEnteredFormat(textFormat.bold,wrapStrategy,verticalAlignment)"}},
    ]
    if tall_header:
        requests.append(_dimension(sheet_id, "ROWS", 0, 2 * ROW_PIXELS))
    if tab.rows:
        requests.append({"updateCells": {"start": {"sheetId": sheet_id, "rowIndex": 1, "columnIndex": 0},
                                         "rows": [row(r, sheet_ids=sheet_ids) for r in tab.rows], "fields": STYLED_FIELDS}})
    for position, header in enumerate(tab.headers):
        width = tab.width(header)
        if width:
            requests.append(_dimension(sheet_id, "COLUMNS", position, int(width * CHARACTER_PIXELS)))
        if header in tab.wrap:
            requests.append({"repeatCell": {
                "range": _area(sheet_id, 1, rows, position, position + 1),
                "cell": {"userEnteredFormat": {"wrapStrategy": "WRAP", "verticalAlignment": "TOP"}},
                "fields": "userEnteredFormat.wrapStrategy,userEnteredFormat.verticalAlignment"}})
    if tab.rows:  # every cell at the top of its row, level with the wrapped text beside it
        requests.append({"repeatCell": {"range": _area(sheet_id, 1, len(tab.rows) + 1, 0, columns),
                                        "cell": {"userEnteredFormat": {"verticalAlignment": "TOP"}},
                                        "fields": "userEnteredFormat.verticalAlignment"}})
    for index in range(len(tab.rows)):
        lines = tab.row_lines(index)
        if lines > 1:
            requests.append(_dimension(sheet_id, "ROWS", index + 1, ROW_PIXELS * lines))
    for start, end in _spans(sorted(tab.muted_rows)):
        requests.append({"repeatCell": {
            "range": _area(sheet_id, start + 1, end + 2, 0, columns),
            "cell": {"userEnteredFormat": {"textFormat": {"foregroundColorStyle": {"rgbColor": GREY}}}},
            "fields": "userEnteredFormat.textFormat.foregroundColorStyle"}})
    for start, end in _spans(sorted(tab.section_rows)):  # a block's heading: bold, tinted, its text running across
        requests.append({"repeatCell": {
            "range": _area(sheet_id, start + 1, end + 2, 0, columns),
            "cell": {"userEnteredFormat": {"textFormat": {"bold": True}, "wrapStrategy": "OVERFLOW_CELL",
                                           "backgroundColorStyle": {"rgbColor": _rgb(SECTION_FILL)}}},
            "fields": "userEnteredFormat(textFormat.bold,wrapStrategy,backgroundColorStyle)"}})
    for name in tab.checkboxes():
        column = tab.headers.index(name)
        ticked = [i for i in range(len(tab.rows)) if i not in tab.muted_rows and i not in tab.section_rows]
        for start, end in _spans(ticked):
            requests.append({"setDataValidation": {
                "range": _area(sheet_id, start + 1, end + 2, column, column + 1),
                "rule": CHECKBOX}})
    for header, choices in tab.dropdowns.items():
        column = tab.headers.index(header)
        requests.append({"setDataValidation": {
            "range": _area(sheet_id, 1, rows, column, column + 1),
            "rule": {"condition": {"type": "ONE_OF_LIST", "values": [{"userEnteredValue": c} for c in choices]},
                     "strict": False, "showCustomUi": True}}})
    if tab.filter:  # no end row: the filter covers rows added later too
        requests.append({"setBasicFilter": {"filter": {"range": {"sheetId": sheet_id, "startRowIndex": 0,
                                                                 "startColumnIndex": 0, "endColumnIndex": columns}}}})
    return requests


def row_height(sheet_id: int, index: int, lines: int) -> dict:
    """Row `index` (0-based) made `lines` lines tall."""
    return _dimension(sheet_id, "ROWS", index, lines * ROW_PIXELS)


def _dimension(sheet_id: int, dimension: str, index: int, pixels: int) -> dict:
    return {"updateDimensionProperties": {
        "range": {"sheetId": sheet_id, "dimension": dimension, "startIndex": index, "endIndex": index + 1},
        "properties": {"pixelSize": pixels}, "fields": "pixelSize"}}


def _area(sheet_id: int, first_row: int, end_row: int, first_column: int, end_column: int) -> dict:
    return {"sheetId": sheet_id, "startRowIndex": first_row, "endRowIndex": end_row,
            "startColumnIndex": first_column, "endColumnIndex": end_column}


def _spans(indexes: list[int]) -> list[tuple[int, int]]:
    """[0, 1, 2, 5] → [(0, 2), (5, 5)]."""
    spans: list[tuple[int, int]] = []
    for index in indexes:
        if spans and index == spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], index)
        else:
            spans.append((index, index))
    return spans


def grid_requests(grid: Grid, sheet_id: int, index: int | None, sheet_ids: dict[str, int] | None = None) -> list[dict]:
    """A tab written whole (the Dashboard): added at `index`, its cells (with their own looks), bold
    rows, header rows, taller rows, widths and chart."""
    width = max((len(r) for r in grid.rows), default=1)
    columns = max(width, (grid.chart.anchor[1] + 10) if grid.chart else 0, 26)
    properties = {"sheetId": sheet_id, "title": grid.title,
                  "gridProperties": {"rowCount": max(len(grid.rows) + 20, 100), "columnCount": columns}}
    if index is not None:
        properties["index"] = index
    requests = [{"addSheet": {"properties": properties}}]
    if grid.rows:
        requests.append({"updateCells": {"start": {"sheetId": sheet_id, "rowIndex": 0, "columnIndex": 0},
                                         "rows": [row(r, sheet_ids=sheet_ids) for r in grid.rows], "fields": STYLED_FIELDS}})
    for number, lines in sorted(grid.row_lines.items()):
        if lines > 1 and number not in grid.header_rows:
            requests.append(_dimension(sheet_id, "ROWS", number - 1, lines * ROW_PIXELS))
    if grid.rows:  # every cell at the top of its row, level with a wrapped cell beside it
        requests.append({"repeatCell": {"range": _area(sheet_id, 0, len(grid.rows), 0, width),
                                        "cell": {"userEnteredFormat": {"verticalAlignment": "TOP"}},
                                        "fields": "userEnteredFormat.verticalAlignment"}})
    for number in sorted(grid.bold_rows - grid.header_rows):
        requests.append({"repeatCell": {"range": _area(sheet_id, number - 1, number, 0, width),
                                        "cell": {"userEnteredFormat": {"textFormat": {"bold": True}}},
                                        "fields": "userEnteredFormat.textFormat.bold"}})
    for number in sorted(grid.header_rows):
        requests.append(_dimension(sheet_id, "ROWS", number - 1, 2 * ROW_PIXELS))
        requests.append({"repeatCell": {"range": _area(sheet_id, number - 1, number, 0, width), "cell": {
            "userEnteredFormat": {"textFormat": {"bold": True}, "wrapStrategy": "WRAP", "verticalAlignment": "TOP"}},
            "fields": "userEnteredFormat(textFormat.bold,wrapStrategy,verticalAlignment)"}})
    for position, width in enumerate(grid.column_widths):
        if width:
            requests.append(_dimension(sheet_id, "COLUMNS", position, int(width * CHARACTER_PIXELS)))
    chart = grid.chart
    if chart:
        def source(column: int) -> dict:
            return {"sourceRange": {"sources": [_area(sheet_id, chart.first_row - 1, chart.last_row, column - 1, column)]}}

        left = {"position": "LEFT_AXIS", "title": chart.y_title}
        if chart.y_range:
            left["viewWindowOptions"] = {"viewWindowMin": chart.y_range[0], "viewWindowMax": chart.y_range[1]}
        requests.append({"addChart": {"chart": {
            "spec": {"title": chart.title, "basicChart": {
                "chartType": "LINE", "legendPosition": "BOTTOM_LEGEND", "headerCount": 0,
                "axis": [{"position": "BOTTOM_AXIS", "title": "version"}, left],
                "domains": [{"domain": source(chart.categories)}],
                "series": [dict({"series": source(column), "targetAxis": "LEFT_AXIS"},
                                **({"lineStyle": {"type": "MEDIUM_DASHED", "width": 1}} if n in chart.dashed else {}))
                           for n, column in enumerate(chart.series)]}},
            "position": {"overlayPosition": {"anchorCell": {"sheetId": sheet_id, "rowIndex": chart.anchor[0] - 1,
                                                            "columnIndex": chart.anchor[1] - 1}}}}}})
    return requests
