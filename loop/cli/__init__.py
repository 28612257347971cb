"""The `loop` command: one group, its commands by stage (one module each), and the error edge in
`edge.py`. Commands import the library when they run, so `loop --help` stays fast."""

from __future__ import annotations

import click

from loop.cli.collect import init, auth, log, sync, serve, import_command, export_command, archive, draft, judge
from loop.cli.improver import improve, check
from loop.cli.measure import report, schedule, status
from loop.cli.ship import apply, promote, prompt_command, rollback


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="loop-prompt-improver", prog_name="loop")
def main():
    """Improve a support agent's prompt from reviewers' scores and comments."""


for command in (init, auth, log, sync, serve, import_command, export_command, archive, draft, judge, improve, check, apply, promote, rollback, prompt_command, report, schedule, status):
    main.add_command(command)
