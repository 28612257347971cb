"""The improver's own prompts: Jinja2 templates shipped inside the package."""

from __future__ import annotations

from functools import lru_cache

from jinja2 import Environment, PackageLoader, StrictUndefined

from .model import CHARS_PER_TOKEN, estimate_messages


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("loop", "templates"),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )


def messages(template: str, **values) -> list[dict]:
    """A system message and the rendered user message of `template`."""
    env = _environment()
    return [
        {"role": "system", "content": env.get_template("system.j2").render()},
        {"role": "user", "content": env.get_template(template).render(**values)},
    ]


def render(template: str, **values) -> str:
    return _environment().get_template(template).render(**values)


def data_room(template: str, budget_tokens: int, **empty) -> int:
    """Characters of data a request of `template` can carry within `budget_tokens`, given the
    template rendered with its data left `empty` (a small margin keeps packing on the safe side)."""
    return (budget_tokens - estimate_messages(messages(template, **empty))) * CHARS_PER_TOKEN - 64
