"""The commands that measure: `report`, `status` and `schedule`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from loop.cell_values import shown
from loop.cli.edge import C1_CONTROLS, run_at_edge, common, plural
from loop.improver.edits import edit_name


@click.command(short_help="Measure each prompt version and applied edit; refresh the Dashboard tab.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON for scripts.")
@click.option("--notify", metavar="URL", help="Post a digest to this Slack-compatible webhook. [env LOOP_NOTIFY_URL]")
@common
def report(workspace, as_json):
    """Measure every prompt version (👍 rate with its 95% interval, the change from the version before),
    every applied edit (its pattern's share of failures before and after) and the judge against people;
    rewrite the Dashboard tab with the figures and a chart, and print them. It warns, never acts."""
    import json

    from loop.measure import digest
    from loop.measure.report import DASHBOARD, refresh

    found = refresh(workspace)
    if as_json:
        click.echo(C1_CONTROLS.sub(lambda m: f"\\u{ord(m[0]):04x}", json.dumps(found.as_json(), ensure_ascii=False, indent=2)))
    else:
        click.echo(shown(report_text(found)))
        click.echo(f"Wrote tab {DASHBOARD!r} to {workspace.settings.sheet}.")
    if found.warning:
        click.echo(f"warning: {shown(found.warning)}", err=True)
    if workspace.settings.notify_url:
        digest.post(workspace.settings.notify_url, digest.report_digest(found, workspace.workbook.link(DASHBOARD)))


def report_text(found) -> str:
    """The Dashboard's figures as plain-text tables."""
    from loop.measure.report import p_text

    def table(rows: list[list[str]]) -> list[str]:
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]

    def percent(rate) -> str:
        return "" if rate is None else f"{rate:.0%}"

    lines = [shown(found.headline), "Prompt versions:"] if found.versions else ["Prompt versions:"]
    if found.canary:
        lines.insert(1, shown(found.canary.summary))
    if not found.versions:
        lines.append("  No drafts carry a prompt version yet.")
    else:
        rows = [["version", "current from", "drafts", "reviewed", "👍 rate", "95% interval", "change", "verdict",
                 "judge only"]]
        for v in found.versions:
            interval = f"{percent(v.low)}–{percent(v.high)}" if v.reviewed else ""
            change = "" if v.change is None else f"{v.change * 100:+.1f} pts"
            rows.append([v.version, v.current_from, str(v.drafts), str(v.reviewed), percent(v.rate), interval, change,
                         v.verdict + (f" ({p_text(v.p_value)})" if v.p_value is not None else ""),
                         f"{v.judged}" + (f" ({percent(v.judge_rate)} 👍)" if v.judged else "")])
        lines += table(rows)
    if found.edits:
        lines.append("Applied edits (share of failures in the edit's pattern, before → after):")
        rows = [["edit", "in", "before", "after", "verdict"]]
        for e in found.edits:
            rows.append([edit_name(e), e.version, f"{e.pattern_before}/{e.failures_before}",
                         f"{e.pattern_after}/{e.failures_after}", e.verdict])
        lines += table(rows)
    if found.judge:
        lines.append("Judge against people (drafts both scored):")
        rows = [["rubric", "both", "agreement", "kappa"]]
        for j in found.judge:
            rows.append([j.rubric, str(j.both), percent(j.agreement), "" if j.kappa is None else f"{j.kappa:.2f}"])
        lines += table(rows)
    return "\n".join(lines)


