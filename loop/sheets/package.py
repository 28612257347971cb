"""Editing an .xlsx package part by part, so a write costs what it changes.

An .xlsx file is a zip of XML parts. A write here rewrites only the parts it changes: the sheet XML
of the tabs it edits or adds, and, when it adds a tab, the workbook, its relationships, the content
types and (for a bold header) the styles. Every other part — charts, images, pivot tables, macros,
extension data, the shared strings — is copied into the new file as the same compressed bytes,
so nothing that openpyxl would drop is ever lost, and a 50,000-row Drafts tab is not rewritten to
change three cells of an Edits tab.

Cells are written as inline strings, numbers or booleans; the shared-strings part is never touched.
Rows are edited in place: a cell keeps its style, the row its attributes, every other row its bytes.
"""

from __future__ import annotations

import math
import re
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from html import unescape
from xml.parsers import expat
from xml.sax.saxutils import escape, quoteattr

try:  # Intel's ISA-L: the same deflate format, two to four times faster than zlib
    from isal import isal_zlib as zlib
except ImportError:  # pragma: no cover -- a platform without its wheels
    import zlib

from ..values import cell_text, normalize_header
from .base import NewTab

MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
WORKSHEET_TYPE = REL_NS + "/worksheet"
SHARED_STRINGS_TYPE = REL_NS + "/sharedStrings"
STYLES_TYPE = REL_NS + "/styles"
WORKSHEET_CONTENT = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
EXCEL_MAX_ROWS = 1_048_576
CELL_LIMIT = 32_767
# ISA-L's level 2 packs about as tightly as zlib's default, several times faster; any reader inflates it.
COMPRESS_LEVEL = 2 if zlib.__name__.startswith("isal") else 6

_ESCAPE_LIKE = re.compile(r"_(?=x[0-9A-Fa-f]{4}_)")
_OOXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_ATTRIBUTE = re.compile(rb'([\w:.-]+)\s*=\s*(?:"([^"]*)"|\'([^\']*)\')')
_CELL_REF = re.compile(r"([A-Z]+)(\d+)")


class PackageError(ValueError):
    """The package is not a workbook this module can edit (the message says why)."""


class WriteRefused(ValueError):
    """A part written anew would not parse: the file is not written."""


# --- cell references and text ------------------------------------------------------------------


def column_letter(index: int) -> str:
    """1 → A, 27 → AA."""
    letters = ""
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def column_index(letters: str) -> int:
    index = 0
    for letter in letters:
        index = index * 26 + ord(letter) - 64
    return index


def ooxml_text(text: str) -> str:
    """Text as OOXML stores it: a carriage return (which XML would turn into a line feed) and a literal
    `_xHHHH_` (which readers would decode) are written in the format's own escape."""
    return _ESCAPE_LIKE.sub("_x005F_", text).replace("\r", "_x000D_")


def plain_text(stored: str) -> str:
    """The inverse of `ooxml_text`, for text read from a part."""
    return _OOXML_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), stored)


def _attributes(tag: bytes) -> dict[str, str]:
    return {name.decode(): unescape((a if a is not None else b).decode())
            for name, a, b in ((m.group(1), m.group(2), m.group(3)) for m in _ATTRIBUTE.finditer(tag))}


def _text_of(xml: bytes, prefix: bytes) -> str:
    """The text of every <t> in a fragment (an inline string or a shared string), without phonetic runs."""
    xml = re.sub(rb"<" + prefix + rb"rPh\b.*?</" + prefix + rb"rPh>", b"", xml, flags=re.S)
    parts = re.findall(rb"<" + prefix + rb"t(?:\s[^>]*)?>(.*?)</" + prefix + rb"t>", xml, flags=re.S)
    return plain_text(unescape(b"".join(parts).decode("utf-8")))


def cell_xml(prefix: str, ref: str, value, style: str | None = None) -> str:
    """One <c> element holding `value` as a plain value: text is an inline string, never a formula."""
    p = prefix
    s = f' s="{style}"' if style is not None else ""
    if value is None or value == "":
        return f'<{p}c r="{ref}"{s}/>' if style is not None else ""
    if isinstance(value, bool):
        return f'<{p}c r="{ref}"{s} t="b"><{p}v>{int(value)}</{p}v></{p}c>'
    if isinstance(value, (int, float)) and math.isfinite(value):
        return f'<{p}c r="{ref}"{s}><{p}v>{value!r}</{p}v></{p}c>'
    text = escape(ooxml_text(cell_text(value, CELL_LIMIT)))
    return f'<{p}c r="{ref}"{s} t="inlineStr"><{p}is><{p}t xml:space="preserve">{text}</{p}t></{p}is></{p}c>'


