"""The improver's and the agent's prompts: Jinja2 templates shipped inside the package.

Every value a template prints goes through one filter, `data`, which makes untrusted text inert:
nothing a customer, a reviewer or a model wrote can close the block it sits in, open another, or end
an attribute. Data blocks carry JSON (`dumps_data`: strings quoted, newlines escaped, `<` as
`\\u003c`); a value that is already such JSON passes unchanged, since it holds no `<`. Blocks that
hold a team's own instructions (the prompt being improved, the judge's rubric) are shown verbatim,
except that a sequence which would end their block (`</prompt`) is broken (`<\\/prompt`).
"""

from __future__ import annotations

import re
from functools import lru_cache

from jinja2 import Environment, PackageLoader, StrictUndefined

from loop.model import CHARS_PER_TOKEN, dumps_data, estimate_messages


def data(value, verbatim_in: str | None = None) -> str:
    """`value` as it may stand inside a template's block.

    Text and JSON text: every `<` escaped as in JSON (`\\u003c`), so no tag can start inside it.
    Anything else (a dict, a list, a number): `dumps_data` JSON. With `verbatim_in="prompt"` the
    text is kept as written (a prompt's `<rules>` stay), only an end tag of that block is broken.
    """
    if not isinstance(value, str):
        return dumps_data(value)
    if verbatim_in:
        return re.sub(rf"<(?=/\s*{re.escape(verbatim_in)}\b)", r"<\\", value, flags=re.I)
    return value.replace("<", "\\u003c")


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("loop", "templates"),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )
    env.filters["data"] = data
    return env


def names() -> list[str]:
    """Every template shipped in the package."""
    return sorted(_environment().list_templates(extensions=["j2"]))


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
