"""Workbooks as other programs write them, and packages that are damaged or hostile.

Other producers write the same SpreadsheetML with other namespace schemes: every element prefixed
(`<x:workbook xmlns:x=…>`, as the .NET Open XML SDK does), the relationships namespace declared on
each `<sheet>` instead of the root (as some libraries and older tools do), a default namespace, only
the declarations a part uses, or Strict Open XML. `producer` rewrites every part of a real workbook
(openpyxl's, examples/loop.xlsx, sheets_template.xlsx) in such a scheme, without changing what it
says; after each loop command every part must parse with a namespace-aware parser, keep every element
in a namespace, and openpyxl and python-calamine must read what loop wrote.

Then: a part whose CRC-32 does not match, a styles part that unpacks to gigabytes, an Excel Table
with a totals row over Drafts, and `loop init` on a workbook that lacks loop's tabs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from xml.dom import minidom
from xml.parsers import expat
from xml.sax.saxutils import escape

import openpyxl
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from python_calamine import CalamineWorkbook

from loop import schema
from loop.cli import main
from loop.sheets import Append, CellUpdate, NewTab, WriteBatch
from loop.sheets.package import MAX_PART_BYTES
from loop.sheets.xlsx import XlsxWorkbook
from tests.conftest import draft, write_workbook
from tests.test_workbook_writer_safety import log, one_line

ROOT = Path(__file__).resolve().parent.parent
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
TYPES = "http://schemas.openxmlformats.org/package/2006/content-types"
MCE = "http://schemas.openxmlformats.org/markup-compatibility/2006"
XML_NS = "http://www.w3.org/XML/1998/namespace"
STRICT_MAIN = "http://purl.oclc.org/ooxml/spreadsheetml/main"
STRICT_REL = "http://purl.oclc.org/ooxml/officeDocument/relationships"
SEP = "\x01"


# --- a part as another producer writes it ---------------------------------------------------------------------


def _events(xml: bytes) -> tuple[bytes, list]:
    """The XML declaration and the part's events, names as (namespace, local name, original prefix)."""
    declaration = re.match(rb"<\?xml[^>]*\?>\s*", xml)
    parser = expat.ParserCreate(namespace_separator=SEP)
    parser.namespace_prefixes = True
    parser.ordered_attributes = True
    events, scopes = [], [{"xml": XML_NS}]

    def name(raw: str) -> tuple[str, str, str | None]:
        parts = raw.split(SEP)
        return (parts[0], parts[1], parts[2] if len(parts) > 2 else "") if len(parts) > 1 else ("", raw, None)

    declared: dict[str, str] = {}

    def start(tag, attributes):
        scope = dict(scopes[-1], **declared)
        declared.clear()
        scopes.append(scope)
        pairs = [(name(attributes[i]), attributes[i + 1]) for i in range(0, len(attributes), 2)]
        events.append(("start", name(tag), pairs, scope))

    def end(tag):
        scopes.pop()
        events.append(("end", name(tag)))

    parser.StartNamespaceDeclHandler = lambda prefix, uri: declared.__setitem__(prefix or "", uri or "")
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = lambda data: events.append(("text", data))
    parser.CommentHandler = lambda data: events.append(("raw", f"<!--{data}-->"))
    parser.ProcessingInstructionHandler = lambda target, data: events.append(("raw", f"<?{target} {data}?>"))
    parser.Parse(xml, True)
    return (declaration.group(0) if declaration else b""), events


def _attribute(value: str) -> str:
    return '"' + escape(value, {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}) + '"'


