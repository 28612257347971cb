"""The improver's own prompts: Jinja2 templates shipped inside the package."""

from __future__ import annotations

from functools import lru_cache

from jinja2 import Environment, PackageLoader, StrictUndefined

from .model import estimate_messages


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


def overhead(template: str, **values) -> int:
    """Tokens a request of `template` costs before any data is put in it."""
    return estimate_messages(messages(template, **values))
