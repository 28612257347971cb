"""The commands of the improver: `improve` and `check`."""

from __future__ import annotations

import click

from loop.cell_values import shown
from loop.cli.edge import SHOW_SKIPPED, common, plural, progress
from loop.improver.edits import edit_name


@click.command(short_help="Propose prompt edits from recent failures, in a new Edits tab.")
@click.option("--since", default="14d", show_default=True, help="Review window: 14d, 2w, 36h or a date.")
@click.option("--include-judge", is_flag=True, help="Count LLM judge scores on drafts no person scored.")
@click.option("--force", is_flag=True, help="Run even when no failure was reviewed since the last run.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Replay each edit on the failures it cites, held-out failures and successes.")
@click.option("--check-budget", type=click.IntRange(min=1), help="Most model calls the replay check may make. [env LOOP_CHECK_BUDGET; default 800]")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 32), help="Replay requests in flight.")
@click.option("--model", help="Model to call. [env LOOP_MODEL]")
@click.option("--max-input-tokens", type=click.IntRange(min=1), help="Most input tokens per request. [env LOOP_MAX_INPUT_TOKENS]")
@click.option("--max-edit-chars", type=click.IntRange(min=1), help="Largest change one edit may make. [env LOOP_MAX_EDIT_CHARS]")
@click.option("--notify", metavar="URL", help="Post a digest to this Slack-compatible webhook. [env LOOP_NOTIFY_URL]")
@click.option("--max-edit-share", type=click.FloatRange(0.01, 1),
              help="Largest share of the prompt one edit may remove or rewrite. [env LOOP_MAX_EDIT_SHARE]")
@common
def improve(workspace, since, include_judge, check, concurrency, force):
    """Propose prompt edits from the failures of the review window, replay each on real cases, and
    write them to a new Edits tab (with its Replay tab)."""
    from loop.improver import pipeline

    with progress("Replaying") as (start, done):
        report = pipeline.improve(workspace, since=since, include_judge=include_judge, check=check, force=force,
                                  concurrency=concurrency, on_start=start, on_done=done)
    for skipped in report.skipped[:SHOW_SKIPPED]:
        click.echo(f"skipped {shown(skipped)}", err=True)
    if len(report.skipped) > SHOW_SKIPPED:
        click.echo(f"skipped {len(report.skipped) - SHOW_SKIPPED} more unreadable rows (`loop status` counts them)", err=True)
    window = report.window
    if not window.failures:
        if window.successes:
            what = "failures (every reviewed draft was scored up)"
        else:
            waiting = sum(d.score is None for d in window.drafts)
            what = f"reviewed drafts ({plural(waiting, 'draft')} wait for review)" if waiting else "reviewed drafts"
        click.echo(f"No {what} since {window.since:%Y-%m-%d %H:%M} UTC: nothing to improve.")
        return
    if report.nothing_new:
        click.echo(f"No new reviews since the last run: all {plural(len(window.failures), 'failure')} of the window "
                   "are in its patterns already. Nothing written (`--force` runs anyway).")
        return
    click.echo(
        f"{plural(len(window.drafts), 'draft')} since {window.since:%Y-%m-%d}: "
        f"{plural(len(window.failures), 'failure')}, {plural(len(window.successes), 'success', 'successes')}."
    )
    click.echo("Failure patterns:")
    for pattern in report.patterns:
        click.echo(f"  {pattern.count:4d}  {shown(pattern.name)}")
    click.echo(f"Edits: {len(report.proposed)} proposed, {len(report.rejected)} rejected.")
    replayed = report.replay
    for edit in report.proposed:
        figures = replayed.figures(edit.edit_id) if replayed else None
        line = f"  {edit_name(edit)}"
        if figures:
            cells = figures.cells()
            line += (f" — fixed {cells['fixed_cited']} cited and {cells['fixed_held_out']} held-out "
                     f"failures, regressed {cells['regressed']} successes{'  ← ' + shown(edit.check) if edit.check else ''}")
        click.echo(line)
    if replayed and replayed.not_replayed:
        click.echo(f"  Edits {shown(replayed.not_replayed)}.")
    for edit in report.rejected:
        click.echo(f"  rejected {edit_name(edit)} — {shown(edit.check)}")
    usage = report.usage
    extra = f" ({replayed.usage.calls} for the replay check)" if replayed and replayed.usage.calls else ""
    click.echo(f"Model: {plural(usage.calls, 'call')}{extra}, {usage.input_tokens} input and "
               f"{usage.output_tokens} output tokens.")
    click.echo(f"Wrote tab {report.edits_tab!r} to {workspace.settings.sheet}: tick `approve` on the edits you want, "
               "then run `loop apply`.")
    if workspace.settings.notify_url:
        from loop.measure import digest
        from loop.measure.report import version_figures

        versions = version_figures(report.drafts, workspace.prompt)  # the drafts improve read: no second read
        digest.post(workspace.settings.notify_url, digest.improve_digest(
            report, versions[-1] if versions else None, workspace.workbook.link(report.edits_tab)))


