"""Edit proposals: one request with the prompt, the patterns, example failures and a few successes."""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict

from loop import review_records
from loop.errors import UsageError
from loop.improver.edits import Edit
from loop.improver.patterns import Pattern
from loop.model import ModelClient, dumps_data
from loop.prompt_templates import data_room, messages
from loop.reviews import Draft

log = logging.getLogger(__name__)

MAX_EDITS = 8
EXAMPLES_PER_PATTERN = 3
SUCCESS_SAMPLE = 5
TRACE_IDS_PER_PATTERN = 25
EXAMPLE_CHARS = 2_400


class EditAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pattern: str
    find: str
    replace: str
    rationale: str
    evidence: list[str]


class PromptEdits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    edits: list[EditAnswer]


def sample_successes(successes: list[Draft], count: int = SUCCESS_SAMPLE) -> list[Draft]:
    """Evenly spaced over the window, newest first, so the contrast is not all from one day."""
    if count <= 0:  # LOOP_REPLAY_SUCCESSES=0: no successes replayed
        return []
    ordered = sorted(successes, key=lambda d: d.created_at, reverse=True)
    if len(ordered) <= count:
        return ordered
    step = len(ordered) / count
    return [ordered[int(i * step)] for i in range(count)]


def propose_edits(
    model: ModelClient,
    prompt: str,
    patterns: list[Pattern],
    failures: list[Draft],
    successes: list[Draft],
    max_edit_chars: int,
    run_id: str,
) -> list[Edit]:
    max_edits = min(MAX_EDITS, 2 * len(patterns))
    fixed = dict(prompt=prompt, max_edit_chars=max_edit_chars, max_edits=max_edits)
    room = data_room("propose_edits.j2", model.max_input_tokens, patterns="", failures="", successes="", **fixed)
    pattern_items = [
        {"pattern": p.name, "description": p.description, "count": p.count, "trace_ids": p.trace_ids[:TRACE_IDS_PER_PATTERN]}
        for p in patterns
    ]
    used = sum(review_records.size(item) for item in pattern_items)
    if used > room:
        raise UsageError(
            f"The prompt and patterns do not fit in LOOP_MAX_INPUT_TOKENS={model.max_input_tokens}; raise it."
        )
    by_id = {d.trace_id: d for d in failures}
    examples, contrast = [], []
    queues = [[by_id[t] for t in p.trace_ids[:EXAMPLES_PER_PATTERN] if t in by_id] for p in patterns]
    candidates = [q[i] for i in range(EXAMPLES_PER_PATTERN) for q in queues if i < len(q)]
    for draft, target in [(d, examples) for d in candidates] + [(d, contrast) for d in sample_successes(successes)]:
        item = review_records.record(draft, EXAMPLE_CHARS)
        if target is contrast:
            item = {"trace_id": item["trace_id"], "ticket": item.get("ticket", ""), "draft": item.get("draft", ""),
                    "comment": item.get("comment", "")}
        cost = review_records.size(item)
        if used + cost <= room:
            target.append(item)
            used += cost
    log.info("Proposing edits for %d pattern(s), with %d example failures and %d successes for contrast",
             len(patterns), len(examples), len(contrast))
    answer = model.ask(
        "prompt_edits",
        PromptEdits,
        messages(
            "propose_edits.j2",
            patterns=dumps_data(pattern_items),
            failures=dumps_data(examples),
            successes=dumps_data(contrast),
            **fixed,
        ),
    )
    return [
        Edit(
            edit_id=f"{run_id}-{index:02d}",
            pattern=item.pattern.strip(),
            find=item.find,
            replace=item.replace,
            rationale=item.rationale.strip(),
            evidence=list(dict.fromkeys(t.strip() for t in item.evidence if t.strip())),
        )
        for index, item in enumerate(answer.edits, start=1)
    ]
