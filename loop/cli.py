"""The `loop` command: parses options, calls the library, prints. Errors become one or two lines."""

from __future__ import annotations

import functools
from contextlib import ExitStack
import sys

import click

from . import agent, approval, config, improver, judge as judge_module, setup, traces
from . import status as status_module
from .errors import LoopError
from .kb import KnowledgeBase
from .model import ModelClient
from .prompt_store import PromptStore
SHOW_SKIPPED = 20
from .sheets import google_auth

def _warn(message: str) -> None:
    click.echo(message, err=True)


def common(command):
    """Options every command shares, resolved once into Settings."""

    @click.option("--sheet", help="A local .xlsx path, or a Google Sheets URL or key. [env LOOP_SHEET; default loop.xlsx]")
    @click.option("--prompt", help="The managed prompt file. [env LOOP_PROMPT; default prompts/support_agent.md]")
    @click.option("--credentials", type=click.Path(dir_okay=False),
                  help="Google service-account key file. [env GOOGLE_APPLICATION_CREDENTIALS]")
    @click.option("--debug", is_flag=True, help="Show a traceback on errors.")
    @functools.wraps(command)
    def wrapper(sheet, prompt, credentials, debug, **options):
        try:
            settings = config.resolve(
                sheet=sheet, prompt=prompt, credentials=credentials, model=options.pop("model", None),
                max_input_tokens=options.pop("max_input_tokens", None),
                max_edit_chars=options.pop("max_edit_chars", None),
            )
            return command(settings=settings, **options)
        except LoopError as error:
            if debug:
                raise
            click.echo(f"error: {error}", err=True)
            sys.exit(error.exit_code)
        except OSError as error:  # disk full, permission denied: nothing was half-written
            if debug:
                raise
            click.echo(f"error: {error.strerror or error} ({error.filename or 'a file'}); fix it and run again.", err=True)
            sys.exit(1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """Improve a support agent's prompt from reviewers' scores and comments."""


@main.command()
@click.option("--force", is_flag=True, help="Replace an existing local workbook.")
@common
def init(settings, force):
    """Create the workbook (or add the Drafts and Runs tabs to a Google Sheet), and a starter prompt."""
    for line in setup.init(settings, force=force, warn=_warn):
        click.echo(line)


@main.command()
@click.option("--client-secret", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The OAuth client file (Desktop app) downloaded from Google Cloud.")
def auth(client_secret):
    """Sign in with your own Google account, for sheets shared with you rather than a service account."""
    try:
        token = google_auth.authorize(client_secret)
    except LoopError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(error.exit_code)
    click.echo(f"Signed in; the token is kept in {token}. Set LOOP_SHEET to your sheet's URL and run `loop init`.")


@main.command()
@click.option("--since", default="14d", show_default=True, help="Review window: 14d, 2w, 36h or a date.")
@click.option("--include-judge", is_flag=True, help="Count LLM judge scores on drafts no person scored.")
@click.option("--model", help="Model to call. [env LOOP_MODEL]")
@click.option("--max-input-tokens", type=click.IntRange(min=1), help="Most input tokens per request. [env LOOP_MAX_INPUT_TOKENS]")
@click.option("--max-edit-chars", type=click.IntRange(min=1), help="Largest change one edit may make. [env LOOP_MAX_EDIT_CHARS]")
@common
def improve(settings, since, include_judge):
    """Propose prompt edits from the failures of the review window, in a new Edits tab."""
    report = improver.improve(settings, since=since, include_judge=include_judge, warn=_warn)
    for skipped in report.skipped[:SHOW_SKIPPED]:
        click.echo(f"skipped {skipped}", err=True)
    if len(report.skipped) > SHOW_SKIPPED:
        click.echo(f"skipped {len(report.skipped) - SHOW_SKIPPED} more unreadable rows (`loop status` counts them)", err=True)
    window = report.window
    if not window.failures:
        what = "reviewed drafts" if not (window.successes) else "failures (every reviewed draft was scored up)"
        click.echo(f"No {what} since {window.since:%Y-%m-%d %H:%M} UTC: nothing to improve.")
        return
    click.echo(
        f"{len(window.drafts)} drafts since {window.since:%Y-%m-%d}: "
        f"{len(window.failures)} failures, {len(window.successes)} successes."
    )
    click.echo("Failure patterns:")
    for pattern in report.patterns:
        click.echo(f"  {pattern.count:4d}  {pattern.name}")
    click.echo(f"Edits: {len(report.proposed)} proposed, {len(report.rejected)} rejected.")
    for edit in report.rejected:
        click.echo(f"  rejected {edit.edit_id}: {edit.check}")
    usage = report.usage
    click.echo(f"Model: {usage.calls} calls, {usage.input_tokens} input and {usage.output_tokens} output tokens.")
    click.echo(f"Wrote tab {report.edits_tab!r} to {settings.sheet}: tick `approve` on the edits you want, then run `loop apply`.")


@main.command()
@common
def apply(settings):
    """Apply the ticked edits as one new prompt version."""
    report = approval.apply(settings, warn=_warn)
    for item in report.stale:
        click.echo(f"stale {item.edit.edit_id}: {item.edit.check}")
    for item in report.already_applied:
        click.echo(f"{item.edit.edit_id} was already in {item.edit.applied_version}: marked applied")
    if report.applied:
        click.echo(
            f"Applied {len(report.applied)} edit(s) to {settings.prompt}: "
            f"{report.previous.label} → {report.version.label}. Undo with `loop rollback`."
        )
    elif not (report.stale or report.already_applied):
        click.echo(f"No ticked edits to apply; {settings.prompt} stays at {report.version.label}.")


@main.command()
@common
def rollback(settings):
    """Restore the prompt version before the current one."""
    rolled_back, restored = approval.rollback(settings)
    click.echo(f"Rolled {settings.prompt} back from {rolled_back.label} to {restored.label}.")


@main.command()
@click.option("--since", default="14d", show_default=True, help="Review window for the counts.")
@common
def status(settings, since):
    """What is pending: unreviewed drafts, proposed and approved edits, the prompt version."""
    state = status_module.status(settings, since)
    recent = state.recent
    click.echo(f"Drafts: {len(state.drafts)} in all; since {state.since:%Y-%m-%d}: {len(recent)}, of which "
               f"{sum(d.score is None for d in recent)} unreviewed, {sum(d.is_failure for d in recent)} failures, "
               f"{sum(d.is_success for d in recent)} successes.")
    if state.skipped:
        click.echo(f"Unreadable rows: {len(state.skipped)} (first: {state.skipped[0]})")
    summary = ", ".join(f"{count} {name}" for name, count in sorted(state.edits.items())) or "none"
    click.echo(f"Edits ({len(state.edit_tabs)} tabs): {summary}.")
    if not state.prompt_exists:
        click.echo(f"Prompt: {settings.prompt} does not exist.")
    elif state.version is None:
        click.echo(f"Prompt: {settings.prompt}, not versioned yet (the next improve or apply records it as v1).")
    else:
        extra = " plus unrecorded hand edits" if state.hand_edited else ""
        click.echo(f"Prompt: {settings.prompt} at {state.version.label}{extra}.")


@main.command()
@click.option("--ticket", help="The customer's message (instead of JSON on stdin).")
@click.option("--draft", "draft_text", help="The reply your agent drafted.")
@click.option("--ticket-id", default="")
@click.option("--thread", default="")
@click.option("--kb-sources", default="", help="Knowledge-base documents used, comma-separated.")
@click.option("--prompt-version", default="", help="Defaults to the managed prompt's current version.")
@common
def log(settings, ticket, draft_text, ticket_id, thread, kb_sources, prompt_version):
    """Log drafts: JSON objects on stdin, one a line (or --ticket and --draft); prints the trace ids."""
    if ticket or draft_text:
        records = [{"ticket": ticket, "draft": draft_text, "ticket_id": ticket_id, "thread": thread,
                    "kb_sources": kb_sources, "prompt_version": prompt_version}]
    else:
        records = traces.read_json_lines(sys.stdin)
    for trace_id in traces.log_drafts(records, settings):
        click.echo(trace_id)


@main.command()
@click.option("--tickets", type=click.Path(dir_okay=False),
              help="Tickets to answer: a .jsonl or .csv file. [default: the workbook's Tickets tab]")
@click.option("--kb", "kb_folder", default="kb", show_default=True, help="Knowledge-base folder (.md/.txt files).")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 32))
@click.option("--limit", type=click.IntRange(min=1), help="Draft at most this many tickets.")
@click.option("--replay", "replay_id", help="Draft a logged trace again and print it, without logging.")
@click.option("--candidate", type=click.Path(exists=True, dir_okay=False),
              help="With --replay: a candidate prompt file to draft with instead of the managed prompt.")