# --- one worksheet part ---------------------------------------------------------------------------


@dataclass
class _Row:
    number: int
    start: int  # offset of "<row"
    tag_end: int  # offset just past the start tag
    closed: bool  # a self-closing <row .../>


class _Unnumbered(Exception):
    """A row without its `r` attribute: rows must then be counted from the top."""


class SheetPart:
    """A worksheet's XML, with cell writes collected and applied in one pass by `render`.

    Rows are found where they are needed, by bisecting the part on byte offsets (rows are stored in
    order, each with its number), so a write to a few rows of a 50,000-row tab reads a few rows."""

    def __init__(self, xml: bytes, strings: SharedStrings | None = None):
        self.xml = xml
        self.strings = strings
        root = re.search(rb"<(?:(\w+):)?worksheet\b", xml)
        if not root:
            raise PackageError("a tab's part is not a worksheet")
        self.prefix = (root.group(1) + b":") if root.group(1) else b""
        p = self.prefix
        opening = re.search(rb"<" + p + rb"sheetData\b[^>]*?(/?)>", xml)
        if not opening:
            raise PackageError("a worksheet has no sheetData")
        if opening.group(1):  # <sheetData/>: an empty tab
            self.xml = xml[:opening.start()] + b"<" + p + b"sheetData></" + p + b"sheetData>" + xml[opening.end():]
            opening = re.search(rb"<" + p + rb"sheetData\b[^>]*>", self.xml)
        self.data_start = opening.end()
        self.data_end = self.xml.rfind(b"</" + p + b"sheetData>")
        if self.data_end < self.data_start:
            raise PackageError("a worksheet's sheetData is not closed")
        self._row_tag = re.compile(rb"<" + p + rb"row\b([^>]*?)(/?)>")
        self._counted: list[_Row] | None = None  # every row, when some row has no number
        self.writes: dict[int, dict[int, object]] = {}
        self._headers: list[str] | None = None
        self.boolean_style: int | None = None  # the format a new TRUE/FALSE cell gets

    # -- finding rows ------------------------------------------------------------------------

    def _row_from(self, offset: int) -> _Row | None:
        """The first row whose start tag begins at or after `offset`."""
        found = self._row_tag.search(self.xml, offset, self.data_end)
        if not found:
            return None
        number = _attributes(found.group(1)).get("r")
        if not number:
            raise _Unnumbered()
        return _Row(int(number), found.start(), found.end(), bool(found.group(2)))

    def _count_rows(self) -> list[_Row]:
        if self._counted is None:
            rows, number = [], 0
            for found in self._row_tag.finditer(self.xml, self.data_start, self.data_end):
                r = _attributes(found.group(1)).get("r")
                number = int(r) if r else number + 1
                rows.append(_Row(number, found.start(), found.end(), bool(found.group(2))))
            self._counted = rows
        return self._counted

    def _first_at_least(self, number: int) -> _Row | None:
        """The first row numbered `number` or more (rows are stored in ascending order)."""
        try:
            if self._counted is None:
                low, high = self.data_start, self.data_end
                while low < high:
                    middle = (low + high) // 2
                    row = self._row_from(middle)
                    if row is not None and row.number < number:
                        low = row.start + 1
                    else:
                        high = middle
                return self._row_from(low)
        except _Unnumbered:
            pass
        return next((row for row in self._count_rows() if row.number >= number), None)

    def _row_xml(self, row: _Row) -> bytes:
        if row.closed:
            return self.xml[row.start:row.tag_end]
        end = self.xml.index(b"</" + self.prefix + b"row>", row.tag_end)
        return self.xml[row.start:end + len(b"</" + self.prefix + b"row>")]

    def _cells(self, row_xml: bytes) -> list[tuple[int, dict[str, str], bytes]]:
        """(column, attributes, the whole <c> element) for each cell of a row."""
        p = self.prefix
        cells, column = [], 0
        for match in re.finditer(rb"<" + p + rb"c\b([^>]*?)(?:/>|>.*?</" + p + rb"c>)", row_xml, re.S):
            attributes = _attributes(match.group(1))
            ref = _CELL_REF.fullmatch(attributes.get("r", ""))
            column = column_index(ref.group(1)) if ref else column + 1
            cells.append((column, attributes, match.group(0)))
        return cells

    def _value(self, attributes: dict[str, str], element: bytes):
        p = self.prefix
        kind = attributes.get("t", "n")
        if kind == "inlineStr":
            return _text_of(element, p)
        found = re.search(rb"<" + p + rb"v>(.*?)</" + p + rb"v>", element, re.S)
        if not found:
            return None
        raw = unescape(found.group(1).decode("utf-8"))
        if kind == "s":
            return self.strings.get(int(raw)) if self.strings else None
        if kind == "b":
            return raw.strip() == "1"
        if kind in ("str", "e"):
            return plain_text(raw)
        try:
            return float(raw)
        except ValueError:
            return raw

    def row_values(self, number: int) -> dict[int, object]:
        """column → value of row `number` as the file holds it now."""
        row = self._first_at_least(number)
        if row is None or row.number != number:
            return {}
        return {column: self._value(attributes, element) for column, attributes, element in self._cells(self._row_xml(row))}

    def headers(self) -> list[str]:
        """Row 1's text by column (1-based positions; "" where a column has no header)."""
        values = self.row_values(1)
        width = max(values, default=0)
        return ["" if values.get(c) is None else str(values[c]).strip() for c in range(1, width + 1)]

    def find_column(self, name: str) -> int | None:
        """The 1-based column whose header matches `name` (case, spaces, `_` and `-` ignored)."""
        if self._headers is None:
            self._headers = self.headers()
        wanted = normalize_header(name)
        return next((position for position, header in enumerate(self._headers, start=1)
                     if normalize_header(header) == wanted), None)

    def column(self, name: str) -> int:
        """The column for `name`, adding its header after the last one when the tab has none."""
        found = self.find_column(name)
        if found is not None:
            return found
        while self._headers and not self._headers[-1]:
            self._headers.pop()
        self._headers.append(name)
        self.set(1, len(self._headers), name)
        return len(self._headers)

    def last_used_row(self) -> int:
        """The last row holding a value (rows of only formatting do not count); 1 for a header-only tab."""
        value = re.compile(rb"<" + self.prefix + rb"(?:v|is)\b")
        end = self.data_end
        while True:
            start = self.xml.rfind(b"<" + self.prefix + b"row", self.data_start, end)
            if start < 0:
                return 1
            found = self._row_tag.match(self.xml, start)
            if found:
                number = _attributes(found.group(1)).get("r")
                if not number:  # rows without numbers: count them all
                    used = [r for r in self._count_rows() if value.search(self._row_xml(r))]
                    return max(used[-1].number, 1) if used else 1
                row = _Row(int(number), start, found.end(), bool(found.group(2)))
                if value.search(self._row_xml(row)):
                    return max(row.number, 1)
            end = start

    # -- writing --------------------------------------------------------------------------------

    def set(self, row: int, column: int, value) -> None:
        if not 1 <= row <= EXCEL_MAX_ROWS:
            raise PackageError(f"row {row} is outside the sheet")
        self.writes.setdefault(row, {})[column] = value

    def render(self) -> bytes:
        """The part with every collected write applied; rows nobody wrote keep their bytes."""
        if not self.writes:
            return self.xml
        p = self.prefix.decode()
        pieces, cursor = [self.xml[:self.data_start]], self.data_start
        for number in sorted(self.writes):
            row = self._first_at_least(number)
            if row is not None and row.number == number:
                original = self._row_xml(row)
                pieces += [self.xml[cursor:row.start], self._edited_row(original, number, self.writes[number])]
                cursor = row.start + len(original)
            else:
                at = max(row.start if row is not None else self.data_end, cursor)
                cells = "".join(cell_xml(p, f"{column_letter(c)}{number}", v, self._style_for(v))
                                for c, v in sorted(self.writes[number].items()))
                pieces += [self.xml[cursor:at], f'<{p}row r="{number}">{cells}</{p}row>'.encode("utf-8")]
                cursor = at
        pieces.append(self.xml[cursor:])
        return self._with_dimension(b"".join(pieces))

    def _edited_row(self, original: bytes, number: int, writes: dict[int, object]) -> bytes:
        p = self.prefix.decode()
        tag = self._row_tag.match(original)
        start_tag = original[:tag.end()]
        if tag.group(2):  # <row .../> becomes <row ...></row>
            start_tag = start_tag[:-2].rstrip() + b">"
        existing = self._cells(original)
        cells = {column: element for column, _, element in existing}
        styles = {column: attributes.get("s") for column, attributes, _ in existing}
        for column, value in writes.items():
            style = styles.get(column) or self._style_for(value)
            cells[column] = cell_xml(p, f"{column_letter(column)}{number}", value, style).encode("utf-8")
        body = b"".join(cells[c] for c in sorted(cells))
        spans = re.search(rb'\sspans="[^"]*"', start_tag)
        if spans and cells:
            start_tag = start_tag.replace(spans.group(0), f' spans="{min(cells)}:{max(cells)}"'.encode())
        return start_tag + body + f"</{p}row>".encode()

    def _style_for(self, value) -> str | None:
        return str(self.boolean_style) if isinstance(value, bool) and self.boolean_style is not None else None

    def _with_dimension(self, xml: bytes) -> bytes:
        found = re.search(rb"(<" + self.prefix + rb"dimension\b[^>]*\bref=\")([^\"]*)(\")", xml)
        if not found:
            return xml
        refs = [_CELL_REF.fullmatch(r) for r in found.group(2).decode().split(":")]
        if not all(refs):
            return xml
        first, last = refs[0], refs[-1]
        last_column = max(column_index(last.group(1)), *(max(w) for w in self.writes.values() if w))
        last_row = max(int(last.group(2)), max(self.writes))
        ref = f"{first.group(1)}{first.group(2)}:{column_letter(last_column)}{last_row}"
        return xml[:found.start(2)] + ref.encode() + xml[found.end(2):]


