"""Workbooks built part by part, as Excel, LibreOffice and the .NET Open XML SDK write them, so a test
controls what no library lets it choose: rows stored out of order or without their numbers, shared or
inline strings, an `x:` prefix on every element, formatting-only cells, merges, an Excel Table, notes
and drawings anchored to rows, relationship targets spelled as some writers spell them."""

from __future__ import annotations

import posixpath
import re
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from loop.cell_values import to_serial
from loop.sheets.ooxml import column_index, column_letter

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
CT = "application/vnd.openxmlformats-officedocument.spreadsheetml"
FLAVOURS = ("excel", "libreoffice", "sdk")
DATE_STYLE, LOOK_STYLE = 1, 2  # cell formats in the styles part below: a date, a fill (formatting only)


@dataclass(frozen=True)
class Formula:
    """A formula cell with its cached value, as a spreadsheet program saves it."""

    text: str
    cached: object = ""


@dataclass
class Tab:
    """One worksheet. `rows` maps a row number to {column: value}; row 1 is the header row."""

    rows: dict[int, dict[int, object]]
    styled: list[tuple[int, int]] = field(default_factory=list)  # empty cells with only a format
    merges: list[str] = field(default_factory=list)
    table: str | None = None  # the ref of an Excel Table over the tab
    totals: bool = False  # the table has a totals row
    order: list[int] | None = None  # the order rows are stored in (default: ascending)
    notes: list[str] = field(default_factory=list)  # cells with a note (legacy comment)
    threads: list[str] = field(default_factory=list)  # cells with a threaded comment (Excel 365)
    picture_row: int | None = None  # a picture anchored at this row (1-based)
    dimension: str | None = None  # the dimension to record (default: what the cells span)


def headers(names: list[str | None]) -> dict[int, object]:
    return {c: name for c, name in enumerate(names, start=1) if name is not None}


