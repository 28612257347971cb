"""Editing an .xlsx package part by part, so a write costs what it changes.

An .xlsx file is a zip of XML parts. A write here rewrites only the parts it changes: the sheet XML
of the tabs it edits or adds (`sheet_part.py`), the tables over a tab it deletes rows from, and, when
it adds a tab, the workbook, its relationships, the content types and (for a format new cells need)
the styles. Every other part —
charts, images, pivot tables, macros, extension data, the shared strings — is copied into the new
file as the same compressed bytes, so nothing that openpyxl would drop is ever lost, and a
50,000-row Drafts tab is not rewritten to change three cells of an Edits tab.

Part names are found as the Open Packaging Conventions say: a relationship's target is resolved
against the folder of the part it belongs to, `..` and `.` are taken out (never above the package's
root), a leading `/` names the package's root, and names match whatever their case. Every part
loop reads (the content types, the workbook and its relationships, the styles, a tab, the shared
strings, a table, a drawing, notes) whose size in the zip's directory is over `MAX_PART_BYTES` is
refused before it is unpacked, and no part is ever unpacked past the size the directory gives,
so a small file that inflates to gigabytes costs neither the time nor the memory.
"""

from __future__ import annotations

import os
import re
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import unquote
from xml.parsers import expat
from xml.sax.saxutils import quoteattr

try:  # Intel's ISA-L: the same deflate format, two to four times faster than zlib
    from isal import isal_zlib as zlib
except ImportError:  # pragma: no cover -- a platform without its wheels
    import zlib

from loop.sheets.base import NewTab
from loop.sheets.ooxml import (BOOLEAN_FORMAT, MAIN_NS, REL_NS, STRICT_MAIN_NS, PackageError, attributes_of,
                               formula_naming)
from loop.sheets.sheet_part import SharedStrings, SheetPart
from loop.sheets.styles import Styles
from loop.sheets.tab_xml import new_sheet_xml

WORKSHEET_TYPE = REL_NS + "/worksheet"
SHARED_STRINGS_TYPE = REL_NS + "/sharedStrings"
STYLES_TYPE = REL_NS + "/styles"
WORKSHEET_CONTENT = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
DRAWING_CONTENT = "application/vnd.openxmlformats-officedocument.drawing+xml"
CHART_CONTENT = "application/vnd.openxmlformats-officedocument.drawingml.chart+xml"
# ISA-L's level 2 packs about as tightly as zlib's default, several times faster; any reader inflates it.
COMPRESS_LEVEL = 2 if zlib.__name__.startswith("isal") else 6
# Excel 365's in-cell checkbox: one feature property bag part, as Excel itself writes it.
FEATURE_BAG_TYPE = "http://schemas.microsoft.com/office/2022/11/relationships/FeaturePropertyBag"
FEATURE_BAG_CONTENT = "application/vnd.ms-excel.featurepropertybag+xml"
FEATURE_BAG_PART = "xl/featurePropertyBag/featurePropertyBag.xml"
FEATURE_BAG_XML = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<FeaturePropertyBags xmlns="http://schemas.microsoft.com/office/spreadsheetml/2022/featurepropertybag">'
    b'<bag type="Checkbox"/><bag type="XFControls"><bagId k="CellControl">0</bagId></bag>'
    b'<bag type="XFComplement"><bagId k="XFControls">1</bagId></bag>'
    b'<bag type="XFComplements" extRef="XFComplementsMapperExtRef"><a k="MappedFeaturePropertyBags">'
    b"<bagId>2</bagId></a></bag></FeaturePropertyBags>")
# The most any part loop reads (a tab, the shared strings, the styles, …) may unpack to, by the zip's directory.
# A 50,000-draft Drafts tab is about 80 MB; Excel's own limits (1,048,576 rows, 32,767 characters a
# cell) are met long before this by any tab a person can open.
MAX_PART_BYTES = 512 * 2**20


class WriteRefused(ValueError):
    """A part written anew would not parse: the file is not written."""