@click.command(short_help="Run improve, apply and report weekly: GitHub Actions, cron or systemd.")
@click.option("--github", "kind", flag_value="github", help="Write .github/workflows/loop-weekly.yml.")
@click.option("--cron", "kind", flag_value="cron", help="Print a crontab line (the machine's local time).")
@click.option("--systemd", "kind", flag_value="systemd", help="Print a systemd user service and timer.")
@click.option("--day", default="mon", show_default=True, help="Weekday: mon … sun.")
@click.option("--hour", default=6, show_default=True, type=int, help="Hour, UTC (cron: local time).")
@click.option("--minute", default=17, show_default=True, type=int, help="Minute; off the hour, when schedulers are busy.")
@click.option("--since", default="14d", show_default=True, help="Review window of each run: 14d, 2w.")
@click.option("--include-judge", is_flag=True, help="Pass --include-judge to improve.")
@click.option("--canary", metavar="SHARE", help="Apply the ticked edits as a canary on this share of tickets: 10%.")
@click.option("--force", is_flag=True, help="Replace an existing workflow file.")
@click.option("--debug", is_flag=True, help="Show a traceback on errors.")
def schedule(kind, day, hour, minute, since, include_judge, canary, force, debug):
    """Run `loop improve`, `loop apply` (what reviewers ticked since the last run) and `loop report`
    once a week on their own. The digest goes out when LOOP_NOTIFY_URL is set where they run."""

    def run():
        from loop.measure import schedule as weekly
        from loop.errors import UsageError

        if kind is None:
            raise UsageError("Choose where it runs: --github, --cron or --systemd.")
        plan = weekly.Schedule(weekday=day, hour=hour, minute=minute, since=since, include_judge=include_judge,
                               notify=True, canary=canary)
        if kind == "github":
            path = weekly.write_workflow(plan, Path.cwd(), force=force)
            click.echo(f"Wrote {path}: {plan.when()} UTC, and on demand from the Actions tab. Add the secrets it "
                       "lists at its top; commit and push it.")
            click.echo("GitHub disables scheduled workflows in a repository with no activity for 60 days.")
            return
        workdir, program = str(Path.cwd().resolve()), _loop_program()
        if kind == "cron":
            click.echo(weekly.crontab_line(plan, workdir, program))
        else:
            service, timer = weekly.systemd_units(plan, workdir, program)
            click.echo(service)
            click.echo(timer)
            click.echo(weekly.sync_service(workdir, program))

    run_at_edge(run, debug)


def _loop_program() -> str:
    """The absolute path of this `loop`, for a scheduler that starts with an empty PATH."""
    import shutil

    here = Path(sys.argv[0])
    if here.name == "loop" and here.exists():
        return str(here.resolve())
    found = shutil.which("loop")
    return str(Path(found).resolve()) if found else str(Path(sys.executable).with_name("loop"))


@click.command(short_help="Unreviewed drafts, pending edits, the prompt version.")
@click.option("--since", default="14d", show_default=True, help="Review window for the counts.")
@common
def status(workspace, since):
    """What is pending: unreviewed drafts, proposed and approved edits, the prompt version."""
    from loop.measure import status as status_module

    state = status_module.status(workspace, since)
    recent = state.recent
    click.echo(f"Drafts: {len(state.drafts)} in all; since {state.since:%Y-%m-%d}: {len(recent)}, of which "
               f"{sum(d.score is None for d in recent)} unreviewed, {plural(sum(d.is_failure for d in recent), 'failure')}, "
               f"{plural(sum(d.is_success for d in recent), 'success', 'successes')}.")
    held = [plural(state.archived_drafts, 'archived draft')] if state.archived_drafts else []
    held += [f"{plural(state.deleted_drafts, 'draft')} deleted from the sheet (`loop sync --restore-deleted` "
             "puts them back)"] if state.deleted_drafts else []
    click.echo(f"Store: {state.store}" + (f", {', '.join(held)}." if held else "."))
    if state.pending_drafts:
        click.echo(f"Pending: {plural(state.pending_drafts, 'logged draft')} not in the sheet yet; "
                   f"`{state.sync_command}` writes them.")
    for other in state.elsewhere:
        there = " on another machine" if other.elsewhere else ""
        click.echo(f"Pending for {shown(other.where)}{there}: {plural(other.pending, 'draft')} "
                   f"(`{shown(other.command)}`{' run there' if there else ''} writes them).")
    if state.without_content[0]:
        from loop.collect.span_drafts import CONTENT_SETTINGS

        click.echo(f"Traces: {plural(state.without_content[0], 'model call span')} received without content (last "
                   f"{state.without_content[1]}), so no draft; turn content on: {CONTENT_SETTINGS}.")
    if state.skipped:
        click.echo(f"Unreadable rows: {len(state.skipped)} (first: {shown(state.skipped[0])})")
    summary = ", ".join(f"{count} {name}" for name, count in sorted(state.edits.items())) or "none"
    click.echo(f"Edits ({plural(len(state.edit_tabs), 'tab')}): {shown(summary)}.")
    prompt = workspace.settings.prompt
    if not state.prompt_exists:
        click.echo(f"Prompt: {prompt} does not exist.")
    elif state.version is None:
        click.echo(f"Prompt: {prompt}, not versioned yet (the next improve or apply records it as v1).")
    else:
        extra = " plus unrecorded hand edits" if state.hand_edited else ""
        click.echo(f"Prompt: {prompt} at {state.version.label}{extra}.")
    if state.canary is not None:
        click.echo(shown(state.canary.summary))
