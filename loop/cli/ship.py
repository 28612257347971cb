"""The commands that ship an edit: `apply`, `promote`, `rollback` and `prompt`."""

from __future__ import annotations

import click

from loop.cell_values import shown
from loop.cli.edge import common, plural


@click.command(short_help="Apply the ticked edits as one new prompt version.")
@click.option("--canary", "canary", metavar="SHARE", default=None,
              help="Serve the new version to this share of tickets first (e.g. 10%); the rest keep the current one.")
@common
def apply(workspace, canary):
    """Act on the Rollout tab's ticks, then apply the ticked edits as one new prompt version (with
    --canary, first to a share of tickets)."""
    from loop.ship import approval, rollout
    from loop.ship.canary import parse_share

    share = parse_share(canary) if canary is not None else None
    for line in rollout.said(rollout.act(workspace)):
        click.echo(line)
    report = approval.apply(workspace, canary_share=share)
    if report.applied:
        rollout.refresh(workspace)
    prompt = workspace.settings.prompt
    for note in report.notes:
        click.echo(note)
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
    if report.applied and share is not None:
        click.echo(
            f"Applied {plural(len(report.applied), 'edit')} as the canary {report.version.label}, served to "
            f"{share:.0%} of tickets; the rest keep {report.previous.label}, which {prompt} keeps. "
            "`loop promote` makes it current, `loop rollback` ends it."
        )
    elif report.applied:
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
               + (f"{prompt} is at {report.previous.label}, the canary {report.version.label} serves {share:.0%}."
                  if report.applied and share is not None else f"{prompt} is at {report.version.label}."))


@click.command(short_help="Restore the prompt version before the current one, or end the running canary.")
@common
def rollback(workspace):
    """Restore the prompt version before the current one, and mark the edits it undid `rolled back`.
    While a canary runs, end it instead: the current version keeps serving."""
    from loop.ship import approval

    report = approval.rollback(workspace)
    prompt = workspace.settings.prompt
    for note in report.notes:
        click.echo(note)
    if report.canary is not None:
        click.echo(f"Ended the canary {report.canary.label}; {report.current.label} serves everyone and {prompt} "
                   "is unchanged.")
    elif report.undone is None:
        click.echo(f"{prompt} is at its first recorded version ({report.current.label}); nothing to roll back.")
        return
    else:
        click.echo(f"Rolled {prompt} back from {report.undone.label} to {report.current.label}.")
    if report.rows:
        click.echo(f"Marked {plural(len(report.rows), 'edit')} `rolled back`; tick one again to re-apply it.")


@click.command(short_help="Make the running canary current for everyone, or raise its share.")
@click.option("--to", "to", metavar="SHARE", default=None,
              help="Raise the canary's share of tickets to this (e.g. 50%) instead of promoting it.")
@common
def promote(workspace, to):
    """Make the running canary the current version for everyone (writing the prompt file), or with
    --to raise its share of tickets."""
    from loop.ship import canary

    share = canary.parse_share(to, "--to") if to is not None else None
    done = canary.promote(workspace, share)
    prompt = workspace.settings.prompt
    for note in workspace.prompt.notes:
        click.echo(note)
    if share is not None:
        click.echo(f"The canary {done.canary.label} now serves {share:.0%} of tickets (the ones it served, and more).")
    else:
        click.echo(f"Promoted the canary {done.canary.label}: {done.previous.label} → {done.current.label} for "
                   f"everyone; {prompt} holds it. Undo with `loop rollback`.")


@click.command("prompt", short_help="Print the prompt to draft with, as loop.prompt serves it.")
@click.option("--unit", default=None, metavar="ID", help="The ticket (or conversation) id: its canary arm is sticky.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: text, version, arm and unit.")
@common
def prompt_command(workspace, unit, as_json):
    """Print the prompt to draft with, exactly (no newline added), from the same cache rules as
    loop.prompt: for agents written in other languages, and for a deploy step."""
    import json

    from loop.serving import prompt

    if workspace.prompt.exists():
        workspace.prompt.sync()  # a hand edit of the file is recorded before it is served
    served = prompt(unit, workspace.settings)
    if as_json:
        click.echo(json.dumps({"text": served.text, "version": served.version, "arm": served.arm, "unit": served.unit},
                              ensure_ascii=False))
    else:
        click.echo(served.text, nl=False)