class PartTooLarge(PackageError):
    """A part unpacks to more than MAX_PART_BYTES (the message says which and how much)."""

    def __init__(self, name: str, size: int):
        self.name, self.size = name, size
        super().__init__(f"{name} unpacks to {size / 2**20:,.0f} MB, more than the {MAX_PART_BYTES // 2**20} MB "
                         "loop reads from one part")


@dataclass
class Package:
    """The parts of an .xlsx file (a path or a binary file): read from the original, written to a
    new file with `save`."""

    source: object
    changed: dict[str, bytes] = field(default_factory=dict)
    added: dict[str, bytes] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    checks: dict[str, tuple[bytes, bytes | None]] = field(default_factory=dict)  # see put

    def __post_init__(self):
        self._zip = zipfile.ZipFile(self.source)
        self._sound: set[str] = set()  # parts whose CRC-32 matched as they were unpacked (read, check_crcs)
        self._names = self._zip.namelist()
        self._folded = {}
        for name in self._names:
            self._folded.setdefault(name.casefold(), name)
        self.workbook_part = self._main_part()
        self._relations = self._relationships()
        self._strings: SharedStrings | None = None
        self._styles: Styles | None = None

    def close(self) -> None:
        self._zip.close()

    def signature(self) -> tuple | None:
        """What tells the file opened from any other version of it (its inode, size and modification
        time, of the very file read); None for a package that is not a file."""
        try:
            found = os.fstat(self._zip.fp.fileno())
        except (AttributeError, OSError, ValueError):
            return None
        return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns

    def open(self, name: str):
        return self._zip.open(name)

    def put(self, name: str, data: bytes, check: bytes | None = None) -> None:
        """Replace the content of a part, existing or added by this write. `check`: the XML that must
        parse for the part to be written, when only some of it is new (see SheetPart.render)."""
        (self.added if name in self.added else self.changed)[name] = data
        self.checks[name] = (data, check)

    def read(self, name: str) -> bytes:
        if name in self.changed:
            return self.changed[name]
        if name in self.added:
            return self.added[name]
        info = self._zip.getinfo(name)
        self.check_size(name)
        if info.compress_type != zipfile.ZIP_DEFLATED:
            return self._zip.read(name)
        try:  # one call, faster than zipfile's reads, and never past the size the directory gives
            inflater = zlib.decompressobj(-15)
            data = inflater.decompress(_raw_bytes(self._zip.fp, info), info.file_size + 1)
        except zlib.error as error:
            raise zipfile.BadZipFile(f"{name}: {error}") from None
        if zlib.crc32(data) != info.CRC or len(data) != info.file_size:
            raise zipfile.BadZipFile(f"Bad CRC-32 for file {name!r}")
        self._sound.add(name)
        return data

    def check_crcs(self) -> None:
        """Raise BadZipFile unless every part not unpacked yet inflates to the size and CRC-32 the zip's
        directory gives (streamed, a megabyte at a time): `save` copies a part's compressed bytes as
        they are, which would pass a damaged one on. A part checked here is not checked again by `save`."""
        for info in self._zip.infolist():
            if info.filename not in self._sound:
                _check_crc(self._zip, info, _raw_bytes(self._zip.fp, info))
                self._sound.add(info.filename)

    def trust_crcs(self) -> None:
        """Take every part as sound: `check_crcs` passed on this very file (same inode, size and time)."""
        self._sound.update(self._names)

    def check_size(self, name: str) -> None:
        """Raise PartTooLarge, before anything is unpacked, if part `name` unpacks to more than MAX_PART_BYTES."""
        if name in self.changed or name in self.added:
            return
        size = self._zip.getinfo(name).file_size
        if size > MAX_PART_BYTES:
            raise PartTooLarge(name, size)

    def exists(self, name: str | None) -> bool:
        return bool(name) and (name in self._folded.values() or name in self.added)

    def info(self, name: str) -> zipfile.ZipInfo:
        return self._zip.getinfo(name)

    def _main_part(self) -> str:
        types = self.read("[Content_Types].xml")
        for match in re.finditer(rb"<(?:\w+:)?Override\b[^>]*>", types):
            attributes = attributes_of(match.group(0))
            if attributes.get("ContentType", "").endswith((".sheet.main+xml", ".template.main+xml")):
                name = attributes["PartName"].lstrip("/")
                return self._folded.get(name.casefold(), name)
        if "xl/workbook.xml" in self._names:
            return "xl/workbook.xml"
        raise PackageError("it has no workbook part")

    def _rels_name(self) -> str:
        part = PurePosixPath(self.workbook_part)
        name = str(part.parent / "_rels" / (part.name + ".rels"))
        return self._folded.get(name.casefold(), name)

    def _relationships(self) -> list[dict[str, str]]:
        xml = self.read(self._rels_name())
        found = []
        for match in re.finditer(rb"<(?:\w+:)?Relationship\b[^>]*>", xml):
            attributes = attributes_of(match.group(0))
            target = attributes.get("Target", "")
            if attributes.get("TargetMode") != "External":
                attributes["part"] = self._resolve(self.workbook_part, target)
            found.append(attributes)
        return found

    def _resolve(self, source: str, target: str) -> str:
        """The part a relationship of part `source` names by `target`: the zip's own spelling of it
        when the package has it (names match whatever their case, percent-escapes decoded)."""
        name = part_name(source, target)
        if name in self.added or name in self._names:
            return name
        for candidate in (name, unquote(name)):
            if candidate.casefold() in self._folded:
                return self._folded[candidate.casefold()]
        return name

    def sheets(self) -> list[tuple[str, str]]:
        """(title, part name) of every worksheet, in tab order."""
        xml = self.read(self.workbook_part)
        root = re.search(rb"<(?:(\w+):)?workbook\b[^>]*>", xml)
        prefix = (root.group(1) or b"").decode() if root else ""
        namespace = _declared(root.group(0)).get(prefix) if root else None
        if namespace != MAIN_NS:  # Strict Open XML: purl.oclc.org namespaces and relationship types throughout
            raise PackageError("it is saved as Strict Open XML; save it as an ordinary Excel Workbook (.xlsx)"
                               if namespace == STRICT_MAIN_NS else "its workbook part is not SpreadsheetML")
        by_id = {r.get("Id"): r.get("part") for r in self._relationships()}
        result = []
        for match in re.finditer(rb"<(?:\w+:)?sheet\b[^>]*>", xml):
            attributes = attributes_of(match.group(0))
            rid = next((v for k, v in attributes.items() if k.endswith(":id")), None)
            if attributes.get("name") and by_id.get(rid):
                result.append((attributes["name"], by_id[rid]))
        return result

    def related(self, part: str, kind: str) -> list[str]:
        """The parts that `part` refers to through its relationships of type `kind` ("table", "drawing")."""
        rels = str(PurePosixPath(part).parent / "_rels" / (PurePosixPath(part).name + ".rels"))
        if rels not in self._names and rels not in self.added:
            return []
        found = []
        for match in re.finditer(rb"<(?:\w+:)?Relationship\b[^>]*>", self.read(rels)):
            relation = attributes_of(match.group(0))
            if relation.get("TargetMode") != "External" and relation.get("Type", "").endswith("/" + kind):
                found.append(self._resolve(part, relation.get("Target", "")))
        return found

    def formula_naming(self, title: str) -> str | None:
        """Where a formula outside tab `title`'s own part, or a defined name, refers to that tab: "the X
        tab", "the defined name N", "a chart"; None when nothing does."""
        own = dict(self.sheets()).get(title)
        tabs = {part: name for name, part in self.sheets()}
        charts = [n for n in self._names if n.startswith("xl/charts/") and n.endswith(".xml")]
        for name in [self.workbook_part, *tabs, *charts]:
            found = None if name == own else formula_naming(self.read(name), title)
            if found:
                return found if name == self.workbook_part else f"the {tabs[name]} tab" if name in tabs else "a chart"
        return None

    def strings(self) -> SharedStrings:
        if self._strings is None:
            part = next((r["part"] for r in self._relations if r.get("Type") == SHARED_STRINGS_TYPE), None)
            if part and part in self._names:
                self.check_size(part)
            self._strings = SharedStrings(self._zip.open(part) if part and part in self._names else None)
        return self._strings

    def strings_part(self) -> str | None:
        """The shared-strings part's name, when the package has one."""
        part = next((r["part"] for r in self._relations if r.get("Type") == SHARED_STRINGS_TYPE), None)
        return part if part and part in self._names else None

    def sheet(self, title: str) -> SheetPart:
        """The tab's worksheet part, ready for cell writes."""
        part = dict(self.sheets())[title]
        return SheetPart(self.read(part), self.strings(), self.style)

    def add_tab(self, tab: NewTab, index: int | None = None) -> str:
        """A new tab made from `tab`, with the cell formats it needs; returns its part name. Its checkbox
        column gets Excel 365's in-cell checkbox where the workbook can carry one (`checkbox_style`)."""
        columns = [tab.headers.index(name) for name in tab.checkboxes()]
        checkbox = self.checkbox_style() if any(
            isinstance(row[column], bool) for row in tab.rows for column in columns if len(row) > column) else None
        return self.add_sheet(tab.title, new_sheet_xml(tab, self.style, self.default_font(), checkbox), index)

    def checkbox_style(self) -> int | None:
        """The cell format of Excel 365's in-cell checkbox (a boolean cell whose format points at the
        checkbox feature in the workbook's feature property bag part), added with the part when the
        workbook has none; None when the workbook already has a bag part of another shape, which is
        left alone (the cells are plain TRUE/FALSE then). The cells still hold TRUE/FALSE, shown as such
        wherever the checkbox is not known."""
        if not self.styles_part():
            return None  # no cell formats to carry it
        bag = next((r for r in self._relations if r.get("Type") == FEATURE_BAG_TYPE), None)
        if bag is not None and self.read(bag["part"]).strip() != FEATURE_BAG_XML.strip():
            return None
        if bag is None:
            names = {n.casefold() for n in self._names} | {n.casefold() for n in self.added}
            if FEATURE_BAG_PART.casefold() in names:
                return None
            self.added[FEATURE_BAG_PART] = FEATURE_BAG_XML
            rels_name = self._rels_name()
            ids = {r.get("Id") for r in self._relationships()}
            rid = next(f"rId{n}" for n in range(len(ids) + 1, len(ids) + 10_000) if f"rId{n}" not in ids)
            relationship = f'<Relationship Id="{rid}" Type="{FEATURE_BAG_TYPE}" Target="/{FEATURE_BAG_PART}"/>'
            self.changed[rels_name] = _insert_before_close(self.read(rels_name), b"Relationships", relationship.encode())
            override = f'<Override PartName="/{FEATURE_BAG_PART}" ContentType="{FEATURE_BAG_CONTENT}"/>'
            self.changed["[Content_Types].xml"] = _insert_before_close(
                self.read("[Content_Types].xml"), b"Types", override.encode())
            self._relations = self._relationships()
        return self.style(checkbox=True, number_format=BOOLEAN_FORMAT, top=True)

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
        # r:id's prefix as bound where the <sheet> goes (by the root or <sheets>); a producer that
        # declared it on each <sheet> instead leaves it unbound there, so the new one declares its own.
        prefix = _prefix_bound(workbook, REL_NS, b"workbook", b"sheets")
        rel_attr = f'{prefix}:id="{rid}"' if prefix else f'xmlns:r="{REL_NS}" r:id="{rid}"'
        sheet_ids = [int(a.get("sheetId", 0)) for a in
                     (attributes_of(m.group(0)) for m in re.finditer(rb"<(?:\w+:)?sheet\b[^>]*>", workbook))]
        element = (f"<sheet name={quoteattr(title)} "
                   f'sheetId="{max(sheet_ids, default=0) + 1}" {rel_attr}/>').encode("utf-8")
        existing = list(re.finditer(rb"<(?:\w+:)?sheet\b[^>]*>", workbook))
        if index is not None and index < len(existing):
            if b"localSheetId" in workbook:  # defined names count tabs by position
                raise PackageError("a tab can only be added after the others in a workbook with local names")
            at = existing[index].start()
            element = _prefixed(element, _prefix_of(workbook, b"sheets").encode())
            self.changed[self.workbook_part] = workbook[:at] + element + workbook[at:]
        else:
            self.changed[self.workbook_part] = _insert_before_close(workbook, b"sheets", element)
        types = self.read("[Content_Types].xml")
        override = f'<Override PartName="/{part}" ContentType="{WORKSHEET_CONTENT}"/>'
        self.changed["[Content_Types].xml"] = _insert_before_close(types, b"Types", override.encode())
        self._relations = self._relationships()
        return part

    def put_tab(self, title: str, sheet_xml: bytes, drawing_xml: bytes | None = None,
                chart_xml: bytes | None = None) -> str:
        """Write a tab whole (the Dashboard): its part replaced, or added after the others, with a chart
        (drawing and chart parts) when given. A chart the tab had before is removed with its parts."""
        parts = dict(self.sheets())
        if title in parts and not self._is_worksheet(parts[title]):
            raise PackageError(f"its tab {title!r} is not a worksheet (a chartsheet or dialog sheet loop did not "
                               "write); rename that tab and run again")
        part = parts[title] if title in parts else self.add_sheet(title, b"")
        sheet_rels = str(PurePosixPath(part).parent / "_rels" / (PurePosixPath(part).name + ".rels"))
        if sheet_rels in self._names or sheet_rels in self.added:
            self._remove_drawings(sheet_rels)
        if drawing_xml and chart_xml:
            taken = (set(self._names) - self.removed) | set(self.added)  # a refresh reuses the names it freed
            number = next(n for n in range(1, 10_000) if f"xl/drawings/drawing{n}.xml" not in taken
                          and f"xl/charts/chart{n}.xml" not in taken)
            drawing, chart = f"xl/drawings/drawing{number}.xml", f"xl/charts/chart{number}.xml"
            self.added[drawing], self.added[chart] = drawing_xml, chart_xml
            self.added[f"xl/drawings/_rels/drawing{number}.xml.rels"] = _relationships_xml(
                [("rId1", REL_NS + "/chart", "/" + chart)])
            self.added[sheet_rels] = _relationships_xml([("rId1", REL_NS + "/drawing", "/" + drawing)])
            types = self.read("[Content_Types].xml")
            overrides = (f'<Override PartName="/{drawing}" ContentType="{DRAWING_CONTENT}"/>'
                         f'<Override PartName="/{chart}" ContentType="{CHART_CONTENT}"/>')
            self.changed["[Content_Types].xml"] = _insert_before_close(types, b"Types", overrides.encode())
        self.put(part, sheet_xml)
        return part

    def _remove_drawings(self, sheet_rels: str) -> None:
        """Drop a sheet's relationships part and the drawings and charts it leads to."""
        doomed = {sheet_rels}
        queue = [(sheet_rels, PurePosixPath(sheet_rels).parent.parent)]
        while queue:
            rels, base = queue.pop()
            for found in re.finditer(rb"<(?:\w+:)?Relationship\b[^>]*>", self.read(rels)):
                relation = attributes_of(found.group(0))
                if relation.get("TargetMode") == "External" or not relation.get("Type", "").endswith(("/drawing", "/chart")):
                    continue
                target = relation["Target"]
                name = target.lstrip("/") if target.startswith("/") else _normal(base / target)
                doomed.add(name)
                child = str(PurePosixPath(name).parent / "_rels" / (PurePosixPath(name).name + ".rels"))
                if child in self._names or child in self.added:
                    doomed.add(child)
                    queue.append((child, PurePosixPath(name).parent))
        for name in doomed:
            self.added.pop(name, None)
            self.changed.pop(name, None)
            if name in self._names:
                self.removed.add(name)
        types = self.read("[Content_Types].xml")
        for name in doomed:
            types = re.sub(rb'<(?:\w+:)?Override\b[^>]*PartName="/' + re.escape(name.encode()) + rb'"[^>]*/>', b"", types)
        self.changed["[Content_Types].xml"] = types

    def styles_part(self) -> str | None:
        """The styles part's name, when the package has one."""
        part = next((r["part"] for r in self._relations if r.get("Type") == STYLES_TYPE), None)
        return part if part and part in self._names else None

    def default_font(self) -> tuple[str, str] | None:
        part = self.styles_part()
        return Styles(self.read(part)).default_font() if part else None

    def style(self, **look) -> int | None:
        """The index of a cell format (bold=, color=, wrap=, number_format=, top=, fill=, align=,
        italic=, checkbox=), added to the styles part if it lacks it; None without one."""
        part = self.styles_part()
        if not part:
            return None
        xml = self.read(part)
        if self._styles is None or self._styles.xml != xml:  # one Styles while the part is as it left it
            self._styles = Styles(xml)
        index = self._styles.format(**look)
        if self._styles.xml != xml:
            self.changed[part] = self._styles.xml
        return index

    def _is_worksheet(self, part: str) -> bool:
        """Whether `part` is a worksheet, by the workbook's relationship to it and its content type."""
        relation = next((r for r in self._relations if r.get("part") == part), {})
        types = self.read("[Content_Types].xml")
        declared = re.search(rb'<(?:\w+:)?Override\b[^>]*PartName="/' + re.escape(part.encode()) + rb'"[^>]*>', types)
        content = attributes_of(declared.group(0)).get("ContentType", "") if declared else WORKSHEET_CONTENT
        return relation.get("Type", WORKSHEET_TYPE) == WORKSHEET_TYPE and content == WORKSHEET_CONTENT

    def _check(self, name: str, data: bytes) -> bytes | None:
        """What of part `name` must parse: what `put` was told, while the part is still what it was given."""
        given, check = self.checks.get(name, (None, None))
        return check if given is data else None

    def save(self, target) -> dict[str, tuple[int, int]]:
        """Write the package to `target`: unchanged parts as their original compressed bytes (each
        inflated first, unless already checked, to match its CRC-32: a damaged part is refused, never
        passed on), the others checked to parse as XML first. Returns each rewritten part's (CRC, size)."""
        written = {}
        with zipfile.ZipFile(target, "w") as out:
            for info in self._zip.infolist():
                if info.filename in self.removed:
                    continue
                if info.filename in self.changed:
                    written[info.filename] = _write(out, info.filename, self.changed[info.filename], info,
                                                    self._check(info.filename, self.changed[info.filename]))
                else:
                    _copy_raw(self._zip, info, out, check=info.filename not in self._sound)
            for name, data in self.added.items():
                written[name] = _write(out, name, data, check=self._check(name, data))
        return written