class SharedStrings:
    """The shared-strings part, unpacked only as far as the highest index asked for: header names
    come first, so a write reads the start of a part that may hold a hundred megabytes."""

    CHUNK = 1 << 20

    def __init__(self, stream=None):
        self._stream = stream
        self._buffer = b""
        self._items: list[str] = []
        self._pattern = re.compile(rb"<(?:\w+:)?si\b[^>]*?(?:/>|>(.*?)</(?:\w+:)?si>)", re.S)

    def get(self, index: int) -> str | None:
        while len(self._items) <= index:
            found = self._pattern.search(self._buffer)
            if found is None:
                chunk = self._stream.read(self.CHUNK) if self._stream else b""
                if not chunk:
                    return None
                self._buffer += chunk
                continue
            self._buffer = self._buffer[found.end():]
            prefix = re.match(rb"<(\w+:)?", found.group(0)).group(1) or b""
            self._items.append(_text_of(found.group(1) or b"", prefix))
        return self._items[index]


# --- a new worksheet --------------------------------------------------------------------------------


def new_sheet_xml(tab: NewTab, header_style: int | None, boolean_style: int | None = None) -> bytes:
    """A worksheet for `tab`: bold frozen header, column widths, values, checkboxes and dropdowns."""
    width = max(len(tab.headers), max((len(r) for r in tab.rows), default=0), 1)
    last_row = len(tab.rows) + 1
    cols = "".join(f'<col min="{i}" max="{i}" width="{tab.column_widths[h]}" customWidth="1"/>'
                   for i, h in enumerate(tab.headers, start=1) if tab.column_widths.get(h))
    style = str(header_style) if header_style is not None else None
    rows = ['<row r="1">' + "".join(cell_xml("", f"{column_letter(i)}1", h, style)
                                     for i, h in enumerate(tab.headers, start=1)) + "</row>"]
    booleans = str(boolean_style) if boolean_style is not None else None
    for number, values in enumerate(tab.rows, start=2):
        rows.append(f'<row r="{number}">' + "".join(
            cell_xml("", f"{column_letter(i)}{number}", v, booleans if isinstance(v, bool) else None)
            for i, v in enumerate(values, start=1)) + "</row>")
    validations = []
    if tab.checkbox_column and tab.rows:
        letter = column_letter(tab.headers.index(tab.checkbox_column) + 1)
        validations.append(f'<dataValidation type="list" allowBlank="1" sqref="{letter}2:{letter}{last_row}">'
                           '<formula1>"TRUE,FALSE"</formula1></dataValidation>')
    for header, choices in tab.dropdowns.items():
        letter = column_letter(tab.headers.index(header) + 1)
        formula = escape('"' + ",".join(choices) + '"')
        validations.append(f'<dataValidation type="list" allowBlank="1" showErrorMessage="0" '
                           f'sqref="{letter}2:{letter}{EXCEL_MAX_ROWS}"><formula1>{formula}</formula1></dataValidation>')
    checks = f'<dataValidations count="{len(validations)}">{"".join(validations)}</dataValidations>' if validations else ""
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<worksheet xmlns="{MAIN_NS}" xmlns:r="{REL_NS}">'
        f'<dimension ref="A1:{column_letter(width)}{last_row}"/>'
        '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" '
        'state="frozen"/><selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>'
        '<sheetFormatPr defaultRowHeight="15"/>'
        + (f"<cols>{cols}</cols>" if cols else "")
        + f"<sheetData>{''.join(rows)}</sheetData>{checks}"
        '<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/>'
        "</worksheet>"
    ).encode("utf-8")


