"""The pieces of SpreadsheetML the `.xlsx` writer needs: cell references, text as OOXML stores it,
and one cell's XML for each kind of value (text, rich text, number, boolean, date)."""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from datetime import date, datetime, timezone
from functools import lru_cache
from html import unescape
from xml.sax.saxutils import escape, quoteattr

from loop.cell_values import cell_text, to_serial
from loop.sheets.base import RichText

MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
STRICT_MAIN_NS = "http://purl.oclc.org/ooxml/spreadsheetml/main"  # Strict Open XML, which loop does not write
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
EXCEL_MAX_ROWS = 1_048_576
CELL_LIMIT = 32_767
BOOLEAN_FORMAT = '"TRUE";"TRUE";"FALSE"'  # LibreOffice shows a boolean cell as 0/1 without it
DATE_FORMAT = "yyyy-mm-dd hh:mm:ss"

_ESCAPE_LIKE = re.compile(r"_(?=x[0-9A-Fa-f]{4}_)")
_OOXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_ATTRIBUTE = re.compile(rb'([\w:.-]+)\s*=\s*(?:"([^"]*)"|\'([^\']*)\')')
CELL_REF = re.compile(r"([A-Z]+)(\d+)")
_FORMULA = re.compile(rb"<((?:\w+:)?)(f|formula\d?|definedName)\b([^>]*)(?<!/)>(.*?)</\1\2>", re.S)
_AREA_END = re.compile(r"([A-Z]{0,3})(\d*)")  # one end of an area: B5, B (a column), 5 (a row)


class PackageError(ValueError):
    """The package is not a workbook this writer can edit (the message says why)."""


class DamagedPart(PackageError):
    """A part contradicts itself or another part (a cell names a shared string that is not there, a
    row stored twice): readers refuse it or disagree on it, so it is damaged, not merely unusual."""


class RowShift:
    """Where rows go when `deleted` rows are removed and the rows below move up, as Excel moves them."""

    def __init__(self, deleted=()):
        self.deleted = sorted(set(deleted))

    def __bool__(self) -> bool:
        return bool(self.deleted)

    def row(self, number: int) -> int:
        """A kept row's new number; for a deleted one, the number of the row that takes its place."""
        return number - bisect_left(self.deleted, number)

    def rows(self, top: int, bottom: int) -> tuple[int, int] | None:
        """Rows `top`..`bottom` after the move; None when all of them are gone. Rows down to the sheet's
        last (a whole column) still end there."""
        end = bottom if bottom >= EXCEL_MAX_ROWS else bottom - bisect_right(self.deleted, bottom)
        start = self.row(top)
        return (start, end) if start <= end else None

    def area(self, ref: str, keep: bool = False) -> str | None:
        """An area ("A2:C9", "B5", "3:7") after the move: None when it covered deleted rows only, unless
        `keep`, which puts it on the row that moved into its place. Whole columns stay as they are."""
        first, colon, last = ref.partition(":")
        top, bottom = _AREA_END.fullmatch(first), _AREA_END.fullmatch(last or first)
        if not (top and bottom and top.group(2) and bottom.group(2)):
            return ref
        span = self.rows(int(top.group(2)), int(bottom.group(2)))
        if span is None:
            if not keep:
                return None
            span = (self.row(int(top.group(2))),) * 2
        return f"{top.group(1)}{span[0]}" + (f":{bottom.group(1)}{span[1]}" if colon else "")

    def areas(self, sqref: str, keep: bool = False) -> str | None:
        """Space-separated areas after the move, without those that are gone; None when all are."""
        moved = [area for area in (self.area(a, keep) for a in sqref.split()) if area]
        return " ".join(moved) or None


