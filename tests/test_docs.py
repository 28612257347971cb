"""The README is the user's manual and docs/ its reference pages: every command, every option and
every LOOP_ variable the code reads appears in them, so the manual cannot drift from `--help`. Each
option is in its command's row of the README's commands table or in a docs/ page section that row
links to, and no section a row links to names an option the command does not take (on the commands
page, no option at all; elsewhere, no option of another `loop` command). Every variable
is in the table of docs/configuration.md. Every relative link in the README and in docs/ leads to a
file that exists and, with a `#anchor`, to a heading of that file (GitHub's anchor rules); every
docs/ page is linked from the README, and the README stays under 300 lines."""

from __future__ import annotations

import re
from pathlib import Path

import click

from loop.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = {ROOT / "README.md": README} | {page: page.read_text(encoding="utf-8") for page in DOCS}
MANUAL = "\n".join(PAGES.values())


def without_code_blocks(text: str) -> str:
    """The text with every fenced code block blanked out, line for line (a `# comment` in a block is
    no heading, a `[x](y)` in one no link)."""
    lines, fence = [], None
    for line in text.splitlines():
        marker = re.match(r" {0,3}(`{3,}|~{3,})", line)
        if fence is None and marker:
            fence = marker.group(1)
            lines.append("")
        elif fence is not None:
            if line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
                fence = None
            lines.append("")
        else:
            lines.append(line)
    return "\n".join(lines)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link text kept, lower case, punctuation (and emoji) dropped,
    each space a hyphen."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def sections(text: str) -> dict[str, str]:
    """Each heading's anchor (a repeated one gets -1, -2, … as on GitHub), and the text under it up
    to the next heading of any level."""
    found: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    current = None
    original = text.splitlines()
    for number, line in enumerate(without_code_blocks(text).splitlines()):
        heading = re.match(r" {0,3}#{1,6} +(.+?)(?: +#+)? *$", line)
        if heading:
            anchor = slug(heading.group(1))
            if anchor in seen:
                seen[anchor] += 1
                anchor = f"{anchor}-{seen[anchor]}"
            else:
                seen[anchor] = 0
            current = found.setdefault(anchor, [])
        elif current is not None:
            current.append(original[number])
    return {anchor: "\n".join(body) for anchor, body in found.items()}


def links(text: str) -> list[str]:
    """The target of every Markdown link and image outside code."""
    prose = re.sub(r"`(?:[^`\n]|\n(?!\n))*`", "", without_code_blocks(text))
    return re.findall(r"!?\[[^\]]*\]\(<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\)", prose)


def command_rows() -> dict[str, str]:
    """The README's commands table: each command's row, by the command's name."""
    table = README.split("## Commands", 1)[1].split("\n\n", 2)[1]
    rows = {}
    for line in table.splitlines():
        match = re.match(r"\| `loop (\w+)", line)
        if match:
            rows[match.group(1)] = line
    return rows


def linked_parts(row: str) -> list[tuple[str, str]]:
    """Every docs/ page section the row links to (`docs/page.md#anchor`), or whole page, as (page, text)."""
    found = []
    for page, anchor in re.findall(r"\]\((docs/[\w./-]+\.md)(?:#([\w-]+))?\)", row):
        text = (ROOT / page).read_text(encoding="utf-8")
        if not anchor:
            found.append((page, text))
            continue
        parts = sections(text)
        assert anchor in parts, f"{page}#{anchor} is not a heading of {page}"
        found.append((page, parts[anchor]))
    return found


def linked_sections(row: str) -> str:
    """The text of every docs/ page section the row links to, or whole pages."""
    return "\n".join(text for _, text in linked_parts(row))


def flags(command: click.Command) -> list[str]:
    return [flag for parameter in command.params if isinstance(parameter, click.Option)
            for flag in parameter.opts + parameter.secondary_opts if flag.startswith("--")]


def mentions(flag: str, text: str) -> bool:
    return re.search(re.escape(flag) + r"(?![\w-])", text) is not None


def test_every_command_is_in_the_commands_table():
    table = README.split("## Commands", 1)[1].split("\n\n", 2)[1]
    for name in main.commands:
        assert f"`loop {name}" in table, name


def test_every_option_of_every_command_is_documented():
    missing = [f"loop {name} {flag}" for name, command in main.commands.items()
               for flag in flags(command) if not mentions(flag, MANUAL)]
    assert not missing, missing


