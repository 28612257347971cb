"""The styles part of an `.xlsx` package, grown only by the cell formats new cells need.

A format is a font (the workbook's default one, made bold or coloured), a number format (TRUE/FALSE,
a date) and whether text wraps. One already there is reused, so the part is rewritten the first time
a format is needed and never again for it."""

from __future__ import annotations

import re
from xml.sax.saxutils import quoteattr

from loop.sheets.ooxml import attributes_of

# Excel 365's in-cell checkbox: a cell format whose extension points at a feature property bag.
FEATURE_BAG_NS = b"http://schemas.microsoft.com/office/spreadsheetml/2022/featurepropertybag"
CHECKBOX_EXT_URI = b"{C7286773-470A-42A8-94C5-96B5CB345126}"


class Styles:
    def __init__(self, xml: bytes):
        self.xml = xml
        found = re.search(rb"<(\w+:)?styleSheet\b", xml)
        self.prefix = (found.group(1) or b"") if found else b""
        self._known: dict[tuple, int | None] = {}  # formats found; this class only appends, so indexes hold

    def _block(self, name: bytes) -> re.Match | None:
        p = self.prefix
        return re.search(rb"(<" + p + name + rb"\b[^>]*>)(.*?)(</" + p + name + rb">)", self.xml, re.S)

    def _items(self, block: re.Match, name: bytes) -> list[bytes]:
        p = self.prefix
        return re.findall(rb"<" + p + name + rb"\b(?:[^>]*/>|.*?</" + p + name + rb">)", block.group(2), re.S)

    def format(self, bold: bool = False, color: str | None = None, wrap: bool = False,
               number_format: str | None = None, top: bool = False, fill: str | None = None,
               align: str | None = None, italic: bool = False, checkbox: bool = False) -> int | None:
        """The index of the cell format asked for (`top`: aligned to the top of a tall row; `fill`: a
        solid background "RRGGBB"; `align`: left, center or right; `checkbox`: Excel 365's in-cell
        checkbox, which `ensure_checkbox` must make possible first); None when the part has no fonts or
        formats to extend. A format carrying extension data (a user's checkbox) is never reused for
        another look."""
        asked = (bold, color, wrap, number_format, top, fill, align, italic, checkbox)
        if asked not in self._known:
            self._known[asked] = self._format(*asked)
        return self._known[asked]

    def _format(self, bold, color, wrap, number_format, top, fill, align, italic, checkbox) -> int | None:
        if not self._block(b"fonts") or not self._block(b"cellXfs"):
            return None
        font = self._font(bold, color, italic) if bold or color or italic else 0
        number = self._number_format(number_format) if number_format else 0
        fill_id = self._fill(fill) if fill else 0
        if fill and fill_id is None:
            fill_id = 0
        p = self.prefix
        alignment = b""
        if wrap or top or align:
            alignment = (b"<" + p + b"alignment" + (b' horizontal="%s"' % align.encode() if align else b"")
                         + (b' wrapText="1"' if wrap else b"") + b' vertical="top"/>')
        extension = (b'<' + p + b'extLst><' + p + b'ext uri="' + CHECKBOX_EXT_URI + b'" xmlns:xfpb="'
                     + FEATURE_BAG_NS + b'"><xfpb:xfComplement i="0"/></' + p + b'ext></' + p + b'extLst>'
                     if checkbox else b"")
        formats = self._block(b"cellXfs")
        for index, xf in enumerate(self._items(formats, b"xf")):
            found = attributes_of(re.match(rb"<[^>]*>", xf).group(0))
            aligned = re.search(rb"<" + p + rb"alignment\b[^>]*>", xf)
            extended = re.search(rb"<(?:\w+:)?extLst\b.*</(?:\w+:)?extLst>", xf, re.S)
            if (found.get("fontId", "0") == str(font) and found.get("numFmtId", "0") == str(number)
                    and found.get("fillId", "0") == str(fill_id) and found.get("borderId", "0") == "0"
                    and b"protection" not in xf
                    and (aligned.group(0) if aligned else b"") == alignment
                    and (extended.group(0) if extended else b"") == extension):
                return index
        applied = (b' applyFont="1"' if font else b"") + (b' applyNumberFormat="1"' if number else b"") + (
            b' applyFill="1"' if fill_id else b"") + (b' applyAlignment="1"' if alignment else b"")
        head = b"<" + p + b'xf numFmtId="%d" fontId="%d" fillId="%d" borderId="0" xfId="0"%s' % (
            number, font, fill_id, applied)
        body = alignment + extension
        xf = head + (b">" + body + b"</" + p + b"xf>" if body else b"/>")
        count = len(self._items(formats, b"xf"))
        self.xml = self._append(formats, xf, count + 1)
        return count

    def _fill(self, color: str) -> int | None:
        """A solid fill of `color`: found, or added; None when the part has no fills to extend."""
        p = self.prefix
        fills = self._block(b"fills")
        if not fills:
            return None
        items = self._items(fills, b"fill")
        wanted = (b"<" + p + b'fill><' + p + b'patternFill patternType="solid"><' + p + b'fgColor rgb="FF%s"/><'
                  % color.encode() + p + b'bgColor indexed="64"/></' + p + b"patternFill></" + p + b"fill>")
        if wanted in items:
            return items.index(wanted)
        self.xml = self._append(fills, wanted, len(items) + 1)
        return len(items)

    def default_font(self) -> tuple[str, str]:
        """The name and size of the workbook's default font, for rich text runs to match it."""
        fonts = self._block(b"fonts")
        first = self._items(fonts, b"font")[0] if fonts and self._items(fonts, b"font") else b""
        name = re.search(rb'<(?:\w+:)?name\b[^>]*\bval="([^"]*)"', first)
        size = re.search(rb'<(?:\w+:)?sz\b[^>]*\bval="([^"]*)"', first)
        return (name.group(1).decode() if name else "Calibri", size.group(1).decode() if size else "11")

    def _font(self, bold: bool, color: str | None, italic: bool = False) -> int:
        """The default font, made bold, italic and/or coloured: found, or added."""
        p = self.prefix
        fonts = self._block(b"fonts")
        items = self._items(fonts, b"font")
        base = items[0] if items else b"<" + p + b"font></" + p + b"font>"
        if base.endswith(b"/>"):
            base = base[:-2] + b"></" + p + b"font>"
        font = re.sub(rb"<" + p + rb"(?:b|i|color)\b[^>]*/>", b"", base)
        opening = re.match(rb"<" + p + rb"font\b[^>]*>", font).group(0)
        extra = ((b"<" + p + b"b/>" if bold else b"") + (b"<" + p + b"i/>" if italic else b"")
                 + (b"<" + p + b'color rgb="FF%s"/>' % color.encode() if color else b""))
        font = opening + extra + font[len(opening):]
        if font in items:
            return items.index(font)
        self.xml = self._append(fonts, font, len(items) + 1)
        return len(items)

    def _number_format(self, code: str) -> int:
        p = self.prefix
        block = self._block(b"numFmts")
        if block:
            used = []
            for item in self._items(block, b"numFmt"):
                found = attributes_of(item)
                if found.get("formatCode") == code:
                    return int(found["numFmtId"])
                used.append(int(found.get("numFmtId", 0)))
            number = max([163, *used]) + 1
            element = b"<" + p + b'numFmt numFmtId="%d" formatCode=%s/>' % (number, quoteattr(code).encode())
            self.xml = self._append(block, element, len(used) + 1)
            return number
        element = (b"<" + p + b'numFmts count="1"><' + p + b'numFmt numFmtId="164" formatCode=%s/></' % quoteattr(code).encode()
                   + p + b"numFmts>")
        empty = re.search(rb"<" + p + rb"numFmts\b[^>]*/>", self.xml)
        if empty:
            self.xml = self.xml[:empty.start()] + element + self.xml[empty.end():]
        else:  # numFmts comes first in a styleSheet
            opening = re.search(rb"<" + p + rb"styleSheet\b[^>]*>", self.xml)
            self.xml = self.xml[:opening.end()] + element + self.xml[opening.end():]
        return 164

    def _append(self, block: re.Match, item: bytes, count: int) -> bytes:
        opening = re.sub(rb'\bcount="\d+"', b'count="%d"' % count, block.group(1))
        return self.xml[:block.start()] + opening + block.group(2) + item + block.group(3) + self.xml[block.end():]
