"""The `loop` command: parses options, calls the library, prints. Errors become one or two lines;
warnings and progress from the library reach stderr through one logging handler."""

from __future__ import annotations

import functools
import logging
import re
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path

import click

from . import config
from .edits import brief, edit_name
from .errors import LoopError
from .values import shown

SHOW_SKIPPED = 20
# JSON escapes C0 controls itself; DEL and C1 (CSI is U+009B) are escaped the same way, losslessly
_C1 = re.compile(r"[\x7f-\x9f]")


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 tab`, `2 tabs`."""
    return f"{count} {word if count == 1 else many or word + 's'}"


class _EchoHandler(logging.Handler):
    """Warnings and progress from the library, on stderr: one place, so no command swallows them."""

    def emit(self, record: logging.LogRecord) -> None:
        prefix = "warning: " if record.levelno >= logging.WARNING else ""
        from .redact import scrub

        click.echo(prefix + shown(scrub(record.getMessage())), err=True)


def _install_logging(debug: bool) -> None:
    logger = logging.getLogger("loop")
    if not any(isinstance(handler, _EchoHandler) for handler in logger.handlers):
        logger.addHandler(_EchoHandler())
    logger.setLevel(logging.DEBUG if debug else logging.INFO)


def _errors(command, debug: bool, *args, **kwargs):
    """Run `command`; a LoopError or an OSError becomes one line and its exit code (a traceback with --debug)."""
    from filelock import Timeout

    from .redact import scrub

    _install_logging(debug)
    try:
        return command(*args, **kwargs)
    except BrokenPipeError:  # `loop status | head -1`: the reader is gone, so end quietly (click exits 1)
        raise
    except LoopError as error:  # its message was scrubbed of URL passwords when it was made (errors.py)
        if debug:
            raise
        click.echo(f"error: {shown(str(error))}", err=True)
        sys.exit(error.exit_code)
    except Timeout as error:
        if debug:
            raise
        click.echo(f"error: another loop command holds {error.lock_file}; wait for it and run again.", err=True)
        sys.exit(1)
    except OSError as error:  # disk full, permission denied: nothing was half-written
        if debug:
            raise
        click.echo(shown(scrub(f"error: {error.strerror or error} ({error.filename or 'a file'}); fix it and run again.")),
                   err=True)
        sys.exit(1)


@contextmanager
def progress(label: str):
    """(on_start, on_done) for a long step: a progress bar on stderr, drawn once the total is known."""
    with ExitStack() as stack:
        bars = []

        def start(total: int) -> None:
            bars.append(stack.enter_context(click.progressbar(length=total, label=label, file=sys.stderr)))

        yield start, lambda: bars[0].update(1)


def common(command):
    """Options every command shares, resolved once into a Workspace."""

    @click.option("--sheet", help="A local .xlsx path, or a Google Sheets URL or key. [env LOOP_SHEET; default loop.xlsx]")
    @click.option("--prompt", help="The managed prompt file. [env LOOP_PROMPT; default prompts/support_agent.md]")
    @click.option("--credentials", type=click.Path(dir_okay=False),
                  help="Google service-account key file. [env GOOGLE_APPLICATION_CREDENTIALS]")
    @click.option("--store", metavar="URL", help="Where drafts are kept: sqlite:///path, a file path or "
                  "postgresql://… [env LOOP_STORE; default loop.db beside the workbook]")
    @click.option("--debug", is_flag=True, help="Show a traceback on errors.")
    @functools.wraps(command)
    def wrapper(sheet, prompt, credentials, store, debug, **options):
        def run():
            settings = config.resolve(
                sheet=sheet, prompt=prompt, credentials=credentials, model=options.pop("model", None),
                max_input_tokens=options.pop("max_input_tokens", None),
                max_edit_chars=options.pop("max_edit_chars", None),
                max_edit_share=options.pop("max_edit_share", None),
                check_budget=options.pop("check_budget", None),
                notify_url=options.pop("notify", None), store=store,
            )
            from .workspace import Workspace

            return command(workspace=Workspace(settings), **options)

        return _errors(run, debug)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="loop-prompt-improver", prog_name="loop")
def main():
    """Improve a support agent's prompt from reviewers' scores and comments."""


@main.command(short_help="Create the workbook, a starter prompt and a judge rubric.")
@click.option("--force", is_flag=True, help="Replace an existing local workbook.")
@common
def init(workspace, force):
    """Create the workbook (or add the Drafts and Runs tabs to a Google Sheet), and a starter prompt
    and judge rubric where there are none."""
    from . import setup

    for line in setup.init(workspace, force=force):
        click.echo(line)


@main.command(short_help="Sign in with your own Google account.")
@click.option("--client-secret", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The OAuth client file (Desktop app) downloaded from Google Cloud.")
@click.option("--debug", is_flag=True, help="Show a traceback on errors.")
def auth(client_secret, debug):
    """Sign in with your own Google account, for sheets shared with you rather than a service account."""
    from .sheets import google_auth

    token = _errors(google_auth.authorize, debug, client_secret)
    click.echo(f"Signed in; the token is kept in {token}. Set LOOP_SHEET to your sheet's URL and run `loop init`.")


@main.command(short_help="Propose prompt edits from recent failures, in a new Edits tab.")
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
    from . import improver

    with progress("Replaying") as (start, done):
        report = improver.improve(workspace, since=since, include_judge=include_judge, check=check, force=force,
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
        from . import notify
        from .report import version_figures

        versions = version_figures(report.drafts, workspace.prompt)  # the drafts improve read: no second read
        notify.post(workspace.settings.notify_url, notify.improve_digest(
            report, versions[-1] if versions else None, workspace.workbook.link(report.edits_tab)))


@main.command(short_help="Measure each prompt version and applied edit; refresh the Dashboard tab.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON for scripts.")
@click.option("--notify", metavar="URL", help="Post a digest to this Slack-compatible webhook. [env LOOP_NOTIFY_URL]")
@common
def report(workspace, as_json):
    """Measure every prompt version (👍 rate with its 95% interval, the change from the version before),
    every applied edit (its pattern's share of failures before and after) and the judge against people;
    rewrite the Dashboard tab with the figures and a chart, and print them. It warns, never acts."""
    import json

    from . import notify
    from .report import DASHBOARD, refresh

    found = refresh(workspace)
    if as_json:
        click.echo(_C1.sub(lambda m: f"\\u{ord(m[0]):04x}", json.dumps(found.as_json(), ensure_ascii=False, indent=2)))
    else:
        click.echo(shown(report_text(found)))
        click.echo(f"Wrote tab {DASHBOARD!r} to {workspace.settings.sheet}.")
    if found.warning:
        click.echo(f"warning: {shown(found.warning)}", err=True)
    if workspace.settings.notify_url:
        notify.post(workspace.settings.notify_url, notify.report_digest(found, workspace.workbook.link(DASHBOARD)))


def report_text(found) -> str:
    """The Dashboard's figures as plain-text tables."""
    from .report import p_text

    def table(rows: list[list[str]]) -> list[str]:
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]

    def percent(rate) -> str:
        return "" if rate is None else f"{rate:.0%}"

    lines = [shown(found.headline), "Prompt versions:"] if found.versions else ["Prompt versions:"]
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


@main.command(short_help="Run improve and report weekly: GitHub Actions, cron or systemd.")
@click.option("--github", "kind", flag_value="github", help="Write .github/workflows/loop-weekly.yml.")
@click.option("--cron", "kind", flag_value="cron", help="Print a crontab line (the machine's local time).")
@click.option("--systemd", "kind", flag_value="systemd", help="Print a systemd user service and timer.")
@click.option("--day", default="mon", show_default=True, help="Weekday: mon … sun.")
@click.option("--hour", default=6, show_default=True, type=int, help="Hour, UTC (cron: local time).")
@click.option("--minute", default=17, show_default=True, type=int, help="Minute; off the hour, when schedulers are busy.")
@click.option("--since", default="14d", show_default=True, help="Review window of each run: 14d, 2w.")
@click.option("--include-judge", is_flag=True, help="Pass --include-judge to improve.")
@click.option("--force", is_flag=True, help="Replace an existing workflow file.")
@click.option("--debug", is_flag=True, help="Show a traceback on errors.")
def schedule(kind, day, hour, minute, since, include_judge, force, debug):
    """Run `loop improve` and then `loop report` once a week on their own. The digest goes out when
    LOOP_NOTIFY_URL is set where they run."""

    def run():
        from . import schedule as weekly
        from .errors import UsageError

        if kind is None:
            raise UsageError("Choose where it runs: --github, --cron or --systemd.")
        plan = weekly.Schedule(weekday=day, hour=hour, minute=minute, since=since, include_judge=include_judge,
                               notify=True)
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

    _errors(run, debug)


def _loop_program() -> str:
    """The absolute path of this `loop`, for a scheduler that starts with an empty PATH."""
    import shutil

    here = Path(sys.argv[0])
    if here.name == "loop" and here.exists():
        return str(here.resolve())
    found = shutil.which("loop")
    return str(Path(found).resolve()) if found else str(Path(sys.executable).with_name("loop"))


@main.command(short_help="Apply the ticked edits as one new prompt version.")
@common
def apply(workspace):
    """Apply the ticked edits as one new prompt version."""
    from . import approval

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


@main.command(short_help="Replay the ticked edits together before applying them.")
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
    from . import replay

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


@main.command(short_help="Restore the prompt version before the current one.")
@common
def rollback(workspace):
    """Restore the prompt version before the current one, and mark the edits it undid `rolled back`."""
    from . import approval

    report = approval.rollback(workspace)
    prompt = workspace.settings.prompt
    if report.undone is None:
        click.echo(f"{prompt} is at its first recorded version ({report.current.label}); nothing to roll back.")
        return
    click.echo(f"Rolled {prompt} back from {report.undone.label} to {report.current.label}.")
    if report.rows:
        click.echo(f"Marked {plural(len(report.rows), 'edit')} `rolled back`; tick one again to re-apply it.")


@main.command(short_help="Unreviewed drafts, pending edits, the prompt version.")
@click.option("--since", default="14d", show_default=True, help="Review window for the counts.")
@common
def status(workspace, since):
    """What is pending: unreviewed drafts, proposed and approved edits, the prompt version."""
    from . import status as status_module

    state = status_module.status(workspace, since)
    recent = state.recent
    click.echo(f"Drafts: {len(state.drafts)} in all; since {state.since:%Y-%m-%d}: {len(recent)}, of which "
               f"{sum(d.score is None for d in recent)} unreviewed, {plural(sum(d.is_failure for d in recent), 'failure')}, "
               f"{plural(sum(d.is_success for d in recent), 'success', 'successes')}.")
    click.echo(f"Store: {state.store}" + (f", {plural(state.archived_drafts, 'archived draft')}."
                                           if state.archived_drafts else "."))
    if state.pending_drafts:
        click.echo(f"Pending: {plural(state.pending_drafts, 'logged draft')} not in the sheet yet; `loop sync` writes them.")
    for other in state.elsewhere:
        click.echo(f"Pending for {other.location}: {plural(other.pending, 'draft')} (`loop sync --sheet "
                   f"{other.location}` writes them).")
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