def build(path: Path, tab: Tab, flavour: str = "excel", shared: bool = True, numbered: bool = True,
          custom_target: str | None = None, sheet_target: str = "worksheets/sheet1.xml") -> Path:
    """Write the workbook: a Drafts tab (`tab`) and, with `custom_target`, a custom XML part the
    workbook's relationships name by that target (which must lead to customXml/item1.xml)."""
    p = "x:" if flavour == "sdk" else ""
    strings: dict[str, int] = {}
    numbers = tab.order or sorted(set(tab.rows) | {r for r, _ in tab.styled})
    if not numbered:  # without numbers, rows and cells are placed by counting: none may be left out
        numbers = list(range(1, max(numbers) + 1))
    styled = set(tab.styled)
    rows_xml = []
    for number in numbers:
        cells = dict(tab.rows.get(number, {}))
        for row, column in styled:
            if row == number and column not in cells:
                cells[column] = None
        if not numbered:
            cells = {column: cells.get(column) for column in range(1, max(cells, default=0) + 1)}
        body = "".join(_cell(p, flavour, number, column, cells[column], strings, shared, numbered,
                             (number, column) in styled) for column in sorted(cells))
        attributes = f' r="{number}"' if numbered else ""
        if flavour == "excel" and cells:
            attributes += f' spans="{min(cells)}:{max(cells)}" x14ac:dyDescent="0.25"'
        elif flavour == "libreoffice":
            attributes += (' customFormat="false" ht="12.8" hidden="false" customHeight="false" outlineLevel="0"'
                           ' collapsed="false"')
        rows_xml.append(f"<{p}row{attributes}>{body}</{p}row>")
    every = [(r, c) for r, cells in tab.rows.items() for c in cells] + list(styled)
    dimension = tab.dimension or (f"A1:{column_letter(max(c for _, c in every))}{max(r for r, _ in every)}"
                                  if every else "A1")
    ns = f'xmlns{":x" if p else ""}="{MAIN}" xmlns:r="{REL}"'
    if flavour == "excel":
        ns += (' xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" mc:Ignorable="x14ac"'
               ' xmlns:x14ac="http://schemas.microsoft.com/office/spreadsheetml/2009/9/ac"')
    merges = (f'<{p}mergeCells count="{len(tab.merges)}">'
              + "".join(f'<{p}mergeCell ref="{ref}"/>' for ref in tab.merges) + f"</{p}mergeCells>") if tab.merges else ""
    sheet_rels, parts, overrides = [], {}, []
    tail = ""
    if tab.picture_row is not None:
        sheet_rels.append(("rIdDrawing", "drawing", "../drawings/drawing1.xml"))
        tail += f'<{p}drawing r:id="rIdDrawing"/>'
        parts["xl/drawings/drawing1.xml"] = _drawing(tab.picture_row)
        overrides.append(("/xl/drawings/drawing1.xml", "application/vnd.openxmlformats-officedocument.drawing+xml"))
    if tab.notes:
        sheet_rels.append(("rIdNotes", "comments", "../comments1.xml"))
        sheet_rels.append(("rIdVml", "vmlDrawing", "../drawings/vmlDrawing1.vml"))
        tail += f'<{p}legacyDrawing r:id="rIdVml"/>'
        parts["xl/comments1.xml"] = _comments(tab.notes)
        parts["xl/drawings/vmlDrawing1.vml"] = _vml(tab.notes)
        overrides.append(("/xl/comments1.xml", f"{CT}.comments+xml"))
    if tab.threads:
        sheet_rels.append(("rIdThreads", "threadedComment", "../threadedComments/threadedComment1.xml"))
        items = "".join(f'<threadedComment ref="{ref}" dT="2026-11-01T10:00:00.00" personId="{{00000000-0000-0000-0000-'
                        f'000000000001}}" id="{{00000000-0000-0000-0000-00000000000{n}}}"><text>Why?</text>'
                        "</threadedComment>" for n, ref in enumerate(tab.threads, start=1))
        parts["xl/threadedComments/threadedComment1.xml"] = (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<ThreadedComments xmlns='
            f'"http://schemas.microsoft.com/office/spreadsheetml/2018/threadedcomments">{items}</ThreadedComments>')
        overrides.append(("/xl/threadedComments/threadedComment1.xml", "application/vnd.ms-excel.threadedcomments+xml"))
    if tab.table:
        sheet_rels.append(("rIdTable", "table", "../tables/table1.xml"))
        tail += f'<{p}tableParts count="1"><{p}tablePart r:id="rIdTable"/></{p}tableParts>'
        parts["xl/tables/table1.xml"] = _table(tab)
        overrides.append(("/xl/tables/table1.xml", f"{CT}.table+xml"))
    sheet = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<{p}worksheet {ns}>'
             f'<{p}dimension ref="{dimension}"/>'
             f'<{p}sheetViews><{p}sheetView workbookViewId="0"/></{p}sheetViews>'
             f'<{p}sheetFormatPr defaultRowHeight="15"/>'
             f"<{p}sheetData>{''.join(rows_xml)}</{p}sheetData>{merges}"
             f'<{p}pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/>'
             f"{tail}</{p}worksheet>")
    sheet_part = posixpath.normpath("xl/" + sheet_target if not sheet_target.startswith("/") else sheet_target[1:])
    workbook_rels = [("rId1", "worksheet", sheet_target), ("rId2", "styles", "styles.xml")]
    if shared:
        workbook_rels.append(("rId3", "sharedStrings", "sharedStrings.xml"))
        items = "".join(f'<{p}si><{p}t xml:space="preserve">{escape(text)}</{p}t></{p}si>' for text in strings)
        parts["xl/sharedStrings.xml"] = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                                         f'<{p}sst xmlns{":x" if p else ""}="{MAIN}" count="{len(strings)}" '
                                         f'uniqueCount="{len(strings)}">{items}</{p}sst>')
        overrides.append(("/xl/sharedStrings.xml", f"{CT}.sharedStrings+xml"))
    if custom_target:
        workbook_rels.append(("rId4", "customXml", custom_target))
        parts["customXml/item1.xml"] = '<?xml version="1.0"?><review xmlns="urn:example"><owner>ops</owner></review>'
    parts[sheet_part] = sheet
    if sheet_rels:
        folder, name = sheet_part.rsplit("/", 1)
        parts[f"{folder}/_rels/{name}.rels"] = _rels(sheet_rels)
    parts["xl/_rels/workbook.xml.rels"] = _rels(workbook_rels)
    parts["xl/workbook.xml"] = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                                f'<{p}workbook xmlns{":x" if p else ""}="{MAIN}" xmlns:r="{REL}"><{p}sheets>'
                                f'<{p}sheet name="Drafts" sheetId="1" r:id="rId1"/></{p}sheets></{p}workbook>')
    parts["xl/styles.xml"] = STYLES
    parts["_rels/.rels"] = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="{PKG_REL}">'
                            f'<Relationship Id="rId1" Type="{REL}/officeDocument" Target="xl/workbook.xml"/>'
                            "</Relationships>")
    overrides += [("/xl/workbook.xml", f"{CT}.sheet.main+xml"), ("/" + sheet_part, f"{CT}.worksheet+xml"),
                  ("/xl/styles.xml", f"{CT}.styles+xml")]
    parts["[Content_Types].xml"] = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Default Extension="vml" ContentType="application/vnd.openxmlformats-officedocument.vmlDrawing"/>'
        + "".join(f'<Override PartName="{name}" ContentType="{kind}"/>' for name, kind in overrides) + "</Types>")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ["[Content_Types].xml", "_rels/.rels", "xl/workbook.xml", *sorted(set(parts) - {
                "[Content_Types].xml", "_rels/.rels", "xl/workbook.xml"})]:
            archive.writestr(name, parts[name])
    return path


