"""Reviews turned into the records the model reads, cut to fit a token budget.

Each field has a share of the room; a thread keeps its newest part (the end), the other fields
their beginning. Every cut is marked so the model knows text is missing."""

from __future__ import annotations

from loop.model import dumps_data
from loop.reviews import Draft

# Relative room per field when a record must be cut.
_SHARES = {"ticket": 3, "thread": 4, "draft": 3, "comment": 2, "final_reply": 2}
_CUT = "…[cut]"


def cut(text: str, limit: int, keep_end: bool = False) -> str:
    if len(text) <= limit:
        return text
    keep = max(limit - len(_CUT), 0)
    return _CUT + text[len(text) - keep:] if keep_end else text[:keep] + _CUT


def record(draft: Draft, max_chars: int) -> dict:
    """The draft as a data record whose JSON is at most about `max_chars` characters."""
    fields = {
        "ticket": draft.ticket,
        "thread": draft.thread,
        "draft": draft.draft,
        "comment": draft.comment,
        "final_reply": draft.final_reply,
    }
    fields = {name: text for name, text in fields.items() if text}
    item = {"trace_id": draft.trace_id, **fields}
    room = max_chars - 120 - len(draft.trace_id)
    while size(item) > max_chars and room > 50:
        total_share = sum(_SHARES[name] for name in fields)
        item = {"trace_id": draft.trace_id}
        for name, text in fields.items():
            item[name] = cut(text, max(room * _SHARES[name] // total_share, 20), keep_end=name == "thread")
        room = int(room * 0.8)
    return item


def size(item: object) -> int:
    """Characters `item` adds to a JSON data block (an over-estimate, so packing stays safe)."""
    return len(dumps_data([item])) + 2
