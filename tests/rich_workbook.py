"""A workbook holding what a real team's workbook holds and openpyxl cannot keep: a chart, an
image, a pivot table, an x14 (extension) data validation, a defined name, a custom XML part and
cell styles. Built with openpyxl, then given the parts openpyxl cannot make, as Excel writes them."""

from __future__ import annotations

import base64
import re
import zipfile
from pathlib import Path

import openpyxl
from openpyxl.styles import Font, PatternFill
from openpyxl.workbook.defined_name import DefinedName

from tests.conftest import add_chart, write_workbook

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==")

PIVOT_CACHE = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<pivotCacheDefinition xmlns="{MAIN}" xmlns:r="{REL}" r:id="rId1" refreshOnLoad="1" createdVersion="6" refreshedVersion="6" minRefreshableVersion="3" recordCount="2"><cacheSource type="worksheet"><worksheetSource ref="A1:B3" sheet="Stats"/></cacheSource><cacheFields count="2"><cacheField name="week" numFmtId="0"><sharedItems count="2"><s v="w1"/><s v="w2"/></sharedItems></cacheField><cacheField name="failures" numFmtId="0"><sharedItems containsSemiMixedTypes="0" containsString="0" containsNumber="1" containsInteger="1" minValue="3" maxValue="5"/></cacheField></cacheFields></pivotCacheDefinition>"""
PIVOT_RECORDS = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<pivotCacheRecords xmlns="{MAIN}" xmlns:r="{REL}" count="2"><r><x v="0"/><n v="3"/></r><r><x v="1"/><n v="5"/></r></pivotCacheRecords>"""
PIVOT_TABLE = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<pivotTableDefinition xmlns="{MAIN}" name="Failures by week" cacheId="1" applyNumberFormats="0" applyBorderFormats="0" applyFontFormats="0" applyPatternFormats="0" applyAlignmentFormats="0" applyWidthHeightFormats="1" dataCaption="Values" updatedVersion="6" minRefreshableVersion="3" useAutoFormatting="1" itemPrintTitles="1" createdVersion="6" indent="0" outline="1" outlineData="1"><location ref="F2:G5" firstHeaderRow="1" firstDataRow="1" firstDataCol="1"/><pivotFields count="2"><pivotField axis="axisRow" showAll="0"><items count="3"><item x="0"/><item x="1"/><item t="default"/></items></pivotField><pivotField dataField="1" showAll="0"/></pivotFields><rowFields count="1"><field x="0"/></rowFields><rowItems count="3"><i><x/></i><i><x v="1"/></i><i t="grand"><x/></i></rowItems><colItems count="1"><i/></colItems><dataFields count="1"><dataField name="Sum of failures" fld="1" baseField="0" baseItem="0"/></dataFields></pivotTableDefinition>"""
X14_VALIDATION = (
    '<extLst><ext uri="{CCE6A557-97BC-4b89-ADB6-D9C93CAAB3DF}" '
    'xmlns:x14="http://schemas.microsoft.com/office/spreadsheetml/2009/9/main">'
    '<x14:dataValidations count="1" xmlns:xm="http://schemas.microsoft.com/office/excel/2006/main">'
    '<x14:dataValidation type="list" allowBlank="1"><x14:formula1><xm:f>Stats!$A$2:$A$3</xm:f></x14:formula1>'
    '<xm:sqref>L2:L1000</xm:sqref></x14:dataValidation></x14:dataValidations></ext></extLst>')
PICTURE = (
    '<xdr:oneCellAnchor><xdr:from><xdr:col>8</xdr:col><xdr:colOff>0</xdr:colOff><xdr:row>1</xdr:row><xdr:rowOff>0</xdr:rowOff>'
    '</xdr:from><xdr:ext cx="952500" cy="952500"/><xdr:pic><xdr:nvPicPr><xdr:cNvPr id="99" name="Logo"/><xdr:cNvPicPr/>'
    '</xdr:nvPicPr><xdr:blipFill><a:blip xmlns:r="' + REL + '" r:embed="rIdLogo"/><a:stretch><a:fillRect/></a:stretch>'
    '</xdr:blipFill><xdr:spPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="952500" cy="952500"/></a:xfrm><a:prstGeom prst="rect">'
    '<a:avLst/></a:prstGeom></xdr:spPr></xdr:pic><xdr:clientData/></xdr:oneCellAnchor>')


def build(path: Path, rows: list[dict]) -> Path:
    write_workbook(path, rows)
    add_chart(path)
    book = openpyxl.load_workbook(path)
    header = book["Drafts"]
    for cell in header[1]:
        cell.font = Font(bold=True, color="FFFFFF")
        cell.fill = PatternFill("solid", fgColor="305496")
    header.freeze_panes = "A2"
    header.auto_filter.ref = f"A1:N{header.max_row}"
    book.defined_names["Weeks"] = DefinedName("Weeks", attr_text="Stats!$A$2:$A$3")
    book.save(path)
    _add_parts(path)
    return path


def _add_parts(path: Path) -> None:
    with zipfile.ZipFile(path) as source:
        parts = {name: source.read(name) for name in source.namelist()}
    text = {name: data.decode("utf-8") for name, data in parts.items() if name.endswith((".xml", ".rels"))}
    drafts, stats = _sheet_part(text, "Drafts"), _sheet_part(text, "Stats")
    text[drafts] = text[drafts].replace("</worksheet>", X14_VALIDATION + "</worksheet>")
    drawing = next(n for n in text if re.fullmatch(r"xl/drawings/drawing\d+\.xml", n))
    text[drawing] = text[drawing].replace("</xdr:wsDr>", PICTURE + "</xdr:wsDr>")
    if 'xmlns:a="' not in text[drawing]:
        text[drawing] = text[drawing].replace("<xdr:wsDr ", '<xdr:wsDr xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" ', 1)
    drawing_rels = drawing.replace("drawings/", "drawings/_rels/") + ".rels"
    text[drawing_rels] = text[drawing_rels].replace("</Relationships>", (
        f'<Relationship Id="rIdLogo" Type="{REL}/image" Target="/xl/media/logo.png"/></Relationships>'))
    parts["xl/media/logo.png"] = PNG
    stats_rels = stats.replace("worksheets/", "worksheets/_rels/") + ".rels"
    text[stats_rels] = text[stats_rels].replace("</Relationships>", (
        f'<Relationship Id="rIdPivot" Type="{REL}/pivotTable" Target="/xl/pivotTables/pivotTable1.xml"/></Relationships>'))
    text["xl/pivotTables/pivotTable1.xml"] = PIVOT_TABLE
    text["xl/pivotTables/_rels/pivotTable1.xml.rels"] = _rels(f"{REL}/pivotCacheDefinition", "/xl/pivotCache/pivotCacheDefinition1.xml")
    text["xl/pivotCache/pivotCacheDefinition1.xml"] = PIVOT_CACHE
    text["xl/pivotCache/_rels/pivotCacheDefinition1.xml.rels"] = _rels(f"{REL}/pivotCacheRecords", "/xl/pivotCache/pivotCacheRecords1.xml")
    text["xl/pivotCache/pivotCacheRecords1.xml"] = PIVOT_RECORDS
    text["customXml/item1.xml"] = '<?xml version="1.0" encoding="UTF-8"?><review xmlns="urn:example:review"><owner>support-ops</owner></review>'
    text["xl/_rels/workbook.xml.rels"] = text["xl/_rels/workbook.xml.rels"].replace("</Relationships>", (
        f'<Relationship Id="rIdCache" Type="{REL}/pivotCacheDefinition" Target="/xl/pivotCache/pivotCacheDefinition1.xml"/>'
        f'<Relationship Id="rIdCustom" Type="{REL}/customXml" Target="/customXml/item1.xml"/></Relationships>'))
    workbook = text["xl/workbook.xml"]
    workbook = re.sub(r"(<calcPr[^>]*/>)", r'\1<pivotCaches><pivotCache cacheId="1" r:id="rIdCache"/></pivotCaches>', workbook)
    text["xl/workbook.xml"] = workbook
    types = text["[Content_Types].xml"]
    overrides = "".join(f'<Override PartName="/{name}" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.{kind}+xml"/>'
                        for name, kind in (("xl/pivotTables/pivotTable1.xml", "pivotTable"),
                                           ("xl/pivotCache/pivotCacheDefinition1.xml", "pivotCacheDefinition"),
                                           ("xl/pivotCache/pivotCacheRecords1.xml", "pivotCacheRecords")))
    text["[Content_Types].xml"] = types.replace("</Types>", '<Default Extension="png" ContentType="image/png"/>'
                                                 + overrides + "</Types>")
    parts.update({name: data.encode("utf-8") for name, data in text.items()})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in parts.items():
            target.writestr(name, data)


def _sheet_part(text: dict[str, str], title: str) -> str:
    rid = re.search(rf'<sheet [^>]*name="{title}"[^>]*r:id="([^"]+)"', text["xl/workbook.xml"]).group(1)
    target = re.search(rf'<Relationship [^>]*Target="([^"]+)"[^>]*Id="{rid}"', text["xl/_rels/workbook.xml.rels"]).group(1)
    return target.lstrip("/") if target.startswith("/") else "xl/" + target


def _rels(kind: str, target: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{kind}" Target="{target}"/></Relationships>')