def producer(xml: bytes, prefixes: dict[str, str], on_children: bool) -> bytes:
    """The same part written with each namespace bound to `prefixes`' prefix for it ("" = the default
    namespace; others keep their own), declared on the root, or (`on_children`) on each element that
    uses it where it is not in scope yet. Markup-compatibility attributes (mc:Ignorable, Requires) name
    prefixes: they are renamed, and what they name is declared where they are."""
    head, events = _events(xml)
    if any(kind == "start" and not tag[0] for kind, tag, *_ in events):
        return xml  # a part with elements in no namespace (custom XML): left as its producer wrote it
    used: dict[str, str] = {}  # namespace -> its original prefix
    for event in events:
        if event[0] == "start":
            for uri, _, prefix in [event[1], *(a for a, _ in event[2])]:
                if uri and uri != XML_NS:
                    used.setdefault(uri, prefix or "")
            for (uri, local, _), value in event[2]:
                if _names_prefixes(uri, local):
                    for token in value.split():
                        used.setdefault(event[3].get(token, ""), token)
    used.pop("", None)

    def prefix_for(uri: str, attribute: bool) -> str:
        chosen = prefixes.get(uri, used.get(uri, ""))
        if attribute and not chosen:  # an attribute's namespace needs a prefix
            chosen = used.get(uri) or "ns" + str(sorted(used).index(uri))
        return chosen

    out, stack, opened = [head.decode("utf-8")], [{"xml": XML_NS}], False
    for event in events:
        if event[0] == "end" and opened:  # an element with nothing in it closes itself
            out[-1] = out[-1][:-1] + "/>"
            stack.pop()
            opened = False
            continue
        opened = event[0] == "start"
        if event[0] == "text":
            out.append(escape(event[1], {"\r": "&#13;"}))
        elif event[0] == "raw":
            out.append(event[1])
        elif event[0] == "end":
            uri, local, _ = event[1]
            stack.pop()
            out.append(f"</{_qualified(prefix_for(uri, False), local)}>")
        else:
            _, (uri, local, _), attributes, original = event
            scope = dict(stack[-1])
            needed = [(prefix_for(uri, False), uri)]
            rendered = []
            for (a_uri, a_local, _), value in attributes:
                if a_uri and a_uri != XML_NS:
                    needed.append((prefix_for(a_uri, True), a_uri))
                if _names_prefixes(a_uri, a_local):
                    names = [original.get(token, "") for token in value.split()]
                    needed += [(prefix_for(n, True), n) for n in names if n]
                    value = " ".join(prefix_for(n, True) for n in names if n)
                qualified = a_local if not a_uri else "xml:" + a_local if a_uri == XML_NS else (
                    f"{prefix_for(a_uri, True)}:{a_local}")
                rendered.append(f" {qualified}={_attribute(value)}")
            if len(stack) == 1 and not on_children:  # the root declares everything the part uses
                needed += [(prefix_for(u, False), u) for u in used] + [(prefix_for(u, True), u) for u in used]
            declarations = []
            for prefix, namespace in needed:
                if scope.get(prefix) != namespace:
                    scope[prefix] = namespace
                    declarations.append(f' xmlns{":" + prefix if prefix else ""}="{namespace}"')
            stack.append(scope)
            out.append(f"<{_qualified(prefix_for(uri, False), local)}{''.join(declarations)}{''.join(rendered)}>")
    return "".join(out).encode("utf-8")


def _names_prefixes(uri: str, local: str) -> bool:
    return (uri == MCE and local in ("Ignorable", "ProcessContent", "MustUnderstand")) or (not uri and local == "Requires")


def _qualified(prefix: str, local: str) -> str:
    return f"{prefix}:{local}" if prefix else local


def rewritten(source: Path, target: Path, prefixes: dict[str, str], on_children: bool) -> Path:
    """The workbook at `source`, every XML part rewritten as `producer` writes it."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for info in archive.infolist():
            data = archive.read(info)
            if info.filename.endswith((".xml", ".rels")):
                data = producer(data, prefixes, on_children)
            out.writestr(info.filename, data)
    return target


# The schemes: Excel's and openpyxl's (a default namespace, the rest on the root), the Open XML SDK's
# (every element prefixed), declarations on the elements that use them, and prefixes everywhere.
SCHEMES = {
    "default": ({}, False),
    "prefixed on the root": ({MAIN: "x"}, False),
    "declared on children": ({}, True),
    "prefixed on children": ({MAIN: "x", REL: "rel"}, True),
    "every part prefixed": ({MAIN: "x", REL: "o", PACKAGE_REL: "pr", TYPES: "ct"}, False),
}


# --- what every part loop writes must be ---------------------------------------------------------------------


def parts(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        return {name: archive.read(name) for name in archive.namelist()}


def namespaces(xml: bytes) -> set[str]:
    """Every element's namespace, by a namespace-aware parser ("" for an element in none)."""
    found = set()
    document = minidom.parseString(xml)  # expat with namespaces: an unbound prefix fails here
    for element in document.getElementsByTagName("*"):
        found.add(element.namespaceURI or "")
    return found


