"""The id loop keeps in a local workbook itself, so a store knows its own workbook from another one
at the same path (another project's `loop.db` moved beside it).

It is a custom document property, `loop.workbook`, in `docProps/custom.xml` (File › Properties ›
Custom in Excel; Excel, LibreOffice and openpyxl keep it when they save). The store records it on its
first delivery: a workbook that carries another id is refused, one without an id gets the store's.
A copy of a workbook carries the same id; it is still another workbook to the store, which tells
workbooks by path first (`loop.store.identity_of`).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from xml.sax.saxutils import escape, quoteattr

from loop.sheets.ooxml import attributes_of

PROPERTY = "loop.workbook"
CUSTOM_TYPE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/custom-properties"
CUSTOM_CONTENT = "application/vnd.openxmlformats-officedocument.custom-properties+xml"
CUSTOM_NS = "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"
VT_NS = "http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"
PACKAGE_RELS_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
# The property set every custom document property belongs to (ECMA-376 part 1, 22.3.2.2).
FMTID = "{D5CDD505-2E9C-101B-9397-08002B2CF9AE}"
ROOT_RELS = "_rels/.rels"
TYPES = "[Content_Types].xml"
PART = "docProps/custom.xml"


def read_workbook_id(package) -> str | None:
    """The workbook's `loop.workbook` id, or None when it has none."""
    part = _custom_part(package)
    if part is None:
        return None
    try:
        root = ElementTree.fromstring(package.read(part))
    except (ElementTree.ParseError, KeyError, ValueError):
        return None
    for item in root:
        if item.tag == f"{{{CUSTOM_NS}}}property" and item.get("name") == PROPERTY:
            text = "".join(child.text or "" for child in item).strip()
            return text or None
    return None


def set_workbook_id(package, value: str) -> None:
    """Give the workbook the id `value`, adding the custom properties part if it has none. Each
    element written declares the namespace it is in where the part's own prefixes may not reach."""
    part = _custom_part(package)
    if part is None:
        _add_custom_part(package, value)
        return
    xml = package.read(part)
    pids = [int(p) for p in re.findall(rb'\bpid="(\d+)"', xml)]
    prefix = _root_prefix(xml, b"Properties")
    element = (f'<{prefix}property fmtid="{FMTID}" pid="{max(pids, default=1) + 1}" name={quoteattr(PROPERTY)}>'
               f'<vt:lpwstr xmlns:vt="{VT_NS}">{escape(value)}</vt:lpwstr></{prefix}property>').encode()
    package.put(part, _before_close(xml, b"Properties", element))


def _custom_part(package) -> str | None:
    if not package.exists(ROOT_RELS):
        return None
    for match in re.finditer(rb"<(?:\w+:)?Relationship\b[^>]*>", package.read(ROOT_RELS)):
        relation = attributes_of(match.group(0))
        if relation.get("Type") == CUSTOM_TYPE and relation.get("TargetMode") != "External":
            name = relation.get("Target", "").lstrip("/")
            return name if package.exists(name) else None
    return None


def _add_custom_part(package, value: str) -> None:
    package.added[PART] = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<Properties xmlns="{CUSTOM_NS}" xmlns:vt="{VT_NS}">'
        f'<property fmtid="{FMTID}" pid="2" name={quoteattr(PROPERTY)}><vt:lpwstr>{escape(value)}</vt:lpwstr>'
        "</property></Properties>").encode()
    rels = package.read(ROOT_RELS)
    ids = {attributes_of(m.group(0)).get("Id") for m in re.finditer(rb"<(?:\w+:)?Relationship\b[^>]*>", rels)}
    rid = next(f"rId{n}" for n in range(len(ids) + 1, len(ids) + 10_000) if f"rId{n}" not in ids)
    prefix = _root_prefix(rels, b"Relationships")
    relationship = f'<{prefix}Relationship Id="{rid}" Type="{CUSTOM_TYPE}" Target="{PART}"/>'
    package.put(ROOT_RELS, _before_close(rels, b"Relationships", relationship.encode()))
    types = package.read(TYPES)
    override = f'<{_root_prefix(types, b"Types")}Override PartName="/{PART}" ContentType="{CUSTOM_CONTENT}"/>'
    package.put(TYPES, _before_close(types, b"Types", override.encode()))


def _root_prefix(xml: bytes, element: bytes) -> str:
    """The prefix (with its colon) the root element `element` is written with, "" for none: the root
    declares it, so a child written with it is in the root's namespace."""
    found = re.search(rb"<(\w+:)?" + element + rb"[\s/>]", xml)
    return (found.group(1) or b"").decode() if found else ""


def _before_close(xml: bytes, element: bytes, insert: bytes) -> bytes:
    closing = list(re.finditer(rb"</(?:\w+:)?" + element + rb"\s*>", xml))
    if closing:
        at = closing[-1].start()
        return xml[:at] + insert + xml[at:]
    empty = re.search(rb"<((?:\w+:)?" + element + rb")\b([^>]*?)/>", xml)
    if not empty:
        raise ValueError(f"it has no {element.decode()} element")
    name = empty.group(1)
    return xml[:empty.start()] + b"<" + name + empty.group(2) + b">" + insert + b"</" + name + b">" + xml[empty.end():]