def _relationships_xml(relations: list[tuple[str, str, str]]) -> bytes:
    items = "".join(f'<Relationship Id="{rid}" Type="{kind}" Target="{target}"/>' for rid, kind, target in relations)
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{items}</Relationships>'
            ).encode("utf-8")


def part_name(source: str, target: str) -> str:
    """The part a relationship of part `source` (a zip name) targets, as the Open Packaging Conventions
    resolve it: a leading `/` is the package's root, anything else is relative to `source`'s folder;
    `.` and `..` are taken out, and `..` never climbs above the root (as in a URL)."""
    target = target.split("#", 1)[0].replace("\\", "/")
    base = PurePosixPath("/") if target.startswith("/") else PurePosixPath("/", source).parent
    return _normal(base / target.lstrip("/"))


def _normal(path: PurePosixPath) -> str:
    """A zip path with `..` and `.` resolved."""
    parts: list[str] = []
    for piece in path.parts:
        if piece == "..":
            if parts:
                parts.pop()
        elif piece not in (".", "", "/"):
            parts.append(piece)
    return "/".join(parts)


def _prefix_of(xml: bytes, element: bytes) -> str:
    found = re.search(rb"<(\w+:)?" + element + rb"\b", xml)
    return (found.group(1) or b"").decode() if found else ""


