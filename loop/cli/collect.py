"""The commands that collect drafts: `init`, `auth`, `log`, `sync`, `serve`, `archive`, `draft`, `judge`."""

from __future__ import annotations

import sys

import click

from loop.cell_values import shown
from loop.cli.edge import SHOW_SKIPPED, run_at_edge, common, plural, progress


@click.command(short_help="Create the workbook, a starter prompt and a judge rubric.")
@click.option("--force", is_flag=True, help="Replace an existing local workbook.")
@common
def init(workspace, force):
    """Create the workbook (or add the Drafts and Runs tabs to a Google Sheet), and a starter prompt
    and judge rubric where there are none."""
    from loop.collect import workbook_setup

    for line in workbook_setup.init(workspace, force=force):
        click.echo(line)


@click.command(short_help="Sign in with your own Google account.")
@click.option("--client-secret", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The OAuth client file (Desktop app) downloaded from Google Cloud.")
@click.option("--debug", is_flag=True, help="Show a traceback on errors.")
def auth(client_secret, debug):
    """Sign in with your own Google account, for sheets shared with you rather than a service account."""
    from loop.sheets import google_auth

    token = run_at_edge(google_auth.authorize, debug, client_secret)
    click.echo(f"Signed in; the token is kept in {token}. Set LOOP_SHEET to your sheet's URL and run `loop init`.")


@click.command(short_help="Log drafts (JSON lines on stdin, or flags); prints trace ids.")
@click.option("--ticket", help="The customer's message (instead of JSON on stdin).")
@click.option("--draft", "draft_text", help="The reply your agent drafted.")
@click.option("--ticket-id", default="", help="Your ticket system's id for the ticket.")
@click.option("--thread", default="", help="The earlier messages of the conversation, oldest first.")
@click.option("--kb-sources", default="", help="Knowledge-base documents used, comma-separated.")
@click.option("--prompt-version", default="", help="Defaults to the managed prompt's current version.")
@common
def log(workspace, ticket, draft_text, ticket_id, thread, kb_sources, prompt_version):
    """Log drafts: JSON objects on stdin, one a line (or --ticket and --draft); prints the trace ids."""
    from loop.collect import traces

    if ticket or draft_text:
        records = [{"ticket": ticket, "draft": draft_text, "ticket_id": ticket_id, "thread": thread,
                    "kb_sources": kb_sources, "prompt_version": prompt_version}]
    else:
        records = traces.read_json_lines(_stdin_lines())
    traces.log_drafts(records, workspace, on_commit=_print_ids)


def _print_ids(trace_ids: list[str]) -> None:
    """The ids, out the moment their drafts are committed, before the delivery: an id is printed if and
    only if its draft is kept, even if the command is stopped while it waits for the sheet."""
    for trace_id in trace_ids:
        click.echo(trace_id)
    sys.stdout.flush()


def _stdin_lines():
    """Standard input as text lines; bytes that are not UTF-8 are a usage error, not a traceback."""
    from loop.errors import UsageError

    for number, raw in enumerate(sys.stdin.buffer, start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            raise UsageError(f"line {number} is not UTF-8 (byte {error.start}); send UTF-8 text.") from None


@click.command(short_help="Deliver logged drafts still waiting for their sheet.")
@click.option("--watch", type=click.FloatRange(min=0.1), metavar="SECONDS",
              help="Keep delivering, every SECONDS, until stopped (one service for a fleet of agent hosts).")
@click.option("--workbook", "number", type=click.IntRange(min=1), metavar="NUMBER",
              help="Deliver the drafts waiting for the store's workbook NUMBER (`loop status` names it), wherever "
                   "this runs; with --sheet, to that file.")
@click.option("--restore-deleted", is_flag=True,
              help="First put back the drafts whose rows a person deleted from the sheet (all, or the TRACE_IDs named).")
@click.argument("trace_ids", nargs=-1, metavar="[TRACE_ID]...")
@common
def sync(workspace, watch, number, restore_deleted, trace_ids):
    """Write to the sheet every logged draft that is still waiting for it (the workbook was open in
    Excel, locked, or unreachable when it was logged). With --watch, go on until stopped. With
    --restore-deleted, first put back drafts whose rows a person deleted, with their reviews."""
    from click.core import ParameterSource

    from loop.store import outbox

    if number is not None:
        named = click.get_current_context().get_parameter_source("sheet") == ParameterSource.COMMANDLINE
        workspace = workspace.stored_workbook(number, workspace.settings.sheet if named else None)
    if restore_deleted or trace_ids:
        _restore_deleted(workspace, restore_deleted, trace_ids)
    if watch is None:
        delivered = outbox.sync(workspace)
        if delivered:
            click.echo(f"Wrote {plural(delivered, 'pending draft')} to {workspace.settings.sheet}.")
            return
        click.echo("No pending drafts: the sheet has every logged draft.")
        others = sum(c.pending for c in workspace.store.counts() if c.identity != workspace.traces.identity)
        if others:
            click.echo(f"{plural(others, 'draft')} in the store {'waits' if others == 1 else 'wait'} for other "
                       "workbooks; `loop status` names them, with the command that writes them.")
        return
    from loop.redact import mask_url
    from loop.sheets.base import is_google
    from loop.store import default_url

    store = workspace.settings.store or default_url(workspace.settings.sheet, is_google(workspace.settings.sheet))
    click.echo(f"Delivering drafts from {mask_url(store)} to {workspace.settings.sheet} every {watch:g} s; "
               "Ctrl-C stops.", err=True)
    from loop.measure.report import watch_round

    outbox.watch(workspace, watch, also=watch_round)


def _restore_deleted(workspace, asked: bool, trace_ids) -> None:
    """Deleted drafts (all, or those named) made to wait for the sheet again; the sync then writes them."""
    from loop.errors import UsageError

    if not asked:
        raise UsageError("Trace ids go with --restore-deleted: loop sync --restore-deleted TRACE_ID…")
    restored = workspace.traces.restore_deleted(list(trace_ids) or None)
    for trace_id in [t for t in dict.fromkeys(trace_ids) if t not in set(restored)][:SHOW_SKIPPED]:
        click.echo(f"not restored {shown(trace_id)}: the store holds no deleted draft of this workbook with that id",
                   err=True)
    click.echo(f"Restored {plural(len(restored), 'deleted draft')}; they go back to the sheet with their reviews.")


@click.command(short_help="Receive OpenTelemetry traces (OTLP/HTTP); agent spans become drafts.")
@click.option("--listen", default="127.0.0.1:4318", show_default=True, metavar="HOST:PORT",
              help="Where to receive POST /v1/traces. Beyond loopback only with LOOP_OTLP_TOKEN set.")
@common
def serve(workspace, listen):
    """Receive OTLP/HTTP traces (protobuf or JSON, gzip) from an instrumented agent: its answers
    become drafts, committed to the store and delivered to the sheet. Runs until stopped."""
    from loop.collect import receiver

    def ready(address):
        click.echo(f"Receiving OTLP traces on http://{listen.rpartition(':')[0]}:{address[1]}/v1/traces into "
                   f"{workspace.store.shown}, for {workspace.settings.sheet}; Ctrl-C stops.", err=True)

    receiver.serve(workspace.settings, listen, ready)


TOOLS = ("phoenix", "langfuse", "langsmith")


def _adapter(tool: str):
    if tool == "phoenix":
        from loop.collect.phoenix import Phoenix

        return Phoenix()
    if tool == "langfuse":
        from loop.collect.langfuse import Langfuse

        return Langfuse()
    from loop.collect.langsmith import LangSmith

    return LangSmith()


@click.command("import", short_help="Pull traces and the scores people gave them from a tracing tool.")
@click.argument("tool", type=click.Choice(TOOLS))
@click.option("--since", default="14d", show_default=True,
              help="The window: 14d, 2w, 36h or a date. A later run resumes where the last one ended.")
@common
def import_command(workspace, tool, since):
    """Pull the agent's traces from Phoenix, Langfuse or LangSmith as drafts, with the scores people
    gave them as reviews (automated scores as judge scores); running it again doubles nothing."""
    from loop.collect import tracing_tools

    report = tracing_tools.import_from(_adapter(tool), workspace, since)
    for reason in report.refused[:SHOW_SKIPPED]:
        click.echo(f"not imported: {shown(reason)}", err=True)
    kept = (f"; {plural(report.kept, 'review')} changed there kept as reviewed here" if report.kept else "")
    click.echo(f"Imported {plural(report.drafts, 'new draft')} from {tool} ({report.known} already here), "
               f"{plural(report.reviews, 'review')}, {plural(report.judged, 'judge score')}{kept}.")


@click.command("export", short_help="Send the sheet's reviews back to the tracing tool as human feedback.")
@click.argument("tool", type=click.Choice(TOOLS))
@click.option("--since", default="14d", show_default=True, help="Reviews of drafts created in this window.")
@common
def export_command(workspace, tool, since):
    """Send each person's review of a draft that came from Phoenix, Langfuse or LangSmith back to it,
    on the same trace, as its human feedback; a review changed later updates it there."""
    from loop.collect import tracing_tools

    sent, same = tracing_tools.export_to(_adapter(tool), workspace, since)
    click.echo(f"Sent {plural(sent, 'review')} to {tool}; {same} already there.")


@click.command(short_help="Take old reviewed drafts out of the Drafts tab; the store keeps them.")
@click.option("--older-than", "older_than", required=True, help="Age of the drafts to take out: 90d, 12w, or a date.")
@common
def archive(workspace, older_than):
    """Take reviewed drafts created before the cut-off out of the Drafts tab, in one write, once the
    store holds each with the review the sheet shows. Unreviewed drafts stay. `loop report` and
    `loop improve --since` still count them."""
    from loop.collect.archive import archive as archive_drafts

    result = archive_drafts(workspace, older_than)
    click.echo(f"Archived {plural(result.archived, 'reviewed draft')} created before {result.cutoff:%Y-%m-%d}; "
               f"the {workspace.settings.sheet} Drafts tab now holds {plural(result.left, 'draft')} "
               f"and the store {plural(result.in_store, 'archived draft')}.")
    if result.unreviewed:
        click.echo(f"Kept {plural(result.unreviewed, 'unreviewed draft')} older than that: they wait for a review.")
    for trace_id in result.mismatched[:SHOW_SKIPPED]:
        click.echo(f"kept {shown(trace_id)}: the store does not hold it with the review the sheet shows", err=True)
    for trace_id in result.changed[:SHOW_SKIPPED]:
        click.echo(f"kept {shown(trace_id)}: it changed in the sheet while it was archived; its new review is in the "
                   "store, and the next `loop archive` takes it out", err=True)


@click.command(short_help="Run the bundled support agent over tickets; log its drafts.")
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
    from loop.collect import support_agent
    from loop.prompt_store import PromptStore

    if replay_id:
        prompt = PromptStore(candidate, setting="--candidate").read() if candidate else workspace.prompt.read()
        reply = support_agent.replay(workspace, replay_id, prompt, support_agent.bundled_kb(workspace.settings, kb_folder))
        click.echo(shown(reply.draft))
        return
    with progress("Drafting") as (start, done):
        drafted = support_agent.draft_tickets(workspace, tickets, kb_folder, concurrency=concurrency, limit=limit,
                                      on_start=start, on_done=done)
    click.echo(f"Logged {plural(len(drafted.trace_ids), 'draft')} to {workspace.settings.sheet}; "
               f"{plural(workspace.model.usage.calls, 'model call')}. Reviewers can score them now (or run `loop judge`).")
    if drafted.failed:  # the others are logged; the exit code says a ticket failed
        click.echo(f"error: {shown(drafted.failure_text())}", err=True)
        sys.exit(1)


@click.command(short_help="Pre-score unreviewed drafts with an LLM judge.")
@click.option("--limit", type=click.IntRange(min=1), help="Judge at most this many drafts.")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 32), help="Drafts judged at once.")
@click.option("--model", help="Model to call. [env LOOP_MODEL]")
@common
def judge(workspace, limit, concurrency):
    """Pre-score drafts nobody has reviewed into judge_score and judge_comment (prompts/judge.md)."""
    from loop.collect import judge as judge_module

    with progress("Judging") as (start, done):
        report = judge_module.judge(workspace, limit=limit, concurrency=concurrency, on_start=start, on_done=done)
    if not report.verdicts:
        click.echo("No unreviewed drafts to judge.")
        return
    downs = sum(v.score == "down" for v in report.verdicts.values())
    click.echo(f"Judged {len(report.verdicts)} of {plural(report.waiting, 'unreviewed draft')} with rubric "
               f"{report.rubric_version}: {len(report.verdicts) - downs} up, {downs} down. "
               "A person's score still wins; `loop improve --include-judge` counts these.")