# --- the package --------------------------------------------------------------------------------------


@dataclass
class Package:
    """The parts of an .xlsx file (a path or a binary file): read from the original, written to a
    new file with `save`."""

    source: object
    changed: dict[str, bytes] = field(default_factory=dict)
    added: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self):
        self._zip = zipfile.ZipFile(self.source)
        self._names = self._zip.namelist()
        self.workbook_part = self._main_part()
        self._relations = self._relationships()
        self._strings: SharedStrings | None = None

    def close(self) -> None:
        self._zip.close()

    def open(self, name: str):
        return self._zip.open(name)

    def put(self, name: str, data: bytes) -> None:
        """Replace the content of a part, existing or added by this write."""
        (self.added if name in self.added else self.changed)[name] = data

    def read(self, name: str) -> bytes:
        if name in self.changed:
            return self.changed[name]
        if name in self.added:
            return self.added[name]
        info = self._zip.getinfo(name)
        if info.compress_type != zipfile.ZIP_DEFLATED:
            return self._zip.read(name)
        try:
            data = zlib.decompress(_raw_bytes(self._zip.fp, info), -15)  # one call: faster than zipfile's reads
        except zlib.error as error:
            raise zipfile.BadZipFile(f"{name}: {error}") from None
        if zlib.crc32(data) != info.CRC or len(data) != info.file_size:
            raise zipfile.BadZipFile(f"Bad CRC-32 for file {name!r}")
        return data

    def info(self, name: str) -> zipfile.ZipInfo:
        return self._zip.getinfo(name)

    def _main_part(self) -> str:
        types = self._zip.read("[Content_Types].xml")
        for match in re.finditer(rb"<(?:\w+:)?Override\b[^>]*>", types):
            attributes = _attributes(match.group(0))
            if attributes.get("ContentType", "").endswith((".sheet.main+xml", ".template.main+xml")):
                return attributes["PartName"].lstrip("/")
        if "xl/workbook.xml" in self._names:
            return "xl/workbook.xml"
        raise PackageError("it has no workbook part")

    def _rels_name(self) -> str:
        part = PurePosixPath(self.workbook_part)
        return str(part.parent / "_rels" / (part.name + ".rels"))

    def _relationships(self) -> list[dict[str, str]]:
        xml = self.read(self._rels_name())
        found = []
        for match in re.finditer(rb"<(?:\w+:)?Relationship\b[^>]*>", xml):
            attributes = _attributes(match.group(0))
            target = attributes.get("Target", "")
            if attributes.get("TargetMode") != "External":
                attributes["part"] = self._resolve(target)
            found.append(attributes)
        return found

    def _resolve(self, target: str) -> str:
        if target.startswith("/"):
            return target.lstrip("/")
        parts: list[str] = list(PurePosixPath(self.workbook_part).parent.parts)
        for piece in target.split("/"):
            if piece == "..":
                parts.pop()
            elif piece not in ("", "."):
                parts.append(piece)
        return "/".join(parts)

    def sheets(self) -> list[tuple[str, str]]:
        """(title, part name) of every worksheet, in tab order."""
        xml = self.read(self.workbook_part)
        if MAIN_NS.encode() not in xml:
            raise PackageError("it is saved as Strict Open XML; save it as an ordinary Excel Workbook (.xlsx)")
        by_id = {r.get("Id"): r.get("part") for r in self._relationships()}
        result = []
        for match in re.finditer(rb"<(?:\w+:)?sheet\b[^>]*>", xml):
            attributes = _attributes(match.group(0))
            rid = next((v for k, v in attributes.items() if k.endswith(":id")), None)
            if attributes.get("name") and by_id.get(rid):
                result.append((attributes["name"], by_id[rid]))
        return result

    def strings(self) -> SharedStrings:
        if self._strings is None:
            part = next((r["part"] for r in self._relations if r.get("Type") == SHARED_STRINGS_TYPE), None)
            self._strings = SharedStrings(self._zip.open(part) if part and part in self._names else None)
        return self._strings

    def sheet(self, title: str) -> SheetPart:
        part = dict(self.sheets())[title]
        return SheetPart(self.read(part), self.strings())

    def add_tab(self, tab: NewTab, index: int | None = None) -> str:
        """A new tab made from `tab`, with the cell formats it needs; returns its part name."""
        header = self.style(bold=True)
        has_booleans = any(isinstance(v, bool) for row in tab.rows for v in row)
        booleans = self.style(number_format=BOOLEAN_FORMAT) if has_booleans else None
        return self.add_sheet(tab.title, new_sheet_xml(tab, header, booleans), index)

    def add_sheet(self, title: str, xml: bytes, index: int | None = None) -> str:
        """A new tab, after the others or at tab position `index`; returns its part name."""
        taken = set(self._names) | set(self.added)
        number = len(self.sheets()) + 1
        while f"xl/worksheets/sheet{number}.xml" in taken:
            number += 1
        part = f"xl/worksheets/sheet{number}.xml"
        self.added[part] = xml
        rels_name = self._rels_name()
        rels = self.read(rels_name)
        ids = {r.get("Id") for r in self._relationships()}
        rid = next(f"rId{n}" for n in range(len(ids) + 1, len(ids) + 10_000) if f"rId{n}" not in ids)
        target = "/" + part
        relationship = f'<Relationship Id="{rid}" Type="{WORKSHEET_TYPE}" Target="{target}"/>'
        self.changed[rels_name] = _insert_before_close(rels, b"Relationships", relationship.encode())
        workbook = self.read(self.workbook_part)
        prefix = re.search(rb'xmlns:(\w+)="' + re.escape(REL_NS.encode()) + rb'"', workbook)
        rel_attr = f'{prefix.group(1).decode()}:id="{rid}"' if prefix else f'xmlns:r="{REL_NS}" r:id="{rid}"'
        sheet_ids = [int(a.get("sheetId", 0)) for a in
                     (_attributes(m.group(0)) for m in re.finditer(rb"<(?:\w+:)?sheet\b[^>]*>", workbook))]
        element = (f"<{_prefix_of(workbook, b'sheets')}sheet name={quoteattr(title)} "
                   f'sheetId="{max(sheet_ids, default=0) + 1}" {rel_attr}/>').encode("utf-8")
        existing = list(re.finditer(rb"<(?:\w+:)?sheet\b[^>]*>", workbook))
        if index is not None and index < len(existing):
            if b"localSheetId" in workbook:  # defined names count tabs by position
                raise PackageError("a tab can only be added after the others in a workbook with local names")
            at = existing[index].start()
            self.changed[self.workbook_part] = workbook[:at] + element + workbook[at:]
        else:
            self.changed[self.workbook_part] = _insert_before_close(workbook, b"sheets", element)
        types = self.read("[Content_Types].xml")
        override = f'<Override PartName="/{part}" ContentType="{WORKSHEET_CONTENT}"/>'
        self.changed["[Content_Types].xml"] = _insert_before_close(types, b"Types", override.encode())
        self._relations = self._relationships()
        return part

    def style(self, bold: bool = False, number_format: str | None = None) -> int | None:
        """The index of a cell format, added to the styles part if it lacks it; None without one."""
        part = next((r["part"] for r in self._relations if r.get("Type") == STYLES_TYPE), None)
        if not part or part not in self._names:
            return None
        styles = Styles(self.read(part))
        index = styles.format(bold, number_format)
        if styles.xml != self.read(part):
            self.changed[part] = styles.xml
        return index

    def save(self, target) -> dict[str, tuple[int, int]]:
        """Write the package to `target`: unchanged parts as their original compressed bytes, the
        others checked to parse as XML first. Returns each rewritten part's (CRC, size)."""
        written = {}
        with zipfile.ZipFile(target, "w") as out:
            for info in self._zip.infolist():
                if info.filename in self.changed:
                    written[info.filename] = _write(out, info.filename, self.changed[info.filename], info)
                else:
                    _copy_raw(self._zip.fp, info, out)
            for name, data in self.added.items():
                written[name] = _write(out, name, data)
        return written