@main.command(short_help="Log drafts (JSON lines on stdin, or flags); prints trace ids.")
@click.option("--ticket", help="The customer's message (instead of JSON on stdin).")
@click.option("--draft", "draft_text", help="The reply your agent drafted.")
@click.option("--ticket-id", default="", help="Your ticket system's id for the ticket.")
@click.option("--thread", default="", help="The earlier messages of the conversation, oldest first.")
@click.option("--kb-sources", default="", help="Knowledge-base documents used, comma-separated.")
@click.option("--prompt-version", default="", help="Defaults to the managed prompt's current version.")
@common
def log(workspace, ticket, draft_text, ticket_id, thread, kb_sources, prompt_version):
    """Log drafts: JSON objects on stdin, one a line (or --ticket and --draft); prints the trace ids."""
    from . import traces

    if ticket or draft_text:
        records = [{"ticket": ticket, "draft": draft_text, "ticket_id": ticket_id, "thread": thread,
                    "kb_sources": kb_sources, "prompt_version": prompt_version}]
    else:
        records = traces.read_json_lines(_stdin_lines())
    for trace_id in traces.log_drafts(records, workspace):
        click.echo(trace_id)


def _stdin_lines():
    """Standard input as text lines; bytes that are not UTF-8 are a usage error, not a traceback."""
    from .errors import UsageError

    for number, raw in enumerate(sys.stdin.buffer, start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            raise UsageError(f"line {number} is not UTF-8 (byte {error.start}); send UTF-8 text.") from None


@main.command(short_help="Deliver logged drafts still waiting for their sheet.")
@click.option("--watch", type=click.FloatRange(min=0.1), metavar="SECONDS",
              help="Keep delivering, every SECONDS, until stopped (one service for a fleet of agent hosts).")
@common
def sync(workspace, watch):
    """Write to the sheet every logged draft that is still waiting for it (the workbook was open in
    Excel, locked, or unreachable when it was logged). With --watch, go on until stopped."""
    from .store import outbox

    if watch is None:
        delivered = outbox.sync(workspace)
        click.echo(f"Wrote {plural(delivered, 'pending draft')} to {workspace.settings.sheet}." if delivered
                   else "No pending drafts: the sheet has every logged draft.")
        return
    click.echo(f"Delivering drafts from {workspace.store.shown} to {workspace.settings.sheet} every {watch:g} s; "
               "Ctrl-C stops.", err=True)
    outbox.watch(workspace, watch)


@main.command(short_help="Take old reviewed drafts out of the Drafts tab; the store keeps them.")
@click.option("--older-than", "older_than", required=True, help="Age of the drafts to take out: 90d, 12w, or a date.")
@common
def archive(workspace, older_than):
    """Take reviewed drafts created before the cut-off out of the Drafts tab, in one write, once the
    store holds each with the review the sheet shows. Unreviewed drafts stay. `loop report` and
    `loop improve --since` still count them."""
    from .archive import archive as archive_drafts

    result = archive_drafts(workspace, older_than)
    click.echo(f"Archived {plural(result.archived, 'reviewed draft')} created before {result.cutoff:%Y-%m-%d}; "
               f"the {workspace.settings.sheet} Drafts tab now holds {plural(result.left, 'draft')} "
               f"and the store {plural(result.in_store, 'archived draft')}.")
    if result.unreviewed:
        click.echo(f"Kept {plural(result.unreviewed, 'unreviewed draft')} older than that: they wait for a review.")
    for trace_id in result.mismatched[:SHOW_SKIPPED]:
        click.echo(f"kept {shown(trace_id)}: the store does not hold it with the review the sheet shows", err=True)


@main.command(short_help="Run the bundled support agent over tickets; log its drafts.")
@click.option("--tickets", type=click.Path(dir_okay=False),
              help="Tickets to answer: a .jsonl or .csv file. [default: the workbook's Tickets tab]")
@click.option("--kb", "kb_folder", help="Knowledge-base folder (.md/.txt files); one that is missing is an error. "
              "[env LOOP_KB; default kb, drafting without one (and saying so) when there is no kb/]")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 32), help="Tickets drafted at once.")
