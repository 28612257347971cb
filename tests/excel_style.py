"""Workbooks as other programs write them, from one openpyxl wrote: Excel and LibreOffice keep text
in a shared-strings part (cells hold an index), and some libraries (the .NET Open XML SDK) write
every element with an `x:` prefix."""

from __future__ import annotations

import re
import zipfile
from html import unescape
from pathlib import Path
from xml.sax.saxutils import escape

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_INLINE = re.compile(r'<c ([^>]*?)t="inlineStr"([^>]*)><is><t[^>]*>(.*?)</t></is></c>', re.S)


def shared_strings(path: Path) -> Path:
    """Move every inline string into xl/sharedStrings.xml, first come first indexed, as Excel does."""
    parts = _parts(path)
    strings: dict[str, int] = {}

    def shared(match: re.Match) -> str:
        text = unescape(match.group(3))
        index = strings.setdefault(text, len(strings))
        return f'<c {match.group(1)}t="s"{match.group(2)}><v>{index}</v></c>'

    for name in [n for n in parts if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", n)]:
        parts[name] = _INLINE.sub(shared, parts[name].decode("utf-8")).encode("utf-8")
    items = "".join(f'<si><t xml:space="preserve">{escape(text)}</t></si>' for text in strings)
    parts["xl/sharedStrings.xml"] = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns="{MAIN}" '
                                     f'count="{len(strings)}" uniqueCount="{len(strings)}">{items}</sst>').encode("utf-8")
    parts["xl/_rels/workbook.xml.rels"] = parts["xl/_rels/workbook.xml.rels"].replace(
        b"</Relationships>", f'<Relationship Id="rIdStrings" Type="{REL}/sharedStrings" Target="sharedStrings.xml"/>'
        "</Relationships>".encode())
    parts["[Content_Types].xml"] = parts["[Content_Types].xml"].replace(
        b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-'
        b'officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
    _save(path, parts)
    return path


def prefixed(path: Path) -> Path:
    """Every worksheet element written with an `x:` prefix on the SpreadsheetML namespace."""
    parts = _parts(path)
    for name in [n for n in parts if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", n)]:
        xml = parts[name].decode("utf-8").replace(f'<worksheet xmlns="{MAIN}"', f'<worksheet xmlns:x="{MAIN}"')
        xml = re.sub(r"<(/?)(?![?!])(\w+)(?=[\s>/])", r"<\1x:\2", xml)
        parts[name] = xml.encode("utf-8")
    _save(path, parts)
    return path


def _parts(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _save(path: Path, parts: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
