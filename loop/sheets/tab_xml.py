"""The worksheet XML of a tab loop makes: a new tab (`NewTab`: Edits, Replay, Drafts) and a tab written
whole (`Grid`: the Dashboard).

A new tab has a bold header row, frozen with its first columns; column widths (never narrower than the
header); values as plain values (text is an inline string, never a formula); wrapped columns with
rows tall enough to read, up to a cap; greyed rows; rows that head a block (bold, tinted); cells with
a look of their own (`Styled`: bold, colour, fill, alignment, number format); rich text (struck,
coloured, bold runs); one link per cell (a workbook links a whole cell, to the first run's target);
TRUE/FALSE checkboxes (Excel 365's in-cell checkbox where the workbook can carry it, TRUE/FALSE with a
list for every other application); dropdowns and a header filter.
"""

from __future__ import annotations

from typing import Callable
from xml.sax.saxutils import escape, quoteattr

from loop.sheets.base import Grid, NewTab, RichText, Styled
from loop.sheets.ooxml import EXCEL_MAX_ROWS, MAIN_NS, REL_NS, cell_xml, column_letter, number_format_of, rich_runs

# What a writer asks for a cell format: bold=, color=, wrap=, number_format=, fill=, align= → its index.
Formats = Callable[..., "int | None"]
GREY = "808080"
SECTION_FILL = "DDEBF7"  # a pale blue: the row that heads a block
LINE_POINTS = 15  # one line of the default 11 pt font
HEADER_HEIGHT = 30  # points: a Grid's header row holds two wrapped lines


def new_sheet_xml(tab: NewTab, formats: Formats, font: tuple[str, str] | None = None,
                  checkbox_style: int | None = None) -> bytes:
    """A worksheet for `tab`. `checkbox_style`: the cell format of Excel's in-cell checkbox, when the
    workbook can carry one (the approve cells take it; they still hold TRUE/FALSE)."""

    def style(**look) -> str | None:
        look = {k: v for k, v in look.items() if v}
        index = formats(**look) if look else None
        return str(index) if index is not None else None

    width = max(len(tab.headers), max((len(r) for r in tab.rows), default=0), 1)
    last_row = len(tab.rows) + 1
    cols = "".join(
        f'<col min="{i}" max="{i}" width="{tab.width(h)}" customWidth="1"'
        + (f' style="{style(wrap=True)}"' if h in tab.wrap and style(wrap=True) else "") + "/>"
        for i, h in enumerate(tab.headers, start=1) if tab.width(h))
    header = style(bold=True, wrap=True)
    tall_header = any(len(h) + 2 > (tab.width(h) or 10) for h in tab.headers)
    rows = [f'<row r="1"{row_height_attributes(2) if tall_header else ""}>'
            + "".join(cell_xml("", f"{column_letter(i)}1", h, header) for i, h in enumerate(tab.headers, start=1))
            + "</row>"]
    links = []
    checkboxes = [tab.headers.index(name) + 1 for name in tab.checkboxes()]
    for index, values in enumerate(tab.rows):
        number = index + 2
        muted, section = index in tab.muted_rows, index in tab.section_rows
        cells = []
        for column, value in enumerate(values, start=1):
            name = tab.headers[column - 1] if column <= len(tab.headers) else ""
            ref = f"{column_letter(column)}{number}"
            look = dict(color=GREY if muted else None, wrap=name in tab.wrap and not section, top=True,
                        bold=section, fill=SECTION_FILL if section else None)
            if column in checkboxes and isinstance(value, bool) and checkbox_style is not None and not muted:
                cells.append(cell_xml("", ref, value, str(checkbox_style)))
                continue
            cells.append(styled_cell(ref, value, look, style, font))
            link = _link(value)
            if link:
                links.append((ref, link))
        if section:  # the fill runs across the row, under the heading's text
            cells += [f'<c r="{column_letter(c)}{number}" s="{style(fill=SECTION_FILL, top=True)}"/>'
                      for c in range(len(values) + 1, len(tab.headers) + 1) if style(fill=SECTION_FILL, top=True)]
        lines = tab.row_lines(index)
        rows.append(f'<row r="{number}"{row_height_attributes(lines) if lines > 1 else ""}>' + "".join(cells) + "</row>")
    validations = []
    for checkbox in checkboxes:
        letter = column_letter(checkbox)
        ticks = _ranges([i + 2 for i in range(len(tab.rows)) if i not in tab.muted_rows and i not in tab.section_rows],
                        letter)
        if ticks:
            validations.append(f'<dataValidation type="list" allowBlank="1" sqref="{ticks}">'
                               '<formula1>"TRUE,FALSE"</formula1></dataValidation>')
    for name, choices in tab.dropdowns.items():
        letter = column_letter(tab.headers.index(name) + 1)
        formula = escape('"' + ",".join(choices) + '"')
        validations.append(f'<dataValidation type="list" allowBlank="1" showErrorMessage="0" '
                           f'sqref="{letter}2:{letter}{EXCEL_MAX_ROWS}"><formula1>{formula}</formula1></dataValidation>')
    checks = f'<dataValidations count="{len(validations)}">{"".join(validations)}</dataValidations>' if validations else ""
    hyperlinks = "".join(f'<hyperlink ref="{ref}" location={quoteattr(location(tab_name, row))}/>'
                         for ref, (tab_name, row) in links)
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<worksheet xmlns="{MAIN_NS}" xmlns:r="{REL_NS}">'
        f'<dimension ref="A1:{column_letter(width)}{last_row}"/>'
        f'<sheetViews>{frozen_view(1, tab.frozen_columns)}</sheetViews>'
        f'<sheetFormatPr defaultRowHeight="{LINE_POINTS}"/>'
        + (f"<cols>{cols}</cols>" if cols else "")
        + f"<sheetData>{''.join(rows)}</sheetData>"
        + (f'<autoFilter ref="A1:{column_letter(len(tab.headers))}{EXCEL_MAX_ROWS}"/>' if tab.filter else "")
        + checks
        + (f"<hyperlinks>{hyperlinks}</hyperlinks>" if hyperlinks else "")
        + '<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/>'
        "</worksheet>"
    ).encode("utf-8")


