"""Secrets never reach a terminal, a log or a cell: URLs are shown with their password masked, and a
webhook (whose path is itself the secret) by its host alone."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MASK = "***"
# scheme://user:password@host…  (also when the rest of the URL does not parse)
_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/:@\s]*):(?P<password>[^\s/]*)@")
# user:password@host without a scheme, as some messages print a URL
_BARE = re.compile(r"(?<![\w/])(?P<user>[\w.%+-]+):(?P<password>[^@\s/:]+)@(?=[\w.\[])")


def mask_url(url: str) -> str:
    """`postgresql://user:***@host/db`: the URL with any password replaced by ***."""
    return _CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", str(url))


def webhook_host(url: str) -> str:
    """A webhook named without its secret path or credentials: `https://hooks.slack.com/***`."""
    try:
        parts = urlsplit(str(url))
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return f"a webhook URL ({MASK})"
    if not parts.scheme or not host:
        return f"a webhook URL ({MASK})"
    return f"{parts.scheme}://{host}/{MASK}"


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Text with every URL password masked and each of `secrets` (a URL, a password) replaced."""
    text = mask_url(text)
    text = _BARE.sub(lambda m: f"{m['user']}:{MASK}@", text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    return text