def _prefix_bound(xml: bytes, namespace: str, *path: bytes) -> str | None:
    """The prefix bound to `namespace` inside the first element of each name in `path` (the root, then
    the elements down to where something goes): declarations on the inner ones win; None when no
    start tag among them binds it (it may be bound on siblings only, out of scope there)."""
    bound: dict[str, str] = {}
    for name in path:
        tag = re.search(rb"<(?:\w+:)?" + name + rb"\b[^>]*>", xml)
        if tag:
            bound.update(_declared(tag.group(0)))
    return next((prefix for prefix, uri in reversed(bound.items()) if prefix and uri == namespace), None)


def _declared(start_tag: bytes) -> dict[str, str]:
    """The namespaces a start tag declares, by prefix ("" for the default namespace)."""
    return {prefix.decode(): uri.decode() for prefix, uri in _DECLARATION.findall(start_tag)}


_DECLARATION = re.compile(rb'\sxmlns(?::([\w.-]+))?\s*=\s*["\']([^"\']*)["\']')


def _prefixed(insert: bytes, prefix: bytes) -> bytes:
    """Elements written unprefixed, given the prefix of the element they go into (which is bound where
    they go, since that element uses it): `<Override/>` into `<ct:Types>` becomes `<ct:Override/>`."""
    return re.sub(rb"<(/?)(?=\w)", b"<\\1" + prefix, insert) if prefix else insert