class RowInsert:
    """Where rows go when `count` rows are inserted above row `at`, as Excel moves them: rows from `at`
    down move down; an area spanning `at` grows; and an area ending on the row above `at` grows too when
    it lies within `grown` (top, left, right: the data of a table the rows are inserted into)."""

    def __init__(self, at: int, count: int, grown: tuple[int, int, int] | None = None):
        self.at, self.count, self.grown = at, count, grown

    def __bool__(self) -> bool:
        return self.count > 0

    def row(self, number: int) -> int:
        return number + self.count if number >= self.at else number

    def rows(self, top: int, bottom: int, left: int = 0, right: int = 0) -> tuple[int, int]:
        if bottom >= EXCEL_MAX_ROWS:  # down to the sheet's last row: stays so
            return self.row(top), bottom
        within = self.grown and self.grown[0] <= top and left and self.grown[1] <= left and right <= self.grown[2]
        if bottom == self.at - 1 and within:
            return top, bottom + self.count
        return self.row(top), self.row(bottom)

    def area(self, ref: str, keep: bool = False) -> str:
        first, colon, last = ref.partition(":")
        top, bottom = _AREA_END.fullmatch(first), _AREA_END.fullmatch(last or first)
        if not (top and bottom and top.group(2) and bottom.group(2)):
            return ref
        left, right = (column_index(top.group(1)), column_index(bottom.group(1))) if top.group(1) else (0, 0)
        start, end = self.rows(int(top.group(2)), int(bottom.group(2)), left, right)
        return f"{top.group(1)}{start}" + (f":{bottom.group(1)}{end}" if colon else "")

    def areas(self, sqref: str, keep: bool = False) -> str:
        return " ".join(self.area(a) for a in sqref.split())

    def formula(self, text: str, sheet: str | None = None) -> str:
        """A formula's A1 references to this tab moved as the rows move (text in quotes, other tabs' refs kept)."""
        def moved(found: re.Match) -> str:
            if found.group(1) and not _same_sheet(found.group(1), sheet):
                return found.group(0)
            return (found.group(1) or "") + _dollars(self.area(found.group(2).replace("$", "")), found.group(2))

        pieces = text.split('"')
        return '"'.join(_FORMULA_REF.sub(moved, piece) if i % 2 == 0 else piece for i, piece in enumerate(pieces))

    def reaches(self, text: str, sheet: str | None = None) -> bool:
        """Whether a formula refers (by A1 reference) to a row of this tab from `at` down."""
        for i, piece in enumerate(text.split('"')):
            for found in _FORMULA_REF.finditer(piece) if i % 2 == 0 else ():
                if found.group(1) and not _same_sheet(found.group(1), sheet):
                    continue
                rows = [int(r) for r in re.findall(r"\d+", found.group(2))]
                if rows and max(rows) >= self.at and max(rows) < EXCEL_MAX_ROWS:
                    return True
        return False


# An A1 reference or area in a formula, with the tab it names if any ('My tab'!A1, Drafts!$B$2:$B$9).
_FORMULA_REF = re.compile(r"((?:'(?:[^']|'')+'|[A-Za-z_][\w.]*)!)?(?<![\w.$:])(\$?[A-Z]{1,3}\$?\d+(?::\$?[A-Z]{1,3}\$?\d+)?)(?![\w(!])")


def _same_sheet(qualifier: str, sheet: str | None) -> bool:
    name = qualifier[:-1]
    name = name[1:-1].replace("''", "'") if name.startswith("'") else name
    return sheet is not None and name.casefold() == sheet.casefold()


def _dollars(moved: str, original: str) -> str:
    """`moved` (a plain area) given the `$` marks `original` had."""
    ends = [re.fullmatch(r"(\$?)([A-Z]+)(\$?)(\d+)", end) for end in original.split(":")]
    plain = [re.fullmatch(r"([A-Z]+)(\d+)", end) for end in moved.split(":")]
    return ":".join(f"{o.group(1)}{m.group(1)}{o.group(3)}{m.group(2)}" for o, m in zip(ends, plain))


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


def attributes_of(tag: bytes) -> dict[str, str]:
    return {name.decode(): unescape((a if a is not None else b).decode())
            for name, a, b in ((m.group(1), m.group(2), m.group(3)) for m in _ATTRIBUTE.finditer(tag))}


def text_of(xml: bytes, prefix: bytes) -> str:
    """The text of every <t> in a fragment (an inline string or a shared string), without phonetic runs."""
    phonetic, texts = _text_patterns(prefix)
    if b"rPh" in xml:
        xml = phonetic.sub(b"", xml)
    text = b"".join(texts.findall(xml)).decode("utf-8")
    text = unescape(text) if "&" in text else text
    return plain_text(text) if "_x" in text else text