@click.option("--limit", type=click.IntRange(min=1), help="Draft at most this many tickets.")
@click.option("--replay", "replay_id", help="Draft a logged trace again and print it, without logging.")
@click.option("--candidate", type=click.Path(exists=True, dir_okay=False),
              help="With --replay: a candidate prompt file to draft with instead of the managed prompt.")
@click.option("--model", help="Model to call. [env LOOP_MODEL]")
@common
def draft(workspace, tickets, kb_folder, concurrency, limit, replay_id, candidate):
    """Run the bundled support agent over tickets and log its drafts."""
    from . import agent
    from .prompt_store import PromptStore

    if replay_id:
        prompt = PromptStore(candidate, setting="--candidate").read() if candidate else workspace.prompt.read()
        reply = agent.replay(workspace, replay_id, prompt, agent.bundled_kb(workspace.settings, kb_folder))
        click.echo(shown(reply.draft))
        return
    with progress("Drafting") as (start, done):
        drafted = agent.draft_tickets(workspace, tickets, kb_folder, concurrency=concurrency, limit=limit,
                                      on_start=start, on_done=done)
    click.echo(f"Logged {plural(len(drafted.trace_ids), 'draft')} to {workspace.settings.sheet}; "
               f"{plural(workspace.model.usage.calls, 'model call')}. Reviewers can score them now (or run `loop judge`).")
    if drafted.failed:  # the others are logged; the exit code says a ticket failed
        click.echo(f"error: {shown(drafted.failure_text())}", err=True)
        sys.exit(1)


@main.command(short_help="Pre-score unreviewed drafts with an LLM judge.")
@click.option("--limit", type=click.IntRange(min=1), help="Judge at most this many drafts.")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 32), help="Drafts judged at once.")
@click.option("--model", help="Model to call. [env LOOP_MODEL]")
@common
def judge(workspace, limit, concurrency):
    """Pre-score drafts nobody has reviewed into judge_score and judge_comment (prompts/judge.md)."""
    from . import judge as judge_module

    with progress("Judging") as (start, done):
        report = judge_module.judge(workspace, limit=limit, concurrency=concurrency, on_start=start, on_done=done)
    if not report.verdicts:
        click.echo("No unreviewed drafts to judge.")
        return
    downs = sum(v.score == "down" for v in report.verdicts.values())
    click.echo(f"Judged {len(report.verdicts)} of {plural(report.waiting, 'unreviewed draft')} with rubric "
               f"{report.rubric_version}: {len(report.verdicts) - downs} up, {downs} down. "
               "A person's score still wins; `loop improve --include-judge` counts these.")
