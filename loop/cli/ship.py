"""The commands that ship an edit: `apply` and `rollback`."""

from __future__ import annotations

import click

from loop.cell_values import shown
from loop.cli.edge import common, plural


@click.command(short_help="Apply the ticked edits as one new prompt version.")
@common
def apply(workspace):
    """Apply the ticked edits as one new prompt version."""
    from loop.ship import approval

    report = approval.apply(workspace)
    prompt = workspace.settings.prompt
    for item in report.ignored:
        click.echo(f"ignored {shown(item.edit.edit_id)}: it is ticked but was rejected ({shown(item.edit.check)}); "
                   "rejected edits are never applied.")
    for item in report.stale:
        click.echo(f"stale {shown(item.edit.edit_id)}: {shown(item.edit.check)}")
    for item in report.already_applied:
        click.echo(f"{shown(item.edit.edit_id)} was already in {shown(item.edit.applied_version)}: marked applied")
    for item in report.rolled_back:
        click.echo(f"{shown(item.edit.edit_id)} was rolled back with {shown(item.edit.applied_version)}: marked rolled back")
    for item, first in report.duplicates:
        click.echo(f"duplicate {shown(item.edit.edit_id)} in {shown(item.tab)!r} row {item.row}: "
                   f"{shown(approval.duplicate_reason(report, item, first))}")
    for version in report.recorded:
        if version.source == "hand edit":
            click.echo(f"Recorded the hand edit of {prompt} as {version.label} first, so it can be rolled back to; "
                       "the ticked edits go on top of it.")
        else:
            click.echo(f"Recorded {prompt} as {version.label}, its first version.")
    if report.applied:
        click.echo(
            f"Applied {plural(len(report.applied), 'edit')} to {prompt}: "
            f"{report.previous.label} → {report.version.label}. Undo with `loop rollback`."
        )
    elif not (report.stale or report.already_applied or report.duplicates):
        click.echo(f"No ticked edits to apply; {prompt} stays at {report.version.label}.")
    others = [f"{len(report.already_applied)} already applied"] if report.already_applied else []
    others += [f"{len(report.rolled_back)} marked rolled back"] if report.rolled_back else []
    click.echo(f"Summary: {len(report.applied)} applied, {len(report.stale)} stale, {len(report.ignored)} ignored, "
               f"{plural(len(report.duplicates), 'duplicate')}{''.join(', ' + o for o in others)}; "
               f"{prompt} is at {report.version.label}.")


@click.command(short_help="Restore the prompt version before the current one.")
@common
def rollback(workspace):
    """Restore the prompt version before the current one, and mark the edits it undid `rolled back`."""
    from loop.ship import approval

    report = approval.rollback(workspace)
    prompt = workspace.settings.prompt
    if report.undone is None:
        click.echo(f"{prompt} is at its first recorded version ({report.current.label}); nothing to roll back.")
        return
    click.echo(f"Rolled {prompt} back from {report.undone.label} to {report.current.label}.")
    if report.rows:
        click.echo(f"Marked {plural(len(report.rows), 'edit')} `rolled back`; tick one again to re-apply it.")
