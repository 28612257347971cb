"""Ship: ticked edits in, a new prompt version out, and back again.

What enters: the Edits tabs' ticked rows and the prompt history. What leaves: one new version of the
managed prompt made of exactly those edits (`loop apply`), or the version before it (`loop rollback`),
with every edit row marked with what happened to it.

- `approval`: `apply` and `rollback`.
"""