def _insert_before_close(xml: bytes, element: bytes, insert: bytes) -> bytes:
    """`insert` (unprefixed elements) added as the last children of `element`, in its namespace prefix."""
    closing = re.search(rb"</((?:\w+:)?)" + element + rb"\s*>", xml)
    if closing:
        return xml[:closing.start()] + _prefixed(insert, closing.group(1)) + xml[closing.start():]
    empty = re.search(rb"<(((?:\w+:)?)" + element + rb")\b([^>]*?)/>", xml)
    if not empty:
        raise PackageError(f"it has no {element.decode()} element")
    name = empty.group(1)
    return (xml[:empty.start()] + b"<" + name + empty.group(3) + b">" + _prefixed(insert, empty.group(2))
            + b"</" + name + b">" + xml[empty.end():])


def _write(out: zipfile.ZipFile, name: str, data: bytes, like: zipfile.ZipInfo | None = None,
           check: bytes | None = None) -> tuple[int, int]:
    """Add a part written anew, after checking that it parses (or that `check`, what of it is new,
    does); returns its (CRC, size)."""
    if name.endswith((".xml", ".rels")):
        try:
            expat.ParserCreate().Parse(data if check is None else check, True)
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


CRC_CHUNK = 1 << 20  # what of a part is inflated at once to check its CRC-32


