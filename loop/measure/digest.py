"""The digest: a few lines posted to a Slack-compatible incoming webhook after `improve` and
`report`, so a team hears about the week's run where it already talks.

Everything in it is also in the sheet, so a post that fails (a dead webhook, a timeout, a URL that
does not parse) is a warning and never fails the run. The warning names the webhook by its host
only: its path is the secret. The post has a total deadline of TIMEOUT seconds, from connecting to
the last header of the answer (its body is not read), so a webhook that trickles its answer a byte at
a time cannot hold the run. Text from reviewers and the model (pattern names) is escaped the way
Slack asks (`&`, `<`, `>`), so it can never become a mention or a link.
"""

from __future__ import annotations

import logging
import threading

import requests

from loop.improver.edits import edit_name
from loop.redact import webhook_host

log = logging.getLogger("loop")
TIMEOUT = 10.0  # seconds, for the whole post


def post(url: str, text: str, timeout: float | None = None) -> bool:
    """POST {"text": text} as JSON; True when the webhook took it within `timeout` seconds in all.

    The request runs in a daemon thread that is given up on at the deadline (a thread blocked in a
    read cannot be stopped, and it ends with the process); the answer's body is never waited for."""
    timeout = TIMEOUT if timeout is None else timeout
    outcome: list = []

    def send() -> None:
        try:
            with requests.post(url, json={"text": text}, timeout=timeout, stream=True) as answer:
                answer.raise_for_status()
            outcome.append(None)
        except Exception as error:  # noqa: BLE001 - any failure at all is a warning, whatever the URL
            outcome.append(error)

    worker = threading.Thread(target=send, name="loop-notify", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        problem = f"no answer within {timeout:g} s"
    elif outcome[0] is not None:
        problem = _reason(outcome[0])
    else:
        return True
    log.warning("The digest was not posted to %s (%s); the run itself is done.", webhook_host(url), problem)
    return False


def improve_digest(run, newest, link: str) -> str:
    """After `loop improve`: patterns, edits proposed, replay figures, the newest version's 👍 rate."""
    lines = [f"*loop improve*: {len(run.window.failures)} failures since {run.window.since:%Y-%m-%d}, "
             f"{len(run.patterns)} patterns, {len(run.proposed)} edits proposed, {len(run.rejected)} rejected."]
    lines += [f"• {pattern.count} × {escape(pattern.name)}" for pattern in run.patterns[:8]]
    if run.replay:
        for edit in run.proposed:
            figures = run.replay.figures(edit.edit_id)
            if figures:
                cells = figures.cells()
                lines.append(f"• {escape(edit_name(edit))}: fixed {cells['fixed_cited']} cited, "
                             f"{cells['fixed_held_out']} held out; regressed {cells['regressed']}")
    lines.append(rate_line(newest))
    lines.append(f"Tick the edits to ship in {escape(run.edits_tab)}: {link}")
    return "\n".join(lines)


def report_digest(found, link: str) -> str:
    """After `loop report`: the newest version's 👍 rate and change, each applied edit's verdict, any warning."""
    lines = ["*loop report*", rate_line(found.versions[-1] if found.versions else None)]
    reviewed = [v for v in found.versions if v.reviewed]
    if len(reviewed) >= 2 and reviewed[-1].change is not None:
        newest = reviewed[-1]
        lines.append(f"Change from {reviewed[-2].version}: {newest.change * 100:+.1f} points ({newest.verdict}).")
    for edit in found.edits[-5:]:
        lines.append(f"• {escape(edit_name(edit))}: {edit.verdict}")
    if found.warning:
        lines.append(f"⚠ {escape(found.warning)}")
    if found.canary:
        lines.append(("⛔ " if found.canary.stopped else "") + escape(found.canary.summary))
    lines.append(f"Dashboard: {link}")
    return "\n".join(lines)


def rate_line(version) -> str:
    if version is None:
        return "No prompt version has drafts yet."
    if not version.reviewed:
        return f"Newest prompt version {version.version}: no reviews yet."
    return (f"Newest prompt version {version.version}: 👍 {version.rate:.0%} of {version.reviewed} reviewed "
            f"(95% interval {version.low:.0%}–{version.high:.0%}).")


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _reason(error: Exception) -> str:
    """What went wrong, without the error's text: it may quote the URL, path and password included."""
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return f"HTTP {error.response.status_code}"
    if isinstance(error, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                          requests.exceptions.InvalidSchema, ValueError)):
        return f"the URL is not a usable http(s) URL: {type(error).__name__}"
    return type(error).__name__
