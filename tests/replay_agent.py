"""A user's own support agent, for the replay check's LOOP_AGENT: as a function, and as a command
(`python -m tests.replay_agent`, the ticket record and prompt as JSON on stdin, the draft on stdout).
It drafts the way the fake model's agent does, so the fake judge can tell edited prompts apart."""

from __future__ import annotations

import json
import re
import sys

CALLS: list[dict] = []


def draft(prompt: str, ticket: dict) -> str:
    CALLS.append({"prompt": prompt, **ticket})
    guards = re.findall(r"^- Guard against ([^:\n]+):", prompt, re.M)
    return f"Custom agent on {ticket['trace_id']}: " + "".join(f" [guarded: {g}]" for g in guards)


def failing(prompt: str, ticket: dict) -> str:
    raise ConnectionError("the help desk API is down")


if __name__ == "__main__":
    record = json.loads(sys.stdin.read())
    assert {"prompt", "ticket", "ticket_id", "thread", "trace_id"} <= set(record), record
    print(draft(record.pop("prompt"), record).replace("Custom agent", "Command agent"))