def _check_crc(archive: zipfile.ZipFile, info: zipfile.ZipInfo, compressed: bytes) -> None:
    """Raise BadZipFile unless the member inflates to its directory's size and CRC-32, a chunk at a
    time (never more than the size the directory gives, so a bomb costs no memory)."""
    if info.compress_type == zipfile.ZIP_STORED:
        crc, size = zlib.crc32(compressed), len(compressed)
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        inflater, crc, size, pending = zlib.decompressobj(-15), 0, 0, compressed
        try:
            while True:
                chunk = inflater.decompress(pending, CRC_CHUNK)
                pending = inflater.unconsumed_tail
                crc, size = zlib.crc32(chunk, crc), size + len(chunk)
                if size > info.file_size or (not pending and len(chunk) < CRC_CHUNK):
                    break
        except zlib.error as error:
            raise zipfile.BadZipFile(f"{info.filename}: {error}") from None
    else:  # another method: zipfile's own reader checks the CRC as it reaches the end
        with archive.open(info) as stream:
            while stream.read(CRC_CHUNK):
                pass
        return
    if crc != info.CRC or size != info.file_size:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.filename!r}")


def _copy_raw(archive: zipfile.ZipFile, info: zipfile.ZipInfo, out: zipfile.ZipFile, check: bool = True) -> None:
    """Copy one member's compressed bytes as they are (`check`: once they inflate to its CRC-32)."""
    data = _raw_bytes(archive.fp, info)
    if check:
        _check_crc(archive, info, data)
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


