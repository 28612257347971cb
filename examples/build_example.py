"""Build the example from its sources: `python examples/build_example.py`.

- `loop.xlsx` from `drafts.jsonl` (this fortnight's drafts, written with the current prompt, v3) and
  the weeks before it: drafts written with v1 and v2, already reviewed, each failure with the
  pattern an earlier `loop improve` placed it in, and the two Edits tabs whose applied edits made
  v2 and v3. Their tickets and drafts reuse this fortnight's text (to keep the example small); their
  scores and patterns are fixed below, so the Dashboard's figures are known.
- `prompts/support_agent.history/`: the prompt's three versions, as `loop apply` recorded them.

Drafts are dated relative to a fixed day, so `make demo` (which looks back to DEMO_SINCE) finds
the same reviews whenever it runs. Trace ids derive from ticket ids, so rebuilding is stable.
"""

import hashlib
import json
import shutil
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import openpyxl
import openpyxl.styles

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from loop import schema
from loop.collect import workbook_template  # noqa: E402

HERE = Path(__file__).resolve().parent
REVIEW_DAY = datetime(2026, 11, 20, 17, 0)
REVIEWERS = ["Priya", "Marco", "Jonas"]
# When each earlier version became current, and the edit that made it: (find, replace, pattern).
V2_AT, V3_AT = datetime(2026, 10, 12, 9, 30), datetime(2026, 10, 26, 9, 30)
V2_EDIT = ("- Always try to give the customer a workaround so they are not blocked while they wait.\n",
           "- Always try to give the customer a workaround so they are not blocked while they wait.\n"
           "- Never invent UI paths.\n", "Invented UI paths")
V3_EDIT = ("- When you escalate, tell the customer what happens next.\n",
           "- When you escalate, tell the customer what happens next, without promising a date for a fix.\n",
           "Promised a fix date")
# Earlier drafts: version → (first day, 👍 count, {pattern: 👎 count}); 50 reviewed drafts each.
EARLIER = {
    "v1": (datetime(2026, 9, 28, 9, 0), 8, {"Reply too long": 14, "Invented UI paths": 13,
                                            "Workaround from an unrelated thread": 9, "Ignored the earlier thread": 6}),
    "v2": (V2_AT, 12, {"Reply too long": 15, "Invented UI paths": 3, "Workaround from an unrelated thread": 9,
                       "Ignored the earlier thread": 6, "Promised a fix date": 5}),
}
COMMENTS = {
    "Reply too long": "too long — two sentences would do",
    "Invented UI paths": "that menu path doesn't exist in the app",
    "Workaround from an unrelated thread": "that workaround is from an unrelated thread",
    "Ignored the earlier thread": "read the full thread — they already tried that",
    "Promised a fix date": "never promise a fix date",
}
# The judge scored some earlier drafts too (rubric v1): it agreed with the reviewer on all but these.
JUDGE_EVERY, JUDGE_DISAGREES = 2, {3, 11, 17, 30, 41, 58, 72, 88}


def build(target: Path = HERE / "loop.xlsx") -> None:
    workbook_template.build(target)
    book = openpyxl.load_workbook(target)
    sheet = book[schema.DRAFTS]
    current = [json.loads(line) for line in (HERE / "drafts.jsonl").read_text(encoding="utf-8").splitlines()]
    for row in earlier_drafts(current) + [this_fortnight(item) for item in current]:
        sheet.append([row.get(name) or None for name in schema.DRAFT_HEADERS])
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # a ticket starting with "=" stays text
            if schema.DRAFT_HEADERS[cell.column - 1] in schema.DRAFT_WRAPPED:
                cell.alignment = openpyxl.styles.Alignment(wrap_text=True, vertical="top")
        lines = schema.draft_lines(row)  # as tall as loop makes the rows it writes
        if lines:
            sheet.row_dimensions[sheet.max_row].height = 15 * lines
    for applied_at, version, (find, replace, pattern) in ((V2_AT, "v2", V2_EDIT), (V3_AT, "v3", V3_EDIT)):
        tab = book.create_sheet(f"{schema.EDITS_PREFIX}{applied_at - timedelta(hours=1):%Y-%m-%d %H%M}")
        edit = {"approve": True, "edit_id": f"{applied_at - timedelta(hours=1):%Y%m%d-%H%M%S}-e0a1b2-1",
                "pattern": pattern, "find": find.rstrip("\n"), "replace": replace.rstrip("\n"),
                "rationale": f"Reviewers flagged: {COMMENTS[pattern]}.", "evidence": "", "status": "applied",
                "applied_version": version}
        tab.append(schema.EDIT_HEADERS)
        tab.append([edit.get(name) for name in schema.EDIT_HEADERS])
    book.save(target)


