"""The workbook's tabs and columns (CONTRACT §3): one list that the template, the readers and the
writers all use, so the three never disagree."""

from __future__ import annotations

DRAFTS = "Drafts"
RUNS = "Runs"
TICKETS = "Tickets"  # optional: tickets for the bundled agent (ticket, ticket_id, thread)
EDITS_PREFIX = "Edits "
REPLAY_PREFIX = "Replay "
EXCERPT_CHARS = 300  # a ticket or comment quoted where there is no room for all of it
SCORE_CHOICES = ["👍", "👎"]

# (column, required, width, what it holds), in the order a reviewer scores: what was asked, what the
# agent drafted, the verdict and the reviewer's words first; ids and what machines write after.
DRAFT_COLUMNS = [
    ("ticket", True, 45, "The customer's message the agent answered."),
    ("draft", True, 60, "The reply the agent drafted."),
    ("score", True, 8, "The reviewer's verdict: 👍 or 👎 (also up/down, yes/no, 1/0, TRUE/FALSE). Blank = not reviewed."),
    ("comment", True, 40, "What was wrong (or right), in the reviewer's words. The improver learns most from this."),
    ("final_reply", False, 45, "The reply the reviewer actually sent, if they corrected the draft."),
    ("reviewer", False, 12, "Who reviewed the draft."),
    ("thread", False, 40, "Earlier messages of the conversation, oldest first."),
    ("judge_score", False, 12, "An LLM judge's pre-score; a person's score always wins."),
    ("judge_comment", False, 40, "The judge's reason."),
    ("ticket_id", False, 12, "The help-desk ticket the draft answers."),
    ("created_at", True, 20, "When the draft was written: a date cell, ISO-8601 text (naive = UTC) or a serial number."),
    ("prompt_version", False, 16, "Version of the managed prompt the draft was written with."),
    ("kb_sources", False, 30, "Knowledge-base documents the agent used, comma-separated."),
    ("trace_id", True, 38, "Unique id of the draft; edits cite it as evidence."),
    ("judge_version", False, 15, "The version of the judge's rubric that scored the draft (written by loop)."),
    ("pattern", False, 24, "The failure pattern the improver placed this failure in (written by loop)."),
]
DRAFT_HEADERS = [name for name, *_ in DRAFT_COLUMNS]
DRAFT_WRAPPED = ["ticket", "thread", "draft", "comment", "final_reply", "judge_comment"]
DRAFT_FROZEN = 1  # the ticket stays in view while the rest scrolls
DRAFT_LINES = 6  # a Drafts row is made at most this many lines tall; the cell holds the rest
REQUIRED_DRAFT_COLUMNS = [name for name, required, *_ in DRAFT_COLUMNS if required]


def draft_lines(values: dict) -> int | None:
    """How many lines a Drafts row holding `values` needs (its wrapped text at the template's widths,
    at most DRAFT_LINES); None when one line does."""
    from loop.sheets.base import text_lines

    widths = {name: width for name, _, width, _ in DRAFT_COLUMNS}
    lines = text_lines(values, widths, set(DRAFT_WRAPPED), DRAFT_LINES)
    return lines if lines > 1 else None


# The Edits tab, in the order a reviewer decides: tick, what it is about and how big that is, the
# change, how it did in the replay, the reviewers' own words, a link to each case behind it, why, what to
# look out for, its status; then what machines need. `case_1` … stand for as many case columns as the
# run's edits need (CASE_COLUMN); they sit where `cases` is.
EDIT_COLUMNS = [
    ("approve", 9, "Tick to approve the edit; `loop apply` applies ticked edits whose status is proposed."),
    ("pattern", 22, "The failure pattern the edit addresses."),
    ("failures", 10, "How many failures of the run's review window the pattern holds."),
    ("change", 50, "The edit, readable: a rewrite shows the old passage struck through in red with the new one "
                   "beneath it in green; an addition shows the new line only; a rejected edit shows why."),
    ("fixed_cited", 12, "Replay: of the failures the edit cites, drafted again with it, how many came out better (k/n)."),
    ("fixed_held_out", 16, "Replay: the same for failures of its pattern it does not cite, held out (k/n)."),
    ("regressed", 11, "Replay: of the successes drafted again with it, how many came out worse (k/n; red when any)."),
    ("cited_comments", 50, "The reviewers' words: each failure the edit cites, a line each — its ticket id, the ticket's "
                           "first words and what the reviewer said."),
    ("cases", 11, "case_1, case_2, …: one short cell per case behind the edit, linked to it: each cited failure's "
                  "ticket id, linked to its Drafts row; then, in red, each success the replay did worse on, "
                  "linked to its row on the Replay tab. (A cell carries one link, so each case has its own.)"),
    ("rationale", 36, "Why this edit should fix the pattern."),
    ("check", 36, "Why an edit was rejected, went stale or was rolled back, or what its replay showed; the "
                  "successes it did worse on are named and linked to their Replay rows."),
    ("status", 11, "proposed, rejected (failed validation), applied, stale (its passage is gone), or rolled back "
                   "(undone by `loop rollback`; tick it to apply it again)."),
    ("find", 40, "The exact passage of the current prompt the edit replaces."),
    ("replace", 40, "The new text for that passage."),
    ("edit_id", 26, "Unique id of the proposal, across every run."),
    ("evidence", 30, "Trace ids of the failures behind the edit, comma-separated."),
    ("applied_version", 17, "The prompt version the edit went into."),
    ("about_pattern", 36, "The pattern's size and description, and how many of its failures the edit cites."),
]
CASE_COLUMN = "case_{}"
MOST_CASES = 12  # case columns at most; an edit citing more says so in its last case cell
EDIT_FROZEN = 2  # approve and pattern stay in view
EDIT_WRAPPED = ["pattern", "change", "cited_comments", "rationale", "check", "find", "replace", "evidence",
                "about_pattern"]