@click.option("--model", help="Model to call. [env LOOP_MODEL]")
@common
def draft(settings, tickets, kb_folder, concurrency, limit, replay_id, candidate):
    """Run the bundled support agent over tickets and log its drafts."""
    knowledge = KnowledgeBase(kb_folder)
    prompt = PromptStore(settings.prompt).read()
    if replay_id:
        text = open(candidate, encoding="utf-8").read() if candidate else prompt
        reply = agent.replay(settings, replay_id, text, knowledge)
        click.echo(reply.draft)
        return
    batch = agent.find_tickets(settings, tickets)[:limit]
    model = ModelClient(settings)
    with click.progressbar(length=len(batch), label="Drafting", file=sys.stderr) as bar:
        replies = agent.draft_all(model, knowledge, prompt, batch, concurrency, on_done=lambda: bar.update(1))
    ids = traces.log_drafts([{"ticket": r.ticket.ticket, "ticket_id": r.ticket.ticket_id, "thread": r.ticket.thread,
                              "draft": r.draft, "kb_sources": r.sources} for r in replies], settings)
    click.echo(f"Logged {len(ids)} drafts to {settings.sheet}; {model.usage.calls} model calls. "
               "Reviewers can score them now (or run `loop judge`).")


@main.command()
@click.option("--limit", type=click.IntRange(min=1), help="Judge at most this many drafts.")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 32))
@click.option("--model", help="Model to call. [env LOOP_MODEL]")
@common
def judge(settings, limit, concurrency):
    """Pre-score drafts nobody has reviewed into judge_score and judge_comment (prompts/judge.md)."""
    with ExitStack() as stack:
        bar = []

        def start(total):
            bar.append(stack.enter_context(click.progressbar(length=total, label="Judging", file=sys.stderr)))

        report = judge_module.judge(settings, limit=limit, concurrency=concurrency, on_start=start,
                                    on_done=lambda: bar[0].update(1))
    if not report.verdicts:
        click.echo("No unreviewed drafts to judge.")
        return
    downs = sum(v.score == "down" for v in report.verdicts.values())
    click.echo(f"Judged {len(report.verdicts)} of {report.waiting} unreviewed drafts with rubric "
               f"{report.rubric_version}: {len(report.verdicts) - downs} up, {downs} down. "
               "A person's score still wins; `loop improve --include-judge` counts these.")
