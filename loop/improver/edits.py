"""Edits to the prompt: locating their passage, the deterministic checks of CONTRACT §4.4, and
applying them; and the Edits tabs' rows read back (`edit_rows`). The improver, the replay check and
`loop apply` all use these, so a proposal is judged the same way when it is made and when it is
approved."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from loop import schema
from loop.cell_values import as_text, is_ticked, normalize_header
from loop.sheets import Table

PROPOSED, REJECTED, APPLIED, STALE, ROLLED_BACK = "proposed", "rejected", "applied", "stale", "rolled back"


@dataclass
class Edit:
    edit_id: str
    pattern: str
    find: str
    replace: str
    rationale: str = ""
    evidence: list[str] = field(default_factory=list)
    status: str = PROPOSED
    check: str = ""
    applied_version: str = ""


class NotLocated(ValueError):
    """The passage is absent from the prompt or appears more than once."""


def locate(prompt: str, find: str) -> tuple[int, int]:
    """The span of `find` in `prompt`: an exact unique match, else a unique whitespace-insensitive one."""
    if not find.strip():
        raise NotLocated("find is empty")
    exact = prompt.count(find)
    if exact == 1:
        start = prompt.index(find)
        return start, start + len(find)
    if exact > 1:
        raise NotLocated(f"find appears {exact} times in the prompt; it must identify one passage")
    pattern = r"\s+".join(re.escape(word) for word in find.split())
    matches = list(re.finditer(pattern, prompt))
    if len(matches) == 1:
        return matches[0].span()
    if matches:
        raise NotLocated(f"find appears {len(matches)} times in the prompt; it must identify one passage")
    raise NotLocated("find is not in the prompt")


def _changes(find: str, replace: str) -> tuple[int, int]:
    """(characters removed, characters added) by turning `find` into `replace`."""
    matcher = difflib.SequenceMatcher(None, find, replace, autojunk=False)
    opcodes = [op for op in matcher.get_opcodes() if op[0] != "equal"]
    return sum(i2 - i1 for _, i1, i2, _, _ in opcodes), sum(j2 - j1 for _, _, _, j1, j2 in opcodes)


def change_size(find: str, replace: str) -> int:
    """Characters removed plus characters added: a sentence tightened is small, a rewrite is large."""
    return sum(_changes(find, replace))


def validate(edits: list[Edit], prompt: str, failure_ids: set[str], max_edit_chars: int,
             max_edit_share: float = 1.0) -> list[Edit]:
    """Mark each edit proposed or rejected, with the reason in `check`; returns the same list.

    An edit is too large when its passage, or the characters it removes plus adds, pass
    `max_edit_chars`, or when it removes or rewrites more than `max_edit_share` of the prompt."""
    spans: dict[str, tuple[int, int]] = {}
    for edit in edits:
        reason = _first_problem(edit, prompt, failure_ids, max_edit_chars, max_edit_share, spans)
        edit.status, edit.check = (REJECTED, reason) if reason else (PROPOSED, "")
    _reject_overlaps([e for e in edits if e.status == PROPOSED], spans)
    return edits


def _first_problem(edit, prompt, failure_ids, max_edit_chars, max_edit_share, spans) -> str:
    try:
        spans[edit.edit_id] = locate(prompt, edit.find)
    except NotLocated as problem:
        return str(problem)
    if " ".join(edit.find.split()) == " ".join(edit.replace.split()):
        return "no-op: replace says the same as find"
    if not edit.evidence:
        return "no evidence: an edit must cite the failures behind it"
    unknown = [trace_id for trace_id in edit.evidence if trace_id not in failure_ids]
    if unknown:
        return f"evidence {', '.join(unknown[:5])} is not a failure in the window"
    if len(edit.find) > max_edit_chars:
        return f"too large: find is {len(edit.find)} characters (limit {max_edit_chars}, LOOP_MAX_EDIT_CHARS)"
    removed, added = _changes(prompt[slice(*spans[edit.edit_id])], edit.replace)
    if removed + added > max_edit_chars:
        return f"too large: changes {removed + added} characters (limit {max_edit_chars}, LOOP_MAX_EDIT_CHARS)"
    if removed > max_edit_share * len(prompt):
        return (f"too large: removes or rewrites {removed} of the prompt's {len(prompt)} characters "
                f"(limit {max_edit_share:.0%}, LOOP_MAX_EDIT_SHARE)")
    return ""


def _reject_overlaps(edits: list[Edit], spans: dict[str, tuple[int, int]]) -> None:
    """Of two edits touching the same text, keep the one with more evidence (the earlier on a tie)."""
    ranked = sorted(edits, key=lambda e: -len(set(e.evidence)))
    kept: list[Edit] = []
    for edit in ranked:
        start, end = spans[edit.edit_id]
        rival = next((k for k in kept if start < spans[k.edit_id][1] and spans[k.edit_id][0] < end), None)
        if rival:
            edit.status, edit.check = REJECTED, f"overlaps {rival.edit_id}, which has more evidence"
        else:
            kept.append(edit)


def apply_one(prompt: str, edit: Edit) -> str:
    """The prompt with `edit` applied; raises NotLocated when its passage is gone or ambiguous."""
    start, end = locate(prompt, edit.find)
    return prompt[:start] + edit.replace + prompt[end:]


SHOWN_CHARS = 60  # the most of an edit's passage a line shows: the Edits tab has the rest


def brief(text: str, limit: int = SHOWN_CHARS) -> str:
    """Untrusted text on one line: whitespace runs made one space, control codes shown(), cut with an ellipsis."""
    from loop.cell_values import shown

    text = shown(" ".join(str(text).split()))
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def edit_name(edit) -> str:
    """An edit as a person names it: its pattern and its change, e.g. `Too verbose: "Keep replies
    short." → "Keep replies to 2–4 sentences."`; a pure addition or removal shows only that part.
    `edit` is anything with `pattern`, `find` and `replace` (a proposal, an applied edit's figures)."""
    find, replace = " ".join(edit.find.split()), " ".join(edit.replace.split())
    if find == replace:
        change = f'leaves "{brief(find)}" as it is'
    elif find and (replace.startswith(find) or replace.endswith(find)):
        change = f'adds "{brief(replace[len(find):] if replace.startswith(find) else replace[:-len(find)])}"'
    elif replace and (find.startswith(replace) or find.endswith(replace)):
        change = f'removes "{brief(find[len(replace):] if find.startswith(replace) else find[:-len(replace)])}"'
    else:
        change = f'"{brief(find)}" → "{brief(replace)}"'
    return f"{brief(edit.pattern, 40) or 'no pattern'}: {change}"


@dataclass
class EditRow:
    """One row of an Edits tab, as `apply` and `rollback` see it."""

    tab: str
    row: int
    edit: Edit
    ticked: bool


def edit_rows(tables: dict[str, Table]) -> list[EditRow]:
    """Every edit row of the Edits tabs, in tab then row order."""
    found = []
    for title, table in tables.items():
        for row, record in table.records():
            text = {key: as_text(value) if key not in ("find", "replace") else _raw(value) for key, value in record.items()}
            edit = Edit(
                edit_id=text.get(normalize_header("edit_id"), "") or f"{title}!{row}",
                pattern=text.get("pattern", ""),
                find=text.get("find", ""),
                replace=text.get("replace", ""),
                evidence=[t.strip() for t in text.get("evidence", "").split(",") if t.strip()],
                status=text.get("status", "").lower(),
                check=text.get("check", ""),
                applied_version=text.get(normalize_header("applied_version"), ""),
            )
            found.append(EditRow(title, row, edit, is_ticked(record.get("approve"))))
    return found


def _raw(value: object) -> str:
    """find/replace keep their exact whitespace: they must match the prompt character for character."""
    return "" if value is None else str(value)


def edit_titles(workbook) -> list[str]:
    """Every Edits tab, in the workbook's order."""
    return [t for t in workbook.titles() if t.startswith(schema.EDITS_PREFIX)]
