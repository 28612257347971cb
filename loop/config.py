"""Configuration, resolved once: flags beat environment variables, which beat defaults."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from loop.errors import UsageError

DEFAULT_SHEET = "loop.xlsx"
DEFAULT_PROMPT = "prompts/support_agent.md"
DEFAULT_JUDGE_PROMPT = "prompts/judge.md"
DEFAULT_KB = "kb"
# Model calls one replay check may make: about 8 edits tried on 13 cases each, with the bundled agent.
DEFAULT_CHECK_BUDGET = 800
DEFAULT_MODEL = "gpt-4.1"
# Small enough for most local servers' context windows (llama.cpp and Ollama often run 8k-32k).
DEFAULT_MAX_INPUT_TOKENS = 12_000
# The largest change one edit may make, in characters removed plus characters added.
DEFAULT_MAX_EDIT_CHARS = 600
# The largest share of the prompt one edit may remove or rewrite, so a short prompt is never
# replaced whole by one "minimal" edit.
DEFAULT_MAX_EDIT_SHARE = 0.25


def _env_number(name: str, default: float, minimum: float = 1, kind: type = int, maximum: float | None = None):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not a {'whole ' if kind is int else ''}number; set it to e.g. {default}.") from None
    if not math.isfinite(value) or value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise UsageError(f"{name} must be {bounds}; set it to e.g. {default}.")
    return value


@dataclass(frozen=True)
class Settings:
    sheet: str = DEFAULT_SHEET
    prompt: Path = Path(DEFAULT_PROMPT)
    model: str = DEFAULT_MODEL
    max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS
    max_edit_chars: int = DEFAULT_MAX_EDIT_CHARS
    max_edit_share: float = DEFAULT_MAX_EDIT_SHARE
    judge_prompt: Path = Path(DEFAULT_JUDGE_PROMPT)
    # the prompt's name in the store (LOOP_PROMPT_NAME); None means the prompt file's name
    prompt_name: str | None = None
    # seconds `loop.prompt` serves a cached version before asking the store again
    prompt_ttl: float = 60.0
    # the store's URL (CONTRACT §7a); None means SQLite loop.db beside a local workbook, or in the
    # current folder for a Google Sheet
    store: str | None = None
    # where an earlier release kept its trace archive (LOOP_TRACES), read only to import what it holds
    legacy_traces: Path | None = None
    # the replay check: the agent that re-drafts (None: the bundled one), its knowledge base, the cases
    # tried per edit, and the most model calls a replay may make
    agent: str | None = None
    kb: Path = Path(DEFAULT_KB)
    kb_named: bool = False  # LOOP_KB (or --kb) named the folder: one that is missing is an error, not "no KB"
    replay_cited: int = 5
    replay_held_out: int = 3
    replay_successes: int = 5
    check_budget: int | None = DEFAULT_CHECK_BUDGET
    # openai client settings; the client itself retries 429/5xx/timeouts with backoff.
    max_retries: int = 3
    timeout: float = 120.0
    # a Google service-account key file; None means GOOGLE_APPLICATION_CREDENTIALS, then `loop auth`, then ADC
    credentials: str | None = None
    # a Slack-compatible incoming webhook for the digest after improve and report
    notify_url: str | None = None


def resolve(
    sheet: str | None = None,
    prompt: str | None = None,
    model: str | None = None,
    max_input_tokens: int | None = None,
    max_edit_chars: int | None = None,
    credentials: str | None = None,
    max_edit_share: float | None = None,
    check_budget: int | None = None,
    notify_url: str | None = None,
    store: str | None = None,
) -> Settings:
    """Build Settings from flags (non-None arguments), then the environment, then defaults."""
    env = os.environ
    return Settings(
        sheet=sheet or env.get("LOOP_SHEET") or DEFAULT_SHEET,
        prompt=Path(prompt or env.get("LOOP_PROMPT") or DEFAULT_PROMPT),
        model=model or env.get("LOOP_MODEL") or DEFAULT_MODEL,
        max_input_tokens=max_input_tokens or _env_number("LOOP_MAX_INPUT_TOKENS", DEFAULT_MAX_INPUT_TOKENS),
        max_edit_chars=max_edit_chars or _env_number("LOOP_MAX_EDIT_CHARS", DEFAULT_MAX_EDIT_CHARS),
        max_edit_share=max_edit_share or _env_number("LOOP_MAX_EDIT_SHARE", DEFAULT_MAX_EDIT_SHARE, minimum=0.01,
                                                     kind=float, maximum=1),
        judge_prompt=Path(env.get("LOOP_JUDGE_PROMPT") or DEFAULT_JUDGE_PROMPT),
        prompt_name=env.get("LOOP_PROMPT_NAME", "").strip() or None,
        prompt_ttl=_env_number("LOOP_PROMPT_TTL", 60.0, minimum=0.01, kind=float, maximum=86400),
        store=store or env.get("LOOP_STORE") or None,
        legacy_traces=Path(env["LOOP_TRACES"]) if env.get("LOOP_TRACES", "").strip() else None,
        agent=env.get("LOOP_AGENT") or None,
        kb=Path(env.get("LOOP_KB") or DEFAULT_KB),
        kb_named=bool(env.get("LOOP_KB")),
        replay_cited=_env_number("LOOP_REPLAY_CITED", 5, minimum=1),
        replay_held_out=_env_number("LOOP_REPLAY_HELD_OUT", 3, minimum=0),
        replay_successes=_env_number("LOOP_REPLAY_SUCCESSES", 5, minimum=0),
        check_budget=check_budget or _env_number("LOOP_CHECK_BUDGET", DEFAULT_CHECK_BUDGET, minimum=1),
        max_retries=_env_number("LOOP_MAX_RETRIES", 3, minimum=0),
        timeout=_env_number("LOOP_TIMEOUT", 120.0, minimum=0.1, kind=float),
        credentials=credentials,
        notify_url=notify_url or env.get("LOOP_NOTIFY_URL") or None,
    )