def frozen_view(rows: int, columns: int) -> str:
    """A sheetView whose first `rows` rows and `columns` columns stay put while the rest scrolls."""
    if not rows and not columns:
        return '<sheetView workbookViewId="0"/>'
    corner = f"{column_letter(columns + 1)}{rows + 1}"
    if rows and columns:
        pane = "bottomRight"
        selections = (f'<selection pane="topRight"/><selection pane="bottomLeft"/>'
                      f'<selection pane="bottomRight" activeCell="{corner}" sqref="{corner}"/>')
    else:
        pane = "bottomLeft" if rows else "topRight"
        selections = f'<selection pane="{pane}" activeCell="{corner}" sqref="{corner}"/>'
    split = (f' xSplit="{columns}"' if columns else "") + (f' ySplit="{rows}"' if rows else "")
    return (f'<sheetView workbookViewId="0"><pane{split} topLeftCell="{corner}" activePane="{pane}" '
            f'state="frozen"/>{selections}</sheetView>')


def row_height_attributes(lines: int) -> str:
    """A row's attributes making it `lines` lines of the default font tall."""
    return f' ht="{LINE_POINTS * lines}" customHeight="1"'


def _link(value) -> tuple[str, int] | None:
    value = value.value if isinstance(value, Styled) else value
    if isinstance(value, RichText):
        found = value.links()
        return found[0] if found else None
    return None


