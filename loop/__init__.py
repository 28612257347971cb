"""Improve an LLM support agent's prompt from human review.

The library behind the `loop` command: everything the CLI does is a plain function here. Names are
imported on first use, so `import loop` (and `loop --help`) stays fast.
"""

from importlib import import_module

_EXPORTS = {
    "Settings": "config", "resolve": "config", "Workspace": "workspace",
    "log_draft": "collect.traces", "log_drafts": "collect.traces", "improve": "improver.pipeline",
    "apply": "ship.approval", "rollback": "ship.approval", "refresh": "measure.report",
    "prompt": "serving", "promote": "ship.canary",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = globals()[name] = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)  # once
        return value
    raise AttributeError(f"module 'loop' has no attribute {name!r}")