def _cell(p: str, flavour: str, row: int, column: int, value, strings: dict, shared: bool, numbered: bool,
          look: bool) -> str:
    ref = f' r="{column_letter(column)}{row}"' if numbered else ""
    style = f' s="{LOOK_STYLE}"' if look else (' s="0"' if flavour == "libreoffice" else "")
    if value is None:
        return f"<{p}c{ref}{style}/>"
    if isinstance(value, Formula):
        cached = value.cached
        kind = ' t="str"' if isinstance(cached, str) else ' t="b"' if isinstance(cached, bool) else ""
        shown = (int(cached) if isinstance(cached, bool) else escape(str(cached)))
        return f"<{p}c{ref}{style}{kind}><{p}f>{escape(value.text)}</{p}f><{p}v>{shown}</{p}v></{p}c>"
    if isinstance(value, bool):
        return f'<{p}c{ref}{style} t="b"><{p}v>{int(value)}</{p}v></{p}c>'
    if isinstance(value, datetime):
        return f'<{p}c{ref} s="{DATE_STYLE}"><{p}v>{to_serial(value)!r}</{p}v></{p}c>'
    if isinstance(value, (int, float)):
        return f"<{p}c{ref}{style}><{p}v>{value!r}</{p}v></{p}c>"
    if shared:
        index = strings.setdefault(value, len(strings))
        return f'<{p}c{ref}{style} t="s"><{p}v>{index}</{p}v></{p}c>'
    return f'<{p}c{ref}{style} t="inlineStr"><{p}is><{p}t xml:space="preserve">{escape(value)}</{p}t></{p}is></{p}c>'


def _rels(relations: list[tuple[str, str, str]]) -> str:
    kinds = {"threadedComment": "http://schemas.microsoft.com/office/2017/10/relationships/threadedComment"}
    items = "".join(f'<Relationship Id="{rid}" Type="{kinds.get(kind, REL + "/" + kind)}" Target={quoteattr(target)}/>'
                    for rid, kind, target in relations)
    return f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="{PKG_REL}">{items}</Relationships>'


