"""The README is the user's manual: every command, every option and every LOOP_ variable the code
reads appears in it, so the manual cannot drift from `--help`. Each option is in its command's row
of the commands table or in the docs/ page section that row links to, and that page names no option
the command does not take."""

from __future__ import annotations

import re
from pathlib import Path

import click

from loop.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_command_is_in_the_commands_table():
    table = README.split("## Commands", 1)[1].split("\n\n", 2)[1]
    for name in main.commands:
        assert f"`loop {name}" in table, name


def test_every_option_of_every_command_is_documented():
    missing = []
    for name, command in main.commands.items():
        for parameter in command.params:
            if isinstance(parameter, click.Option):
                for flag in parameter.opts + parameter.secondary_opts:
                    if flag.startswith("--") and not re.search(re.escape(flag) + r"(?![\w-])", README):
                        missing.append(f"loop {name} {flag}")
    assert not missing, missing


def command_rows() -> dict[str, str]:
    """The README's commands table: each command's row, by the command's name."""
    table = README.split("## Commands", 1)[1].split("\n\n", 2)[1]
    rows = {}
    for line in table.splitlines():
        match = re.match(r"\| `loop (\w+)", line)
        if match:
            rows[match.group(1)] = line
    return rows


def linked_sections(row: str) -> str:
    """The text of every docs/ page section the row links to (`docs/page.md#anchor`), or whole pages."""
    found = []
    for page, anchor in re.findall(r"\]\((docs/[\w./-]+\.md)(?:#([\w-]+))?\)", row):
        text = (ROOT / page).read_text(encoding="utf-8")
        if not anchor:
            found.append(text)
            continue
        sections = {re.sub(r"[^\w\s-]", "", heading).strip().lower().replace(" ", "-"): body
                    for heading, body in re.findall(r"^#+ (.+)\n((?:(?!^#+ ).*\n?)*)", text, re.M)}
        assert anchor in sections, f"{page}#{anchor} is not a heading of {page}"
        found.append(sections[anchor])
    return "\n".join(found)


def flags(command: click.Command) -> list[str]:
    return [flag for parameter in command.params if isinstance(parameter, click.Option)
            for flag in parameter.opts + parameter.secondary_opts if flag.startswith("--")]


def mentions(flag: str, text: str) -> bool:
    return re.search(re.escape(flag) + r"(?![\w-])", text) is not None


def test_every_option_of_every_command_is_in_its_row_of_the_commands_table_or_a_page_the_row_links_to():
    rows = command_rows()
    missing = []
    for name, command in main.commands.items():
        row = rows[name]
        documented = row + "\n" + linked_sections(row)
        missing += [f"loop {name} {flag}" for flag in flags(command) if not mentions(flag, documented)]
    assert not missing, missing


def test_the_commands_page_names_no_option_a_command_does_not_take():
    rows = command_rows()
    wrong = []
    for name, command in main.commands.items():
        section = linked_sections(rows[name])
        assert section, f"the row of loop {name} links to no docs/ page"
        real = set(flags(command))
        wrong += [f"loop {name} {flag}" for flag in re.findall(r"(?<![\w-])--[a-z][\w-]*", section) if flag not in real]
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


def test_the_readme_states_how_long_make_test_takes():
    assert re.search(r"`make test`[^.]*about \d+ minutes on 2 cores", README)


def test_every_variable_the_code_reads_is_in_the_configuration_table():
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "loop").rglob("*.py"))
    variables = set(re.findall(r"\bLOOP_[A-Z_]+\b", source))
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    missing = sorted(v for v in variables if v not in table)
    assert not missing, missing
