"""A canary's life after `loop apply --canary`: promoted by a person, or stopped (by a person, a tick
in the Rollout tab, or the guardrail). Nothing here ever promotes on its own."""

from __future__ import annotations

import re

from loop.config import Settings
from loop.errors import UsageError
from loop.prompt_store import Promotion
from loop.store.prompts import STOPPED, Canary
from loop.workspace import Workspace


def parse_share(text: str, option: str = "--canary") -> float:
    """A share of units from `10%` or `10` (percent), as a fraction: more than 0, less than 100%."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*%?\s*", str(text))
    value = float(found.group(1)) if found else None
    if value is None or not 0 < value < 100:
        raise UsageError(f"{option} {text!r} is not a share of tickets; give a percentage above 0 and below 100, "
                         f"e.g. {option} 10%.")
    return value / 100


def percent(share: float) -> str:
    """A share as people write it: 0.1 → "10%", 0.125 → "12.5%"."""
    return f"{share * 100:g}%"


def promote(where: Settings | Workspace, to: float | None = None, who: str | None = None) -> Promotion:
    """Make the running canary current for everyone (the prompt file written here), or raise its
    share to `to` (only upward)."""
    workspace = Workspace.of(where)
    workspace.prompt.ensure_writable()
    return workspace.prompt.promote(to, who)


def stop(where: Settings | Workspace, reason: str, who: str | None = None) -> Canary | None:
    """End the running canary with `reason` (share 0; the current version keeps serving, the file is
    unchanged). None when none runs; two hosts stopping at once stop it once."""
    workspace = Workspace.of(where)
    return workspace.prompt.records.stop_canary(reason, who, STOPPED)
