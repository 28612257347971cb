"""The improver: reviews in, proposed prompt edits out, each traced to its failures and tried first.

What enters: the reviews of the review window (failures and some successes) and the current prompt.
What leaves: a new Edits tab of small find/replace edits, each validated, replayed against real
cases, and laid out for a reviewer to tick; and the run's row on the Runs tab.

- `pipeline`: `improve()`, the run from reviews to the Edits tab.
- `patterns`: failures grouped into patterns; `proposals`: edits asked of the model for them.
- `edits`: locating an edit's passage, the deterministic checks, and the Edits tabs read back.
- `replay`: the replay check (`improve`, `loop check`); `agent_seam`: what re-drafts a ticket for it.
- `review_tabs`: what a run writes for reviewers: the Edits and Replay tabs and the Runs row.
"""