@lru_cache(maxsize=None)
def _text_patterns(prefix: bytes) -> tuple[re.Pattern, re.Pattern]:
    return (re.compile(rb"<" + prefix + rb"rPh\b.*?</" + prefix + rb"rPh>", re.S),
            re.compile(rb"<" + prefix + rb"t(?:\s[^>]*)?>(.*?)</" + prefix + rb"t>", re.S))


def formula_naming(xml: bytes, title: str) -> str | None:
    """The first formula or defined name in `xml` that refers to tab `title` by name (quoted or not):
    "the defined name …" or "a formula"; None when none does. Excel's own names (`_xlnm.`: the filter's
    range, the print area and titles) are passed over: Excel keeps them in step with the tab itself."""
    quoted = "'" + title.replace("'", "''") + "'"
    mention = re.compile("(?:" + re.escape(quoted) + r"|(?<![\w.'])" + re.escape(title) + ")!", re.I)
    for found in _FORMULA.finditer(xml):
        name = attributes_of(found.group(3)).get("name", "") if found.group(2) == b"definedName" else None
        if (name or "").startswith("_xlnm.") or not mention.search(unescape(found.group(4).decode("utf-8", "replace"))):
            continue
        return "a formula" if name is None else f"the defined name {name}"
    return None


def number_format_of(value) -> str | None:
    """The number format a value needs to be shown as what it is."""
    if isinstance(value, bool):
        return BOOLEAN_FORMAT
    if isinstance(value, (datetime, date)):
        return DATE_FORMAT
    return None


def cell_xml(prefix: str, ref: str, value, style: str | None = None, font: tuple[str, str] | None = None) -> str:
    """One <c> element holding `value` as a plain value: text is an inline string, never a formula."""
    p = prefix
    s = f' s="{style}"' if style is not None else ""
    if value is None or value == "":
        return f'<{p}c r="{ref}"{s}/>' if style is not None else ""
    if isinstance(value, bool):
        return f'<{p}c r="{ref}"{s} t="b"><{p}v>{int(value)}</{p}v></{p}c>'
    if isinstance(value, (datetime, date)):
        moment = value if isinstance(value, datetime) else datetime(value.year, value.month, value.day)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)  # naive means UTC
        return f'<{p}c r="{ref}"{s}><{p}v>{to_serial(moment)!r}</{p}v></{p}c>'
    if isinstance(value, (int, float)) and math.isfinite(value):
        return f'<{p}c r="{ref}"{s}><{p}v>{value!r}</{p}v></{p}c>'
    if isinstance(value, RichText):
        return f'<{p}c r="{ref}"{s} t="inlineStr"><{p}is>{rich_runs(value, font, p=p)}</{p}is></{p}c>'
    text = escape(ooxml_text(cell_text(value, CELL_LIMIT)))
    return f'<{p}c r="{ref}"{s} t="inlineStr"><{p}is><{p}t xml:space="preserve">{text}</{p}t></{p}is></{p}c>'


def rich_runs(value: RichText, font: tuple[str, str] | None, look: dict | None = None, p: str = "") -> str:
    """Rich text runs, cut (like plain text) to the cell limit. A run with a look of its own names the
    workbook's font too (else a reader draws it in some fallback face), and keeps the cell's bold and
    grey unless it sets its own. `p`: the part's namespace prefix ("x:"), if it has one."""
    name, size = font or ("Calibri", "11")
    look = look or {}
    room, runs = CELL_LIMIT, []
    for run in value.runs:
        text = cell_text(run.text, CELL_LIMIT)[:room]
        if not text:
            break
        room -= len(text)
        color = run.color or look.get("color")
        own = run.strike or run.color or run.bold
        props = ""
        if own:
            bold = f"<{p}b/>" if run.bold or look.get("bold") else ""
            strike = f"<{p}strike/>" if run.strike else ""
            tint = f'<{p}color rgb="FF{color}"/>' if color else ""
            props = f"<{p}rPr><{p}rFont val={quoteattr(name)}/>{bold}{strike}{tint}<{p}sz val={quoteattr(size)}/></{p}rPr>"
        runs.append(f'<{p}r>{props}<{p}t xml:space="preserve">{escape(ooxml_text(text))}</{p}t></{p}r>')
    return "".join(runs)