def _prefix_of(xml: bytes, element: bytes) -> str:
    found = re.search(rb"<(\w+:)?" + element + rb"\b", xml)
    return (found.group(1) or b"").decode() if found else ""


def _insert_before_close(xml: bytes, element: bytes, insert: bytes) -> bytes:
    closing = re.search(rb"</(?:\w+:)?" + element + rb"\s*>", xml)
    if closing:
        return xml[:closing.start()] + insert + xml[closing.start():]
    empty = re.search(rb"<((?:\w+:)?" + element + rb")\b([^>]*?)/>", xml)
    if not empty:
        raise PackageError(f"it has no {element.decode()} element")
    name = empty.group(1)
    return xml[:empty.start()] + b"<" + name + empty.group(2) + b">" + insert + b"</" + name + b">" + xml[empty.end():]


def _write(out: zipfile.ZipFile, name: str, data: bytes, like: zipfile.ZipInfo | None = None) -> tuple[int, int]:
    """Add a part written anew, after checking that it parses; returns its (CRC, size)."""
    if name.endswith((".xml", ".rels")):
        try:
            expat.ParserCreate().Parse(data, True)
        except expat.ExpatError as error:
            raise WriteRefused(f"{name} would not parse ({error})") from None
    info = zipfile.ZipInfo(name, like.date_time if like else (1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = like.external_attr if like else 0o644 << 16
    info.CRC, info.file_size = zlib.crc32(data), len(data)
    compressed = deflate(data)
    info.compress_size = len(compressed)
    _append_raw(out, info, compressed)
    return info.CRC, info.file_size


def deflate(data: bytes) -> bytes:
    """Raw deflate, as a zip member stores it."""
    compressor = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def _raw_bytes(source, info: zipfile.ZipInfo) -> bytes:
    """A member's compressed bytes, as stored."""
    source.seek(info.header_offset)
    header = source.read(30)
    if header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for {info.filename}")
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    source.seek(info.header_offset + 30 + name_length + extra_length)
    return source.read(info.compress_size)


def _copy_raw(source, info: zipfile.ZipInfo, out: zipfile.ZipFile) -> None:
    """Copy one member's compressed bytes as they are."""
    data = _raw_bytes(source, info)
    copy = zipfile.ZipInfo(info.filename, info.date_time)
    copy.compress_type, copy.CRC = info.compress_type, info.CRC
    copy.compress_size, copy.file_size = info.compress_size, info.file_size
    copy.external_attr, copy.create_system = info.external_attr, info.create_system
    copy.flag_bits = info.flag_bits & 0x06  # the deflate level hint; no data descriptor, no encryption
    _append_raw(out, copy, data)


def _append_raw(out: zipfile.ZipFile, info: zipfile.ZipInfo, compressed: bytes) -> None:
    """Add a member whose compressed bytes, CRC and sizes are known. zipfile has no public call for
    this; it is what its own writer does, without compressing again."""
    out.fp.seek(out.start_dir)
    info.header_offset = out.fp.tell()
    out.fp.write(info.FileHeader())
    out.fp.write(compressed)
    out.start_dir = out.fp.tell()
    out.filelist.append(info)
    out.NameToInfo[info.filename] = info
    out._didModify = True


# --- styles --------------------------------------------------------------------------------------------


BOOLEAN_FORMAT = '"TRUE";"TRUE";"FALSE"'  # LibreOffice shows a boolean cell as 0/1 without it


class Styles:
    """The styles part, grown only by the cell formats new cells need (a bold header, a TRUE/FALSE
    cell) and only when it lacks them: a format already there is reused, so the part is rewritten
    the first time a format is needed and never again."""

    def __init__(self, xml: bytes):
        self.xml = xml
        found = re.search(rb"<(\w+:)?styleSheet\b", xml)
        self.prefix = (found.group(1) or b"") if found else b""

    def _block(self, name: bytes) -> re.Match | None:
        p = self.prefix
        return re.search(rb"(<" + p + name + rb"\b[^>]*>)(.*?)(</" + p + name + rb">)", self.xml, re.S)

    def _items(self, block: re.Match, name: bytes) -> list[bytes]:
        p = self.prefix
        return re.findall(rb"<" + p + name + rb"\b(?:[^>]*/>|.*?</" + p + name + rb">)", block.group(2), re.S)

    def format(self, bold: bool = False, number_format: str | None = None) -> int | None:
        """The index of a cell format with the default font (made bold) and this number format."""
        fonts, formats = self._block(b"fonts"), self._block(b"cellXfs")
        if not fonts or not formats:
            return None
        font = self._bold_font() if bold else 0
        number = self._number_format(number_format) if number_format else 0
        formats = self._block(b"cellXfs")
        for index, xf in enumerate(self._items(formats, b"xf")):
            attributes = _attributes(re.match(rb"<[^>]*>", xf).group(0))
            if (attributes.get("fontId", "0") == str(font) and attributes.get("numFmtId", "0") == str(number)
                    and attributes.get("fillId", "0") == "0" and attributes.get("borderId", "0") == "0"
                    and b"alignment" not in xf and b"protection" not in xf):
                return index
        xf = (b"<" + self.prefix + b'xf numFmtId="%d" fontId="%d" fillId="0" borderId="0" xfId="0"%s%s/>'
              % (number, font, b' applyFont="1"' if bold else b"", b' applyNumberFormat="1"' if number else b""))
        count = len(self._items(formats, b"xf"))
        self.xml = self._append(formats, xf, count + 1)
        return count

    def _bold_font(self) -> int:
        """A font like the default one, bold: found, or added. A bold font without a name would be
        drawn in some fallback face, so only a complete one is reused."""
        p = self.prefix
        fonts = self._block(b"fonts")
        items = self._items(fonts, b"font")
        for index, font in enumerate(items):
            if re.search(rb"<" + p + rb'b(?:\s+val="(?:1|true)")?\s*/>', font) and re.search(rb"<" + p + rb"name\b", font):
                return index
        base = items[0] if items else b"<" + p + b"font></" + p + b"font>"
        if base.endswith(b"/>"):
            base = base[:-2] + b"></" + p + b"font>"
        self.xml = self._append(fonts, re.sub(rb"^(<" + p + rb"font\b[^>]*>)", rb"\1<" + p + rb"b/>", base, count=1),
                                len(items) + 1)
        return len(items)

    def _number_format(self, code: str) -> int:
        p = self.prefix
        block = self._block(b"numFmts")
        if block:
            for item in self._items(block, b"numFmt"):
                attributes = _attributes(item)
                if attributes.get("formatCode") == code:
                    return int(attributes["numFmtId"])
            used = [int(_attributes(item).get("numFmtId", 0)) for item in self._items(block, b"numFmt")]
            number = max([163, *used]) + 1
            element = b"<" + p + b'numFmt numFmtId="%d" formatCode=%s/>' % (number, quoteattr(code).encode())
            self.xml = self._append(block, element, len(used) + 1)
            return number
        empty = re.search(rb"<" + p + rb"numFmts\b[^>]*/>", self.xml)
        element = b"<" + p + b'numFmts count="1"><' + p + b'numFmt numFmtId="164" formatCode=%s/></' % quoteattr(code).encode() + p + b"numFmts>"
        if empty:
            self.xml = self.xml[:empty.start()] + element + self.xml[empty.end():]
        else:  # numFmts comes first in a styleSheet
            opening = re.search(rb"<" + p + rb"styleSheet\b[^>]*>", self.xml)
            self.xml = self.xml[:opening.end()] + element + self.xml[opening.end():]
        return 164

    def _append(self, block: re.Match, item: bytes, count: int) -> bytes:
        opening = re.sub(rb'\bcount="\d+"', b'count="%d"' % count, block.group(1))
        return self.xml[:block.start()] + opening + block.group(2) + item + block.group(3) + self.xml[block.end():]
