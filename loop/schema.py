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

# (column, required, width, what it holds)
DRAFT_COLUMNS = [
    ("trace_id", True, 38, "Unique id of the draft; edits cite it as evidence."),
    ("created_at", True, 20, "When the draft was written: a date cell, ISO-8601 text (naive = UTC) or a serial number."),
    ("ticket_id", False, 12, "The help-desk ticket the draft answers."),
    ("ticket", True, 50, "The customer's message the agent answered."),
    ("thread", False, 40, "Earlier messages of the conversation, oldest first."),
    ("draft", True, 60, "The reply the agent drafted."),
    ("kb_sources", False, 30, "Knowledge-base documents the agent used, comma-separated."),
    ("prompt_version", False, 10, "Version of the managed prompt the draft was written with."),
    ("score", True, 8, "The reviewer's verdict: 👍 or 👎 (also up/down, yes/no, 1/0, TRUE/FALSE). Blank = not reviewed."),
    ("comment", True, 40, "What was wrong (or right), in the reviewer's words. The improver learns most from this."),
    ("final_reply", False, 50, "The reply the reviewer actually sent, if they corrected the draft."),
    ("reviewer", False, 14, "Who reviewed the draft."),
    ("judge_score", False, 10, "An LLM judge's pre-score; a person's score always wins."),
    ("judge_comment", False, 40, "The judge's reason."),
    ("judge_version", False, 10, "The version of the judge's rubric that scored the draft (written by loop)."),
    ("pattern", False, 20, "The failure pattern the improver placed this failure in (written by loop)."),
]
DRAFT_HEADERS = [name for name, *_ in DRAFT_COLUMNS]
DRAFT_WRAPPED = ["ticket", "thread", "draft", "comment", "final_reply", "judge_comment"]
REQUIRED_DRAFT_COLUMNS = [name for name, required, *_ in DRAFT_COLUMNS if required]

EDIT_COLUMNS = [
    ("approve", 9, "Tick to approve the edit; `loop apply` applies ticked edits whose status is proposed."),
    ("edit_id", 26, "Unique id of the proposal, across every run."),
    ("pattern", 24, "The failure pattern the edit addresses."),
    ("find", 40, "The exact passage of the current prompt the edit replaces."),
    ("replace", 40, "The new text for that passage."),
    ("rationale", 40, "Why this edit should fix the pattern."),
    ("evidence", 30, "Trace ids of the failures behind the edit, comma-separated."),
    ("status", 10, "proposed, rejected (failed validation), applied, stale (its passage is gone), or rolled back "
                   "(undone by `loop rollback`; tick it to apply it again)."),
    ("check", 36, "Why an edit was rejected, went stale or was rolled back."),
    ("applied_version", 10, "The prompt version the edit went into."),
    ("fixed_cited", 11, "Replay: of the failures the edit cites, drafted again with it, how many came out better (k/n)."),
    ("fixed_held_out", 11, "Replay: the same for failures of its pattern it does not cite, held out (k/n)."),
    ("regressed", 10, "Replay: of the successes drafted again with it, how many came out worse (k/n)."),
    ("change", 50, "The edit as a diff: removed text struck through in red, added text in green."),
    ("about_pattern", 36, "The pattern's size and description, and how many of its failures the edit cites."),
    ("cited_comments", 50, "What the reviewers said of the failures the edit cites."),
]
EDIT_HEADERS = [name for name, *_ in EDIT_COLUMNS]
EDIT_WRAPPED = ["pattern", "find", "replace", "rationale", "evidence", "check", "change", "about_pattern", "cited_comments"]

REPLAY_COLUMNS = [
    ("edit_id", 26, "The edit tried."),
    ("trace_id", 38, "The logged draft whose ticket was drafted again."),
    ("kind", 9, "cited (a failure the edit cites), held out (a failure of its pattern it does not), or success."),
    ("ticket", 40, "The customer's ticket (its start)."),
    ("logged_draft", 50, "The draft the reviewer scored."),
    ("control_draft", 50, "Drafted again with the current prompt."),
    ("candidate_draft", 50, "Drafted again with the current prompt plus this edit."),
    ("comment", 40, "What the reviewer said of the logged draft."),
    ("verdict", 10, "candidate (the edit did better), control (it did worse) or tie (no clear difference)."),
    ("reason", 40, "The judge's reason, in a sentence."),
]
REPLAY_HEADERS = [name for name, *_ in REPLAY_COLUMNS]
REPLAY_WRAPPED = ["ticket", "logged_draft", "control_draft", "candidate_draft", "comment", "reason"]

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