def test_every_row_of_the_commands_table_links_to_its_section_of_the_commands_page():
    sections_of_commands = sections((ROOT / "docs" / "commands.md").read_text(encoding="utf-8"))
    for name, row in command_rows().items():
        assert f"(docs/commands.md#loop-{name})" in row, f"the row of loop {name} does not link to its section"
        assert f"loop-{name}" in sections_of_commands, f"docs/commands.md has no section for loop {name}"


def test_every_option_of_every_command_is_in_its_row_of_the_commands_table_or_a_page_the_row_links_to():
    rows = command_rows()
    missing = []
    for name, command in main.commands.items():
        row = rows[name]
        documented = row + "\n" + linked_sections(row)
        missing += [f"loop {name} {flag}" for flag in flags(command) if not mentions(flag, documented)]
    assert not missing, missing


def test_no_section_a_row_links_to_names_an_option_its_command_does_not_take():
    """The commands page names no option at all that the command does not take; a section of another
    page names no option of another `loop` command (it may quote other programs: `systemctl --user`)."""
    rows = command_rows()
    every = {flag for command in main.commands.values() for flag in flags(command)}
    wrong = []
    for name, command in main.commands.items():
        parts = linked_parts(rows[name])
        assert parts, f"the row of loop {name} links to no docs/ page"
        real = set(flags(command))
        for page, section in parts:
            named = set(re.findall(r"(?<![\w-])--[a-z][\w-]*", section))
            foreign = named - real if page == "docs/commands.md" else (named & every) - real
            wrong += [f"loop {name} {flag} ({page})" for flag in sorted(foreign)]
    assert not wrong, wrong


def test_every_option_has_a_help_text():
    bare = [f"loop {name} {parameter.opts[0]}" for name, command in main.commands.items()
            for parameter in command.params if isinstance(parameter, click.Option) and not (parameter.help or "").strip()]
    assert not bare, bare


def test_the_readme_names_exactly_the_commands_that_take_no_sheet():
    without = sorted(name for name, command in main.commands.items() if "--sheet" not in flags(command))
    claim = re.search(r"Every command but (.+?) takes `--sheet`", README)
    assert claim, "the README no longer says which commands take --sheet"
    assert sorted(re.findall(r"`(\w+)`", claim.group(1))) == without
    for page, text in PAGES.items():
        for named in re.findall(r"Every command but (.+?) takes", text):
            assert sorted(re.findall(r"`(\w+)`", named)) == without, page.name


def test_the_manual_states_how_long_make_test_takes():
    development = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    claim = re.search(r"`make test`[^.]*about (\d+) minutes on 2 cores", development)
    assert claim, "docs/development.md no longer says how long `make test` takes"
    for quick in re.findall(r"make test\b[^\n]*about (\d+) minutes on 2 cores", README):
        assert quick == claim.group(1), "the README and docs/development.md disagree on how long `make test` takes"


def test_every_variable_the_code_reads_is_in_the_configuration_table():
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "loop").rglob("*.py"))
    variables = set(re.findall(r"\bLOOP_[A-Z_]+\b", source))
    parts = sections((ROOT / "docs" / "configuration.md").read_text(encoding="utf-8"))
    assert "variables" in parts, "docs/configuration.md has no Variables section"
    missing = sorted(v for v in variables if v not in parts["variables"])
    assert not missing, missing


def test_every_relative_link_leads_to_a_file_and_a_heading_that_exist():
    broken = []
    for page, text in PAGES.items():
        for target in links(text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):
                continue  # https:, mailto: and the like
            path, _, anchor = target.partition("#")
            destination = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)}: {target}"
            if not destination.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and (destination.suffix != ".md" or anchor not in sections(destination.read_text(encoding="utf-8"))):
                broken.append(f"{where} (no such heading)")
    assert not broken, broken


def test_the_anchors_follow_githubs_rules():
    assert slug("The Dashboard: did it get better?") == "the-dashboard-did-it-get-better"
    assert slug("`loop improve` on large workbooks") == "loop-improve-on-large-workbooks"
    assert slug("Edits YYYY-MM-DD HHMM") == "edits-yyyy-mm-dd-hhmm"
    assert slug("The knowledge-base rule") == "the-knowledge-base-rule"
    assert list(sections("# A\n\n```sh\n# not a heading\n```\n## A\n")) == ["a", "a-1"]


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in links(README)}
    unlinked = [page.name for page in DOCS if page.resolve() not in linked]
    assert not unlinked, unlinked


def test_the_readme_is_under_300_lines():
    assert len(README.splitlines()) < 300, len(README.splitlines())