def styled_cell(ref: str, value, look: dict, style: Callable[..., str | None], font) -> str:
    """One cell: its value as a plain value, in the format its column, its row and its own look ask for."""
    if isinstance(value, Styled):
        own = {"bold": value.bold, "color": value.color, "fill": value.fill, "align": value.align,
               "number_format": value.number_format, "italic": value.italic}
        look = dict(look, **{k: v for k, v in own.items() if v}, wrap=look.get("wrap") or value.wrap)
        value = value.value
    if not look.get("number_format"):
        look["number_format"] = number_format_of(value)
    chosen = style(**look)
    if isinstance(value, RichText):
        s = f' s="{chosen}"' if chosen is not None else ""
        return f'<c r="{ref}"{s} t="inlineStr"><is>{rich_runs(value, font, look)}</is></c>'
    return cell_xml("", ref, value, chosen, font)


def location(tab: str, row: int) -> str:
    """A link target inside the workbook: the first cell of `row` on `tab`."""
    return "'" + tab.replace("'", "''") + f"'!A{row}"


def _ranges(rows: list[int], letter: str) -> str:
    """Rows 2, 3, 4, 7 of column A as `A2:A4 A7:A7`."""
    spans, start = [], None
    for i, row in enumerate(rows):
        if start is None:
            start = row
        if i + 1 == len(rows) or rows[i + 1] != row + 1:
            spans.append(f"{letter}{start}:{letter}{row}")
            start = None
    return " ".join(spans)


def grid_sheet_xml(grid: Grid, formats: Formats, font: tuple[str, str] | None = None) -> bytes:
    """A worksheet holding `grid` whole, with a <drawing> for its chart (relationship rId1)."""

    def style(**look) -> str | None:
        look = {k: v for k, v in look.items() if v}
        index = formats(**look) if look else None
        return str(index) if index is not None else None

    rows, links = [], []
    for number, values in enumerate(grid.rows, start=1):
        header = number in grid.header_rows
        look = {"bold": header or number in grid.bold_rows, "wrap": header, "top": len(values) > 1}
        cells = []
        for column, value in enumerate(values, start=1):
            ref = f"{column_letter(column)}{number}"
            cells.append(styled_cell(ref, value, dict(look), style, font))
            link = _link(value)
            if link:
                links.append((ref, link))
        lines = grid.row_lines.get(number, 1)
        tall = (f' ht="{HEADER_HEIGHT}" customHeight="1"' if header and lines < 2
                else row_height_attributes(lines) if lines > 1 else "")
        rows.append(f'<row r="{number}"{tall}>{"".join(cells)}</row>')
    width = max((len(r) for r in grid.rows), default=1)
    cols = "".join(f'<col min="{i}" max="{i}" width="{w}" customWidth="1"/>'
                   for i, w in enumerate(grid.column_widths, start=1) if w)
    hyperlinks = "".join(f'<hyperlink ref="{ref}" location={quoteattr(location(tab_name, row))}/>'
                         for ref, (tab_name, row) in links)
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<worksheet xmlns="{MAIN_NS}" xmlns:r="{REL_NS}">'
        '<sheetPr><pageSetUpPr fitToPage="1"/></sheetPr>'  # printed: one page wide, chart included
        f'<dimension ref="A1:{column_letter(max(width, 1))}{max(len(grid.rows), 1)}"/>'
        f'<sheetViews><sheetView workbookViewId="0"/></sheetViews><sheetFormatPr defaultRowHeight="{LINE_POINTS}"/>'
        + (f"<cols>{cols}</cols>" if cols else "")
        + f"<sheetData>{''.join(rows)}</sheetData>"
        + (f"<hyperlinks>{hyperlinks}</hyperlinks>" if hyperlinks else "")
        + '<pageMargins left="0.5" right="0.5" top="0.6" bottom="0.6" header="0.3" footer="0.3"/>'
        + '<pageSetup orientation="landscape" fitToWidth="1" fitToHeight="0"/>'
        + ('<drawing r:id="rId1"/>' if grid.chart else "")
        + "</worksheet>"
    ).encode("utf-8")
