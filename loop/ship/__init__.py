"""Ship: ticked edits in, a new prompt version out, served to every agent, and back again.

What enters: the Edits tabs' ticked rows, the Rollout tab's ticks and the prompt's records in the
store. What leaves: one new version of the managed prompt made of exactly those edits (`loop apply`,
as a canary with `--canary`), the version before it (`loop rollback`), a canary made current
(`loop promote`), with every edit row marked with what happened to it; and, to agents, the version
each ticket is drafted with (`loop.prompt`, in `loop.serving`).

- `approval`: `apply` and `rollback`.
- `canary`: `promote` and `stop`.
- `rollout`: the Rollout tab, a row per canary, and the promote and stop ticks acted on from it.
"""