@click.command(short_help="Replay the ticked edits together before applying them.")
@click.option("--since", help="Review window the cases come from: 14d, 2w, 36h or a date. "
              "[default: the window of the improve run that proposed the ticked edits]")
@click.option("--include-judge", is_flag=True, help="Count LLM judge scores on drafts no person scored, as "
              "`improve --include-judge` did.")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 32), help="Replay requests in flight.")
@click.option("--check-budget", type=click.IntRange(min=1), help="Most model calls the replay may make. [env LOOP_CHECK_BUDGET]")
@click.option("--model", help="Model to call. [env LOOP_MODEL]")
@common
def check(workspace, since, include_judge, concurrency):
    """Replay the edits ticked right now, together, as one candidate prompt, on the failures they cite,
    failures they do not cite and a sample of successes, and print the figures. Writes nothing.
    The cases come from the review window of the run that proposed the edits, unless --since says otherwise."""
    from loop.improver import replay

    with progress("Replaying") as (start, done):
        report = replay.check(workspace, since=since, concurrency=concurrency, include_judge=include_judge,
                              on_start=start, on_done=done)
    for edit in report.stale:
        click.echo(f"stale {shown(edit.edit_id)}: {shown(edit.check)}; left out")
    if not report.edits:
        click.echo("No ticked edits to check: tick `approve` on the edits you want, then run `loop check`.")
        return
    _check_window(report, since)
    figures = report.figures
    if report.replay.not_replayed or figures is None:
        click.echo(f"The ticked edits were {shown(report.replay.not_replayed or 'not replayed: no cases in the window')}.")
        return
    cells = figures.cells()
    click.echo(f"{plural(len(report.edits), 'ticked edit')} together: fixed {cells['fixed_cited']} cited and "
               f"{cells['fixed_held_out']} held-out failures, regressed {cells['regressed']} successes.")
    flag = figures.flag()
    if flag:
        click.echo(f"Look before you apply: {flag.removeprefix('replay: ')}.")
    elif not figures.fixed_cited[1]:
        click.echo("No failure they cite was replayed, so these figures say nothing about what the edits fix: "
                   "widen the window with --since.")
    else:
        click.echo("No conflict showed: `loop apply` applies them.")
    click.echo(f"Model: {plural(report.replay.usage.calls, 'call')} for the replay check.")


def _check_window(report, since: str | None) -> None:
    """Which review window `loop check` took its cases from, and the cited failures it leaves out."""
    where = f"since {report.since:%Y-%m-%d %H:%M} UTC"
    if since:
        click.echo(f"Review window: {where} (--since {shown(since)}).")
    elif report.runs:
        runs = ", ".join(shown(r) for r in report.runs)
        click.echo(f"Review window: {where}, the window of improve run{'s' if len(report.runs) > 1 else ''} {runs} "
                   "that proposed the ticked edits (--since changes it).")
    else:
        click.echo(f"Review window: {where}, the last 14 days (no improve run to take it from; --since changes it).")
    if report.earlier:
        first = min(d.created_at for d in report.earlier)
        click.echo(f"{plural(len(report.earlier), 'cited failure')} {'is' if len(report.earlier) == 1 else 'are'} "
                   f"older than the window, so not replayed: --since {first:%Y-%m-%d} brings "
                   f"{'it' if len(report.earlier) == 1 else 'them'} in.")
    if report.judge_only:
        click.echo(f"{plural(len(report.judge_only), 'cited failure')} {'is' if len(report.judge_only) == 1 else 'are'} "
                   "scored by the judge only, so not replayed: --include-judge brings "
                   f"{'it' if len(report.judge_only) == 1 else 'them'} in.")
    if report.missing:
        click.echo(f"{plural(len(report.missing), 'cited failure')} {'is' if len(report.missing) == 1 else 'are'} in "
                   f"no draft the sheet or the store holds (first: {shown(report.missing[0])}), so not replayed.")