EDIT_LINES = 14


def edit_headers(cases: int = 0) -> list[str]:
    """The Edits tab's headers, with `cases` case columns."""
    headers = []
    for name, *_ in EDIT_COLUMNS:
        headers += [CASE_COLUMN.format(n) for n in range(1, cases + 1)] if name == "cases" else [name]
    return headers


def edit_widths(cases: int = 0) -> dict[str, int]:
    widths = {name: width for name, width, _ in EDIT_COLUMNS if name != "cases"}
    case_width = next(width for name, width, _ in EDIT_COLUMNS if name == "cases")
    return widths | {CASE_COLUMN.format(n): case_width for n in range(1, cases + 1)}


EDIT_HEADERS = edit_headers()  # without case columns: the columns every Edits tab has

# The Replay tab: one block per edit, under a row that names the edit; in each block one row per case,
# its verdict first, the logged draft and the new one side by side.
REPLAY_COLUMNS = [
    ("verdict", 20, "better with the edit (green), better without (red), no difference, or not replayed (the "
                    "agent could not draft the case; the reason says why)."),
    ("kind", 9, "cited (a failure the edit cites), held out (a failure of its pattern it does not), or success."),
    ("case", 11, "The case's ticket id, linked to its draft's row on the Drafts tab."),
    ("ticket", 34, "The customer's ticket (its start)."),
    ("comment", 30, "What the reviewer said of the logged draft (👍 or 👎 first)."),
    ("logged_draft", 45, "The draft the reviewer scored."),
    ("candidate_draft", 45, "Drafted again with the current prompt plus this edit: the new draft. Words it has that "
                            "the draft without the edit lacks are green."),
    ("control_draft", 45, "Drafted again with the current prompt, without the edit; words the new draft dropped are "
                          "red. The edit's effect is the difference between these two."),
    ("reason", 36, "The judge's reason, in a sentence."),
    ("edit_id", 26, "The edit tried (on the block's heading row too)."),
    ("trace_id", 38, "The logged draft whose ticket was drafted again."),
]
REPLAY_HEADERS = [name for name, *_ in REPLAY_COLUMNS]
REPLAY_WRAPPED = ["ticket", "comment", "logged_draft", "control_draft", "candidate_draft", "reason"]
REPLAY_FROZEN = 3  # verdict, kind and case stay in view
REPLAY_LINES = 24
# The pairwise judge's verdicts (replay.py), in the words the Replay tab shows, and their colours.
VERDICT_WORDS = {"candidate": "better with the edit", "control": "better without", "tie": "no difference",
                 "not replayed": "not replayed"}

RUN_COLUMNS = [
    ("run_id", "Id of the improve run; its Edits tab carries the same time."),
    ("started_at", "When the run started (UTC)."),
    ("since", "Start of the review window."),
    ("drafts", "Drafts created in the window."),
    ("failures", "Drafts scored down in the window."),
    ("successes", "Drafts scored up in the window."),
    ("patterns", "Failure patterns found."),
    ("proposed", "Edits that passed validation."),
    ("rejected", "Edits that failed validation."),
    ("model", "The model that was called."),
    ("llm_calls", "Model requests made."),
    ("input_tokens", "Input tokens, as the server reported them."),
    ("output_tokens", "Output tokens, as the server reported them."),
    ("edits_tab", "The Edits tab this run wrote."),
    ("prompt_version", "The prompt version the edits were proposed against."),
    ("replay", "What the replay check tried (edits, cases, agent), or why it did not run."),
    ("replay_llm_calls", "Model requests the replay check made (counted in llm_calls too)."),
    ("replay_input_tokens", "Input tokens of the replay check's requests."),
    ("replay_output_tokens", "Output tokens of the replay check's requests."),
]
RUN_HEADERS = [name for name, _ in RUN_COLUMNS]

# The Rollout tab: a row per canary of the prompt, oldest first (a new canary is appended), its ticks first.
# `loop apply`, the weekly run and a running `loop sync --watch` act on the ticks, then clear them.
ROLLOUT = "Rollout"
ROLLOUT_COLUMNS = [
    ("promote", 9, "Tick to make the canary's version current for everyone."),
    ("stop", 9, "Tick to stop the canary: its share goes to 0 and the current version serves every ticket. "
                "Both ticked: stop wins."),
    ("version", 9, "The version the canary serves."),
    ("base", 7, "The current version when the canary started: what it is compared with."),
    ("share", 8, "The share of tickets it serves (for an ended canary: the share it last had)."),
    ("since", 18, "When the canary started (UTC)."),
    ("ended", 18, "When it ended (UTC); empty while it runs."),
    ("status", 11, "running, promoted, stopped or rolled back."),
    ("reason", 36, "Why it ended: by whom, a tick, `loop rollback`, or the guardrail's figures."),
    ("reviews_current", 16, "Reviews of drafts the current version wrote while the canary ran."),
    ("reviews_canary", 15, "Reviews of drafts the canary wrote."),
    ("difference", 20, "The canary's 👍 rate minus the current version's, in points, with its interval."),
    ("verdict", 36, "canary better, canary worse, or too early to tell (and about how many more reviews would)."),
    ("note", 36, "What the last tick did, or why it was ignored."),
    ("canary_id", 10, "The canary's id in the store: how its row is found again."),
]
ROLLOUT_HEADERS = [name for name, *_ in ROLLOUT_COLUMNS]
ROLLOUT_TICKS = ("promote", "stop")
ROLLOUT_FIGURES = ("reviews_current", "reviews_canary", "difference", "verdict")
ROLLOUT_WRAPPED = ["reason", "verdict", "note"]