def _table(tab: Tab) -> str:
    first, last = tab.table.split(":")
    left, top = re.fullmatch(r"([A-Z]+)(\d+)", first).groups()
    right, bottom = re.fullmatch(r"([A-Z]+)(\d+)", last).groups()
    names = [str(tab.rows.get(int(top), {}).get(c, f"Column{c}"))
             for c in range(column_index(left), column_index(right) + 1)]
    columns = "".join(f'<tableColumn id="{i}" name={quoteattr(name)}/>' for i, name in enumerate(names, start=1))
    totals = ' totalsRowCount="1"' if tab.totals else ""
    filter_ref = tab.table if not tab.totals else f"{first}:{right}{int(bottom) - 1}"
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<table xmlns="{MAIN}" id="1" name="Reviews" '
            f'displayName="Reviews" ref="{tab.table}"{totals}><autoFilter ref="{filter_ref}"/>'
            f'<tableColumns count="{len(names)}">{columns}</tableColumns>'
            '<tableStyleInfo name="TableStyleMedium2" showFirstColumn="0" showLastColumn="0" showRowStripes="1" '
            'showColumnStripes="0"/></table>')


def _comments(cells: list[str]) -> str:
    items = "".join(f'<comment ref="{ref}" authorId="0"><text><r><t>Check this one.</t></r></text></comment>'
                    for ref in cells)
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<comments xmlns="{MAIN}"><authors>'
            f"<author>ana</author></authors><commentList>{items}</commentList></comments>")


def _vml(cells: list[str]) -> str:
    shapes = []
    for n, ref in enumerate(cells, start=1):
        letters, number = re.fullmatch(r"([A-Z]+)(\d+)", ref).groups()
        row, column = int(number) - 1, column_index(letters) - 1
        shapes.append(
            f'<v:shape id="_x0000_s{1024 + n}" type="#_x0000_t202" style="position:absolute;visibility:hidden" '
            'fillcolor="#ffffe1" o:insetmode="auto"><x:ClientData ObjectType="Note"><x:MoveWithCells/>'
            f"<x:Anchor>{column + 1}, 15, {row}, 10, {column + 3}, 15, {row + 4}, 4</x:Anchor>"
            f"<x:AutoFill>False</x:AutoFill><x:Row>{row}</x:Row><x:Column>{column}</x:Column></x:ClientData></v:shape>")
    return ('<xml xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office" '
            'xmlns:x="urn:schemas-microsoft-com:office:excel"><o:shapelayout v:ext="edit"><o:idmap v:ext="edit" '
            'data="1"/></o:shapelayout><v:shapetype id="_x0000_t202" coordsize="21600,21600" o:spt="202" '
            'path="m,l,21600r21600,l21600,xe"><v:stroke joinstyle="miter"/><v:path gradientshapeok="t" '
            'o:connecttype="rect"/></v:shapetype>' + "".join(shapes) + "</xml>")


def _drawing(row: int) -> str:
    """A shape (a rectangle: no image part needed) anchored from `row` to two rows below."""
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<xdr:wsDr xmlns:xdr="http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing" '
            'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"><xdr:twoCellAnchor>'
            f"<xdr:from><xdr:col>8</xdr:col><xdr:colOff>0</xdr:colOff><xdr:row>{row - 1}</xdr:row><xdr:rowOff>0</xdr:rowOff></xdr:from>"
            f"<xdr:to><xdr:col>10</xdr:col><xdr:colOff>0</xdr:colOff><xdr:row>{row + 1}</xdr:row><xdr:rowOff>0</xdr:rowOff></xdr:to>"
            '<xdr:sp macro="" textlink=""><xdr:nvSpPr><xdr:cNvPr id="2" name="Flag"/><xdr:cNvSpPr/></xdr:nvSpPr>'
            '<xdr:spPr><a:prstGeom prst="rect"><a:avLst/></a:prstGeom></xdr:spPr></xdr:sp><xdr:clientData/>'
            "</xdr:twoCellAnchor></xdr:wsDr>")


STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    f'<styleSheet xmlns="{MAIN}"><numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm:ss"/></numFmts>'
    '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="3"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill>'
    '<fill><patternFill patternType="solid"><fgColor rgb="FFFFFF00"/></patternFill></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="0" fontId="0" fillId="2" borderId="0" xfId="0" applyFill="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>')