def assert_sound(path: Path, before: dict[str, bytes]) -> None:
    """Every XML part parses with namespaces, and no part gained an element in no namespace."""
    for name, data in parts(path).items():
        if name.endswith((".xml", ".rels")):
            had = namespaces(before[name]) if name in before else set()
            assert "" not in namespaces(data) - had, f"{name} has an element in no namespace"
    openpyxl.load_workbook(path)


def drafts_read(path: Path) -> dict[str, dict]:
    """trace_id -> the Drafts row, as python-calamine reads it; openpyxl must read the same."""
    rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_name(schema.DRAFTS).to_python()
    heads = [str(h) for h in rows[0]]
    seen = {str(r[heads.index("trace_id")]): dict(zip(heads, r)) for r in rows[1:] if r[heads.index("trace_id")]}
    sheet = openpyxl.load_workbook(path, data_only=True)[schema.DRAFTS]
    values = list(sheet.iter_rows(values_only=True))
    other = {str(r[heads.index("trace_id")]): r for r in values[1:] if r[heads.index("trace_id")]}
    assert set(other) == set(seen)
    for trace, row in seen.items():
        assert other[trace][heads.index("ticket")] == (row["ticket"] or None)
    return seen


def openpyxl_workbook(path: Path) -> Path:
    """openpyxl's own output: Drafts with reviewed rows under an Excel Table, styles, a merged note."""
    write_workbook(path, [draft(trace_id=f"t-{n}", score="👎" if n % 2 else "👍") for n in range(3)])
    book = openpyxl.load_workbook(path)
    sheet = book[schema.DRAFTS]
    last = openpyxl.utils.get_column_letter(len(schema.DRAFT_HEADERS))
    sheet.add_table(openpyxl.worksheet.table.Table(displayName="Reviews", ref=f"A1:{last}4"))
    notes = book.create_sheet("Notes")
    notes["A1"] = "kept as it is"
    notes.merge_cells("A3:C4")
    book.save(path)
    return path


def excel_workbook(path: Path) -> Path:
    """As Excel writes one (tests/hand_built.py): shared strings, mc:Ignorable, x14ac on every row."""
    from tests.hand_built import build
    from tests.test_workbook_writer_safety import drafts, reviewed

    return build(path, drafts({2: reviewed("t-a"), 3: reviewed("t-b", score="👍", comment="")}), "excel")


SOURCES = {
    "openpyxl": openpyxl_workbook,
    "Excel": excel_workbook,
    "examples/loop.xlsx": lambda path: Path(shutil.copy(ROOT / "examples" / "loop.xlsx", path)),
    "sheets_template.xlsx": lambda path: Path(shutil.copy(ROOT / "sheets_template.xlsx", path)),
}


def crafted(folder: Path, source: str, scheme: tuple[dict, bool]) -> Path:
    original = SOURCES[source](folder / "original.xlsx")
    path = rewritten(original, folder / "loop.xlsx", *scheme)
    for name, data in parts(path).items():  # the crafted package is itself sound, and says the same
        if name.endswith((".xml", ".rels")):
            namespaces(data)
    assert sorted(CalamineWorkbook.from_path(str(path)).sheet_names) == sorted(openpyxl.load_workbook(path).sheetnames)
    return path


