"""Failure patterns: failures grouped in batches that fit the token budget, then merged.

Every failure in the window is sent to the model exactly once. Whatever the model answers, each
failure ends up in exactly one pattern: trace ids it invents are dropped, and failures it leaves
out are gathered in an "Other failures" pattern, so counts always add up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from loop import review_records
from loop.errors import UsageError
from loop.model import ModelClient, dumps_data
from loop.prompt_templates import data_room, messages
from loop.reviews import Draft

log = logging.getLogger(__name__)

UNASSIGNED = "Other failures"
MAX_MERGE_ROUNDS = 4


class PatternAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str
    trace_ids: list[str]


class FailurePatterns(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patterns: list[PatternAnswer]


class MergedPatternAnswer(PatternAnswer):
    merged_from: list[str]


class MergedFailurePatterns(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patterns: list[MergedPatternAnswer]


@dataclass
class Pattern:
    name: str
    description: str
    trace_ids: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.trace_ids)


MAX_KNOWN = 30  # earlier runs' pattern names offered for reuse


def known_patterns(drafts: list[Draft]) -> list[str]:
    """Names earlier runs gave to failure patterns (the Drafts `pattern` column), the most used first:
    offered to the model, so the same mistake keeps its name from week to week."""
    counts: dict[str, int] = {}
    for draft in drafts:
        if draft.pattern:
            counts[draft.pattern] = counts.get(draft.pattern, 0) + 1
    return sorted(counts, key=lambda name: (-counts[name], name))[:MAX_KNOWN]


def batches(failures: list[Draft], budget_tokens: int, known: list[str] = ()) -> list[list[dict]]:
    """Failure records packed greedily into batches that each fit one request."""
    room = data_room("find_patterns.j2", budget_tokens, count=0, failures="", known=dumps_data(list(known)))
    if room < 400:
        raise UsageError(f"LOOP_MAX_INPUT_TOKENS={budget_tokens} leaves no room for a single failure; raise it.")
    items = [review_records.record(draft, room) for draft in failures]
    return _packed(items, [review_records.size(item) for item in items], room)


def _packed(items: list, sizes: list[int], room: int) -> list[list]:
    """The items in order, in groups whose sizes add up to at most `room` (an item larger alone)."""
    groups, current, used = [], [], 0
    for item, size in zip(items, sizes):
        if current and used + size > room:
            groups.append(current)
            current, used = [], 0
        current.append(item)
        used += size
    if current:
        groups.append(current)
    return groups


def find_patterns(model: ModelClient, failures: list[Draft], known: list[str] = ()) -> list[Pattern]:
    found: list[Pattern] = []
    packed = batches(failures, model.max_input_tokens, known)
    for number, batch in enumerate(packed, start=1):
        log.info("Finding failure patterns: batch %d of %d (%d failures)", number, len(packed), len(batch))
        answer = model.ask(
            "failure_patterns",
            FailurePatterns,
            messages("find_patterns.j2", count=len(batch), failures=dumps_data(batch), known=dumps_data(list(known))),
        )
        found.extend(_assign([item["trace_id"] for item in batch], answer.patterns))
    if len(packed) > 1:
        found = merge(model, _by_name(found), known)
    return sorted(_by_name(found), key=lambda p: (-p.count, p.name))


def _assign(trace_ids: list[str], answers: list[PatternAnswer]) -> list[Pattern]:
    """Patterns holding each of `trace_ids` exactly once."""
    remaining = set(trace_ids)
    patterns = []
    for answer in answers:
        members = []
        for trace_id in answer.trace_ids:
            trace_id = trace_id.strip()
            if trace_id in remaining:
                remaining.discard(trace_id)
                members.append(trace_id)
        if members:
            patterns.append(Pattern(answer.name.strip() or UNASSIGNED, answer.description.strip(), members))
    leftovers = [t for t in trace_ids if t in remaining]
    if leftovers:
        patterns.append(Pattern(UNASSIGNED, "Failures the model did not place in any pattern.", leftovers))
    return patterns


def _by_name(patterns: list[Pattern]) -> list[Pattern]:
    """Patterns with the same name (case-insensitive) joined into one."""
    joined: dict[str, Pattern] = {}
    for pattern in patterns:
        key = pattern.name.casefold()
        if key in joined:
            joined[key].trace_ids.extend(pattern.trace_ids)
        else:
            joined[key] = Pattern(pattern.name, pattern.description, list(pattern.trace_ids))
    return list(joined.values())


def merge(model: ModelClient, patterns: list[Pattern], known: list[str] = ()) -> list[Pattern]:
    """Join patterns from different batches that name the same mistake, in rounds that fit the budget."""
    for round_number in range(1, MAX_MERGE_ROUNDS + 1):
        groups = _merge_groups(patterns, model.max_input_tokens, known)
        log.info("Merging %d patterns from the batches: round %d, %d request(s)", len(patterns), round_number, len(groups))
        merged: list[Pattern] = []
        for group in groups:
            merged.extend(_merge_group(model, group, known))
        shrank = len(merged) < len(patterns)
        patterns = merged
        if len(groups) == 1 or not shrank:
            break
    return patterns


def _merge_item(key: str, pattern: Pattern) -> dict:
    return {
        "id": key,
        "name": pattern.name,
        "description": pattern.description,
        "count": pattern.count,
        "example_trace_ids": pattern.trace_ids[:3],
    }


def _merge_groups(patterns: list[Pattern], budget_tokens: int, known: list[str] = ()) -> list[list[Pattern]]:
    room = data_room("merge_patterns.j2", budget_tokens, patterns="", known=dumps_data(list(known)))
    sizes = [review_records.size(_merge_item(f"P{index + 1}", pattern)) for index, pattern in enumerate(patterns)]
    return _packed(patterns, sizes, room)


def _merge_group(model: ModelClient, group: list[Pattern], known: list[str] = ()) -> list[Pattern]:
    keyed = {f"P{index + 1}": pattern for index, pattern in enumerate(group)}
    items = [_merge_item(key, pattern) for key, pattern in keyed.items()]
    answer = model.ask(
        "failure_patterns", MergedFailurePatterns,
        messages("merge_patterns.j2", patterns=dumps_data(items), known=dumps_data(list(known)))
    )
    used: set[str] = set()
    result = []
    for merged in answer.patterns:
        keys = [k.strip() for k in merged.merged_from if k.strip() in keyed and k.strip() not in used]
        if not keys:
            continue
        used.update(keys)
        trace_ids = [t for key in keys for t in keyed[key].trace_ids]
        result.append(Pattern(merged.name.strip() or keyed[keys[0]].name, merged.description.strip(), trace_ids))
    result.extend(pattern for key, pattern in keyed.items() if key not in used)
    return result
