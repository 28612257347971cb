"""The README is the user's manual: every command, every option and every LOOP_ variable the code
reads appears in it, so the manual cannot drift from `--help`."""

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


def test_every_variable_the_code_reads_is_in_the_configuration_table():
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "loop").rglob("*.py"))
    variables = set(re.findall(r"\bLOOP_[A-Z_]+\b", source))
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    missing = sorted(v for v in variables if v not in table)
    assert not missing, missing