def run_commands(path: Path, cli) -> None:
    """init, log, improve (its Edits tab with checkboxes, its Runs row, the patterns it writes into
    Drafts), apply's and a judge's updates and report, each checked as it lands."""
    before = parts(path)
    reviewed = sum(1 for row in CalamineWorkbook.from_path(str(path)).get_sheet_by_name(schema.DRAFTS).to_python()[1:]
                   if any(str(v).strip() for v in row))
    cli("init")
    assert_sound(path, before)
    assert {schema.DRAFTS, schema.RUNS} <= set(CalamineWorkbook.from_path(str(path)).sheet_names)
    first = log("a ticket from another producer").output.split()
    assert_sound(path, before)
    improved = CliRunner().invoke(main, ["improve", "--since", "2026-01-01", "--no-check"])
    assert improved.exit_code == 0 and ("Wrote tab" in improved.output or reviewed == 0), improved.output
    assert_sound(path, before)
    assert drafts_read(path)[first[0]]["ticket"] == "a ticket from another producer"
    workbook = XlsxWorkbook(path)
    edits = NewTab("Edits 2026-12-01 0900", ["approve", "edit_id", "find"], [[False, "e-1", "old & <new>"]],
                   checkbox_column="approve")
    runs = Append(schema.RUNS, schema.RUN_HEADERS, {"run_id": "r-1", "drafts": 3})
    workbook.write(WriteBatch(new_tabs=[edits], appends=[runs]))
    assert_sound(path, before)
    workbook.write(WriteBatch(updates=[CellUpdate("Edits 2026-12-01 0900", 2, "approve", True)]))
    assert_sound(path, before)
    second = log("ünïcode & <markup>", "third").output.split()
    assert_sound(path, before)
    rows = drafts_read(path)
    assert rows[second[0]]["ticket"] == "ünïcode & <markup>" and rows[second[1]]["ticket"] == "third"
    cli("report")
    assert_sound(path, before)
    book = openpyxl.load_workbook(path)
    assert book["Edits 2026-12-01 0900"]["A2"].value is True and book["Edits 2026-12-01 0900"]["C2"].value == "old & <new>"
    assert [r[0] for r in book[schema.RUNS].iter_rows(min_row=2, values_only=True)][-1] == "r-1"
    assert "Dashboard" in CalamineWorkbook.from_path(str(path)).sheet_names
    drafts_read(path)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_part_loop_writes_stays_namespace_correct_whatever_the_producers_scheme(workspace, cli, model, source,
                                                                                     scheme):
    path = crafted(workspace, source, SCHEMES[scheme])
    run_commands(path, cli)


def test_a_sheet_declaring_its_relationships_prefix_itself_gets_a_new_tab_that_declares_its_own(workspace):
    original = openpyxl_workbook(workspace / "original.xlsx")
    path = rewritten(original, workspace / "loop.xlsx", {}, True)
    assert b'<sheet xmlns:r="' in parts(path)["xl/workbook.xml"]  # the producer this is about
    XlsxWorkbook(path).write(WriteBatch(new_tabs=[NewTab(schema.RUNS + " 2", ["run_id"], [["r-1"]])]))
    workbook = parts(path)["xl/workbook.xml"]
    namespaces(workbook)
    assert openpyxl.load_workbook(path).sheetnames[-1] == schema.RUNS + " 2"


PREFIX = st.from_regex(r"[a-wyz][a-z0-9]{0,3}", fullmatch=True).filter(lambda p: not p.startswith("xml"))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(main=st.one_of(st.just(""), PREFIX), rel=PREFIX, package_rel=st.one_of(st.just(""), PREFIX),
       types=st.one_of(st.just(""), PREFIX), on_children=st.booleans(), source=st.sampled_from(sorted(SOURCES)))
def test_any_prefixes_declared_anywhere_give_parts_that_parse(tmp_path_factory, main, rel, package_rel, types,
                                                              on_children, source):
    folder = tmp_path_factory.mktemp("producer")
    scheme = ({MAIN: main, REL: rel, PACKAGE_REL: package_rel, TYPES: types}, on_children)
    if len({main, rel, package_rel, types} - {""}) < len([p for p in (main, rel, package_rel, types) if p]):
        return  # two namespaces on one prefix in one part would be a different document
    path = crafted(folder, source, scheme)
    before = parts(path)
    workbook = XlsxWorkbook(path)
    trace = f"t-{abs(hash((main, rel, source)))}"
    workbook.write(WriteBatch(
        new_tabs=[NewTab("Edits x", ["approve", "find"], [[False, "a"]], checkbox_column="approve")],
        appends=[Append(schema.DRAFTS, schema.DRAFT_HEADERS, {"trace_id": trace, "ticket": "new", "draft": "d"})]))
    assert_sound(path, before)
    assert drafts_read(path)[trace]["ticket"] == "new"