def this_fortnight(item: dict) -> dict:
    row = dict(item)
    row["trace_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"tallyhive/{item['ticket_id']}"))
    row["created_at"] = (REVIEW_DAY - timedelta(days=item["days_ago"])).replace(microsecond=0, second=0)
    row["prompt_version"] = "v3"
    return row


def earlier_drafts(current: list[dict]) -> list[dict]:
    rows, n = [], 0
    for version, (start, ups, downs) in EARLIER.items():
        outcomes = [("👍", None)] * ups + [("👎", p) for p, count in downs.items() for _ in range(count)]
        outcomes = [outcomes[(i * 7) % len(outcomes)] for i in range(len(outcomes))]  # interleaved, not in blocks
        for i, (score, pattern) in enumerate(outcomes):
            source = current[n % len(current)]
            row = {"trace_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"tallyhive/earlier/{version}/{i}")),
                   "created_at": start + timedelta(hours=6 * i + 2), "ticket_id": f"TH-{3900 + n}",
                   "ticket": source["ticket"], "thread": source.get("thread"), "draft": source["draft"],
                   "kb_sources": source.get("kb_sources"), "prompt_version": version, "score": score,
                   "comment": COMMENTS[pattern] if pattern else "", "reviewer": REVIEWERS[n % 3], "pattern": pattern}
            if n % JUDGE_EVERY == 0:
                agrees = n not in JUDGE_DISAGREES
                row["judge_score"] = score if agrees else ("👎" if score == "👍" else "👍")
                row["judge_comment"] = "" if row["judge_score"] == "👍" else "The reply misses what the customer asked."
                row["judge_version"] = "v1"
            rows.append(row)
            n += 1
    return rows


def build_history(prompt: Path = HERE / "prompts" / "support_agent.md") -> None:
    """The prompt's versions: v1 lacked both edits, v2 and v3 each applied one. Kept as a history
    folder, which `loop` imports into its store the first time it runs here."""
    text = prompt.read_text(encoding="utf-8")
    v2 = text.replace(V3_EDIT[1], V3_EDIT[0])
    v1 = v2.replace(V2_EDIT[1], V2_EDIT[0])
    assert v1 != v2 != text, "the edits must match the prompt"
    history = prompt.with_name(prompt.name + ".history")
    shutil.rmtree(history, ignore_errors=True)
    history.mkdir()
    lines = []
    times = (datetime(2026, 9, 28, 9, 0), V2_AT, V3_AT)
    edits = (None, V2_EDIT, V3_EDIT)
    for number, (body, at, edit) in enumerate(zip((v1, v2, text), times, edits), start=1):
        (history / f"v{number}.md").write_text(body, encoding="utf-8")
        entry = {"event": "version", "version": number, "parent": number - 1 or None,
                 "source": "apply" if edit else "initial",
                 "created_at": at.replace(tzinfo=timezone.utc).isoformat(timespec="seconds"),
                 "sha256": hashlib.sha256(body.encode("utf-8")).hexdigest(), "edits": [], "prompt": prompt.name}
        if edit:
            edit_at = at - timedelta(hours=1)
            entry["edits"] = [{"edit_id": f"{edit_at:%Y%m%d-%H%M%S}-e0a1b2-1",
                               "tab": f"{schema.EDITS_PREFIX}{edit_at:%Y-%m-%d %H%M}", "pattern": edit[2],
                               "find": edit[0].rstrip("\n"), "replace": edit[1].rstrip("\n"), "evidence": []}]
        lines.append(json.dumps(entry, ensure_ascii=False) + "\n")
    (history / "log.jsonl").write_text("".join(lines), encoding="utf-8")


if __name__ == "__main__":
    build_history()
    build()
