"""Collect: drafts in, kept safe and put in front of reviewers.

What enters: the drafts an agent writes (`loop log`, `log_draft`, or the bundled agent's `loop draft`),
and an LLM judge's pre-scores. What leaves: each draft committed whole to the store, delivered to its
workbook's Drafts tab, and, when old and reviewed, archived out of the sheet (the store keeps it).

- `traces`: `log_draft` / `log_drafts`, the commit point of every draft.
- `support_agent`: the bundled support agent (`loop draft`), which searches `knowledge_base`.
- `judge`: `loop judge`, the LLM judge's scores for drafts nobody has reviewed.
- `workbook_setup` and `workbook_template`: `loop init`, and the workbook it creates.
- `archive`: `loop archive`, old reviewed rows out of the Drafts tab.
"""