def strict(source: Path, target: Path) -> Path:
    """The workbook as Excel saves it in Strict Open XML: the purl.oclc.org namespaces and relationship types."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for info in archive.infolist():
            data = archive.read(info)
            if info.filename.endswith((".xml", ".rels")):
                data = data.replace(MAIN.encode(), STRICT_MAIN.encode()).replace(REL.encode(), STRICT_REL.encode())
            out.writestr(info.filename, data)
    return target


def test_strict_open_xml_is_refused_in_one_line_and_left_as_it_was(workspace):
    path = strict(openpyxl_workbook(workspace / "original.xlsx"), workspace / "loop.xlsx")
    before = path.read_bytes()
    one_line(log("a ticket", code=2), "loop.xlsx", "Strict Open XML", "save it as")
    with pytest.raises(Exception, match="Strict Open XML"):
        XlsxWorkbook(path).write(WriteBatch(new_tabs=[NewTab("Edits x", ["approve"], [[False]])]))
    assert path.read_bytes() == before and logged_tickets(workspace) == []


def logged_tickets(folder: Path) -> list[str]:
    import sqlite3

    if not (folder / "loop.db").exists():
        return []
    with sqlite3.connect(folder / "loop.db") as db:
        return [ticket for (ticket,) in db.execute("SELECT ticket FROM drafts ORDER BY seq")]


# --- a part whose CRC-32 does not match ----------------------------------------------------------------------


def damaged(path: Path, name: str, stored: bool) -> Path:
    """The workbook with part `name` damaged: a byte of it changed (stored, so it still unpacks) or its
    CRC-32 changed in the local header and the directory (deflated)."""
    with zipfile.ZipFile(path) as archive:
        contents = {info.filename: archive.read(info) for info in archive.infolist()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for member, data in contents.items():
            out.writestr(member, data, zipfile.ZIP_STORED if member == name and stored else zipfile.ZIP_DEFLATED)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    if stored:
        at = raw.index(contents[name][:40], info.header_offset) + 20
        raw[at] ^= 0x20  # a letter's case: the part still parses
    else:
        crc = info.CRC.to_bytes(4, "little")
        wrong = ((info.CRC + 1) % 2**32).to_bytes(4, "little")
        raw[info.header_offset + 14:info.header_offset + 18] = wrong
        central = raw.index(crc + info.compress_size.to_bytes(4, "little"), raw.index(b"PK\x01\x02"))
        raw[central:central + 4] = wrong
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("name, stored", [("xl/worksheets/sheet2.xml", True), ("docProps/app.xml", False),
                                          ("xl/theme/theme1.xml", True)])
def test_a_part_whose_crc_does_not_match_is_refused_by_every_write_and_before_log_commits(workspace, name, stored):
    path = damaged(openpyxl_workbook(workspace / "loop.xlsx"), name, stored)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() == name  # damaged as zip itself sees it
    before = path.read_bytes()
    one_line(log("a ticket", code=2), "loop.xlsx", "is damaged", name, "restore it from a backup")
    assert logged_tickets(workspace) == []
    writes = [WriteBatch(new_tabs=[NewTab("Edits x", ["approve", "find"], [[False, "a"]], checkbox_column="approve")]),
              WriteBatch(updates=[CellUpdate(schema.DRAFTS, 2, "comment", "changed")]),
              WriteBatch(appends=[Append(schema.RUNS, schema.RUN_HEADERS, {"run_id": "r-1"})])]
    for batch in writes:
        with pytest.raises(Exception, match="is damaged") as refused:
            XlsxWorkbook(path).write(batch)
        assert name in str(refused.value) and "\n" not in str(refused.value)
    assert path.read_bytes() == before


# --- a part that unpacks to far more than loop reads --------------------------------------------------------


def styles_bomb(path: Path, size: int) -> Path:
    """A small workbook whose styles part unpacks to `size` bytes: the same empty cell format again and again."""
    openpyxl_workbook(path)
    with zipfile.ZipFile(path) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    head, tail = contents.pop("xl/styles.xml").split(b"</cellXfs>")
    xf = b'<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
        with archive.open("xl/styles.xml", "w", force_zip64=True) as stream:
            stream.write(head)
            chunk, written = xf * (2**20 // len(xf)), len(head)
            while written < size:
                stream.write(chunk)
                written += len(chunk)
            stream.write(b"</cellXfs>" + tail)
    return path


def test_a_styles_part_that_unpacks_past_the_limit_is_refused_at_once_with_little_memory(workspace):
    path = styles_bomb(workspace / "loop.xlsx", MAX_PART_BYTES + 2**20)
    assert path.stat().st_size < 8 * 2**20
    before = path.read_bytes()
    probe = textwrap.dedent("""
        import resource, subprocess, sys
        done = subprocess.run(sys.argv[1:], capture_output=True, text=True, input="")
        print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # kilobytes
        print(done.stdout + done.stderr)
    """)
    for command in (["log", "--ticket", "t", "--draft", "d"], ["status"], ["init", "--sheet", "loop.xlsx"]):
        out = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "loop", *command],
                             capture_output=True, text=True, cwd=workspace, timeout=120).stdout
        code, peak = out.split("\n", 1)[0].split()
        errors = [line for line in out.splitlines()[1:] if line.startswith("error:")]
        assert int(code) == 2 and len(errors) == 1, out
        assert "xl/styles.xml unpacks to 51" in errors[0] and "too large" in errors[0], out
        assert int(peak) < 300 * 1024, out  # nothing of the part was unpacked
    assert path.read_bytes() == before and logged_tickets(workspace) == []


# --- loop init on a workbook that already exists -------------------------------------------------------------


def team_workbook(path: Path, drafts_headers: list[str] | None = None) -> Path:
    """A team's own workbook: two tabs of theirs (one with a chart), a defined name, a style; a
    Drafts tab with `drafts_headers` when given."""
    from openpyxl.chart import BarChart, Reference
    from openpyxl.styles import Font
    from openpyxl.workbook.defined_name import DefinedName

    book = openpyxl.Workbook()
    team = book.active
    team.title = "Team"
    team.append(["week", "tickets"])
    for week, count in (("w1", 40), ("w2", 55)):
        team.append([week, count])
    team["A1"].font = Font(bold=True, color="FF0000")
    chart = BarChart()
    chart.add_data(Reference(team, min_col=2, min_row=1, max_row=3), titles_from_data=True)
    team.add_chart(chart, "D2")
    if drafts_headers is not None:
        book.create_sheet(schema.DRAFTS).append(drafts_headers)
    book.create_sheet("Rota")["A1"] = "on call"
    book.defined_names["weeks"] = DefinedName("weeks", attr_text="Team!$A$2:$A$3")
    book.save(path)
    return path


def test_init_on_an_existing_workbook_adds_the_tabs_it_lacks_and_leaves_the_rest_as_it_was(workspace, cli):
    path = team_workbook(workspace / "team.xlsx")
    before = parts(path)
    result = cli("init", "--sheet", "team.xlsx")
    assert "Added the Drafts and Runs tabs to team.xlsx" in result.output
    after = parts(path)
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["Team", "Rota", schema.DRAFTS, schema.RUNS]
    assert [c.value for c in book[schema.DRAFTS][1]] == schema.DRAFT_HEADERS
    assert [c.value for c in book[schema.RUNS][1]] == schema.RUN_HEADERS
    assert book.defined_names["weeks"].attr_text == "Team!$A$2:$A$3" and len(book["Team"]._charts) == 1
    assert book["Team"]["A1"].font.b and book["Team"]["A1"].font.color.rgb == "00FF0000"
    rewritten_parts = {"xl/workbook.xml", "xl/_rels/workbook.xml.rels", "[Content_Types].xml", "xl/styles.xml"}
    assert {name for name in before if before[name] != after.get(name)} <= rewritten_parts
    assert all(after[name] == data for name, data in before.items() if name not in rewritten_parts)
    # run again: nothing to add, nothing written
    again = path.read_bytes()
    assert "already has the Drafts and Runs tabs" in cli("init", "--sheet", "team.xlsx").output
    assert path.read_bytes() == again
    trace = log_to(path, "the first ticket")
    assert drafts_read(path)[trace]["ticket"] == "the first ticket"


def log_to(path: Path, ticket: str) -> str:
    result = CliRunner().invoke(main, ["log", "--sheet", str(path)], input=json.dumps({"ticket": ticket, "draft": "d"}))
    assert result.exit_code == 0, result.output
    return result.output.split()[0]


def test_init_completes_a_drafts_tab_missing_required_columns_and_keeps_its_own(workspace, cli):
    path = team_workbook(workspace / "team.xlsx", ["ticket", "draft", "notes"])
    result = cli("init", "--sheet", "team.xlsx")
    assert "Added the Runs tab to team.xlsx" in result.output
    assert "Added the columns score, comment, created_at, trace_id to its Drafts tab" in result.output
    book = openpyxl.load_workbook(path)
    assert [c.value for c in book[schema.DRAFTS][1]] == ["ticket", "draft", "notes", "score", "comment",
                                                         "created_at", "trace_id"]
    assert book.sheetnames == ["Team", schema.DRAFTS, "Rota", schema.RUNS]
    trace = log_to(path, "into their own tab")
    assert drafts_read(path)[trace]["ticket"] == "into their own tab"


def test_init_force_still_replaces_the_workbook(workspace, cli):
    path = team_workbook(workspace / "team.xlsx")
    cli("init", "--sheet", "team.xlsx", "--force")
    assert openpyxl.load_workbook(path).sheetnames == [schema.DRAFTS, schema.RUNS, "About"]


def test_init_refuses_a_damaged_or_strict_workbook_and_leaves_it_as_it_was(workspace, cli):
    path = damaged(team_workbook(workspace / "team.xlsx"), "xl/worksheets/sheet2.xml", True)
    before = path.read_bytes()
    one_line(CliRunner().invoke(main, ["init", "--sheet", "team.xlsx"]), "team.xlsx", "is damaged")
    assert path.read_bytes() == before
    path = strict(team_workbook(workspace / "original.xlsx"), workspace / "strict.xlsx")
    before = path.read_bytes()
    one_line(CliRunner().invoke(main, ["init", "--sheet", "strict.xlsx"]), "strict.xlsx", "Strict Open XML")
    assert path.read_bytes() == before


# --- an Excel Table with a totals row over Drafts -----------------------------------------------------------


def totals_workbook(path: Path, rows: int = 2, elsewhere: str | None = None, empty: int = 0) -> Path:
    """Drafts in an Excel Table named Reviews with a totals row below `rows` reviewed drafts and `empty`
    empty rows: a label, a count by structured reference and one by A1 reference; `elsewhere`: a
    formula on another tab."""
    from openpyxl.worksheet.table import Table, TableColumn

    write_workbook(path, [draft(trace_id=f"t-{n}") for n in range(rows)])
    book = openpyxl.load_workbook(path)
    sheet = book[schema.DRAFTS]
    names = schema.DRAFT_HEADERS
    letter = {name: openpyxl.utils.get_column_letter(i) for i, name in enumerate(names, start=1)}
    totals = rows + 2 + empty
    sheet[f"{letter['ticket']}{totals}"] = "Total"
    sheet[f"{letter['draft']}{totals}"] = "=SUBTOTAL(103,Reviews[draft])"
    sheet[f"{letter['score']}{totals}"] = f"=SUBTOTAL(103,{letter['score']}2:{letter['score']}{totals - 1})"
    last = letter[names[-1]]
    table = Table(displayName="Reviews", ref=f"A1:{last}{totals}", totalsRowCount=1)
    table.tableColumns = [TableColumn(id=i, name=name) for i, name in enumerate(names, start=1)]
    table.tableColumns[names.index("ticket")].totalsRowLabel = "Total"
    table.tableColumns[names.index("draft")].totalsRowFunction = "count"
    table.autoFilter = openpyxl.worksheet.filters.AutoFilter(ref=f"A1:{last}{totals - 1}")
    sheet.add_table(table)
    if elsewhere:
        book.create_sheet("Summary")["A1"] = elsewhere
    book.save(path)
    return path


def test_drafts_go_inside_a_table_above_its_totals_row_which_moves_down_with_its_formulas(workspace):
    path = totals_workbook(workspace / "loop.xlsx")
    letter = {name: openpyxl.utils.get_column_letter(i) for i, name in enumerate(schema.DRAFT_HEADERS, start=1)}
    last = letter[schema.DRAFT_HEADERS[-1]]
    first, second = log("one", "two").output.split()
    book = openpyxl.load_workbook(path)
    sheet, table = book[schema.DRAFTS], book[schema.DRAFTS].tables["Reviews"]
    assert table.ref == f"A1:{last}6" and table.autoFilter.ref == f"A1:{last}5" and table.totalsRowCount == 1
    assert [sheet[f"{letter['trace_id']}{r}"].value for r in (2, 3, 4, 5)] == ["t-0", "t-1", first, second]
    assert sheet[f"{letter['ticket']}6"].value == "Total"
    assert sheet[f"{letter['draft']}6"].value == "=SUBTOTAL(103,Reviews[draft])"
    assert sheet[f"{letter['score']}6"].value == f"=SUBTOTAL(103,{letter['score']}2:{letter['score']}5)"
    assert sheet.max_row == 6 and sheet.dimensions.endswith(":" + f"{last}6")
    third = log("three").output.strip()
    sheet = openpyxl.load_workbook(path)[schema.DRAFTS]
    assert sheet.tables["Reviews"].ref == f"A1:{last}7" and sheet[f"{letter['trace_id']}6"].value == third
    assert sheet[f"{letter['score']}7"].value == f"=SUBTOTAL(103,{letter['score']}2:{letter['score']}6)"
    assert set(drafts_read(path)) == {"t-0", "t-1", first, second, third}
    namespaces(parts(path)["xl/worksheets/sheet1.xml"])


def test_a_tables_empty_rows_above_its_totals_row_are_taken_first(workspace):
    path = totals_workbook(workspace / "loop.xlsx", empty=2)
    last = openpyxl.utils.get_column_letter(len(schema.DRAFT_HEADERS))
    trace_id, ticket = schema.DRAFT_HEADERS.index("trace_id") + 1, schema.DRAFT_HEADERS.index("ticket") + 1
    first = log("one").output.strip()
    sheet = openpyxl.load_workbook(path)[schema.DRAFTS]
    assert sheet.tables["Reviews"].ref == f"A1:{last}6" and sheet.cell(4, trace_id).value == first
    second, third = log("two", "three").output.split()
    sheet = openpyxl.load_workbook(path)[schema.DRAFTS]
    assert sheet.tables["Reviews"].ref == f"A1:{last}7"
    assert [sheet.cell(r, trace_id).value for r in (5, 6)] == [second, third] and sheet.cell(7, ticket).value == "Total"


def test_a_totals_row_a_formula_elsewhere_points_at_stays_where_it_is_and_drafts_go_below(workspace):
    letter = openpyxl.utils.get_column_letter(schema.DRAFT_HEADERS.index("score") + 1)
    path = totals_workbook(workspace / "loop.xlsx", elsewhere=f"=Drafts!{letter}4")
    trace = log("one").output.strip()
    sheet = openpyxl.load_workbook(path)[schema.DRAFTS]
    assert sheet.cell(4, schema.DRAFT_HEADERS.index("ticket") + 1).value == "Total"  # not moved
    assert sheet.cell(5, schema.DRAFT_HEADERS.index("trace_id") + 1).value == trace


@pytest.mark.skipif(not shutil.which("soffice"), reason="LibreOffice is not installed")
def test_libreoffice_shows_the_drafts_inside_the_table_and_the_totals_row_last(workspace):
    path = totals_workbook(workspace / "loop.xlsx")
    log("one", "two")
    out = workspace / "csv"
    subprocess.run(["soffice", "--headless", "--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,1",
                    "--outdir", str(out), str(path)], capture_output=True, timeout=180, check=True,
                   env={"HOME": str(workspace), "PATH": "/usr/bin:/bin"})
    rows = list(__import__("csv").reader((out / "loop-Drafts.csv").open(encoding="utf-8")))
    ticket, score = schema.DRAFT_HEADERS.index("ticket"), schema.DRAFT_HEADERS.index("score")
    assert [r[ticket] for r in rows[1:6]] == [rows[1][ticket], rows[2][ticket], "one", "two", "Total"]
    assert rows[5][score] == "2"  # LibreOffice computed the totals row's count over the rows it now covers


def test_init_completes_a_google_sheets_drafts_tab_the_same_way(workspace, google, cli):
    from tests.backends import KEY

    google.add_spreadsheet(KEY, {"Team notes": [["keep", "me"]], schema.DRAFTS: [["ticket", "draft", "notes"]]})
    output = cli("init", "--sheet", KEY).output
    assert "Added the Runs tab to the Google Sheet" in output and "score, comment, created_at, trace_id" in output
    assert google.titles(KEY) == ["Team notes", schema.DRAFTS, schema.RUNS]
    assert google.values(KEY, schema.DRAFTS) == [["ticket", "draft", "notes", "score", "comment", "created_at",
                                                  "trace_id"]]
    assert google.values(KEY, "Team notes") == [["keep", "me"]]
    assert "already has" in cli("init", "--sheet", KEY).output
