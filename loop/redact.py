"""Secrets never reach a terminal, a log or a cell: URLs are shown with their password masked, and a
webhook (whose path is itself the secret) by its host alone.

A store's password may sit in a URL's userinfo (percent-encoded or not), in a `password=` query
parameter, or in a keyword connection string (`host=… password=…`): each form is masked."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

MASK = "***"
# scheme://user:password@host…  (also when the rest of the URL does not parse)
_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/:@\s]*):(?P<password>[^\s@]*)@")
# user:password@host without a scheme, as some messages print a URL
_BARE = re.compile(r"(?<![\w/])(?P<user>[\w.%+-]+):(?P<password>[^@\s/:]+)@(?=[\w.\[])")
# password=… as a URL query parameter (?password=, &sslpassword=) or a keyword (password=…, password='a b')
_PARAMETER = re.compile(r"(?P<key>(?:(?<=[?&;\s])|^)(?:ssl)?password\s*=\s*)"
                        r"(?P<value>'(?:\\.|[^'\\])*'?|[^&#\s']*)", re.IGNORECASE)
# in a keyword string alone, an unquoted value runs to the next `key=` (psycopg would refuse it, but
# whatever it holds is hidden)
_KEYWORD_PASSWORD = re.compile(r"(?P<key>(?:(?<=\s)|^)(?:ssl)?password\s*=\s*)"
                               r"(?P<value>'(?:\\.|[^'\\])*'?|.*?(?=\s+[A-Za-z_]+\s*=|\s*$))",
                               re.IGNORECASE | re.DOTALL)
KEYWORD_FORM = re.compile(r"\s*[A-Za-z_]+\s*=")


def mask_url(url: str) -> str:
    """One URL or connection string with any password replaced by ***: `postgresql://user:***@host/db`,
    `host=db password=***`. The userinfo runs to the last `@`, so a password holding an unencoded
    `/`, space or `@` is hidden whole."""
    url = str(url)
    if KEYWORD_FORM.match(url):
        return _KEYWORD_PASSWORD.sub(lambda m: m["key"] + MASK, url)
    scheme, separator, rest = url.partition("://")
    rest = scrub_parameters(rest)  # first, so an `@` in a query parameter is not taken for the userinfo's
    if not separator:
        return rest
    at = rest.rfind("@")
    if at >= 0 and ":" in rest[:at]:
        rest = f"{rest[:rest.index(':')]}:{MASK}@{rest[at + 1:]}"
    return f"{scheme}://{rest}"


def scrub_parameters(text: str) -> str:
    return _PARAMETER.sub(lambda m: m["key"] + MASK, text)


def secrets_of(url: str | None) -> tuple[str, ...]:
    """The passwords a store URL or keyword string holds, as written and percent-decoded: the
    strings no message may show."""
    if not url:
        return ()
    url = str(url)
    found: list[str] = []
    if KEYWORD_FORM.match(url):
        for match in _KEYWORD_PASSWORD.finditer(url):
            value = match["value"]
            if value.startswith("'"):
                value = re.sub(r"\\(.)", r"\1", re.match(r"'((?:\\.|[^'\\])*)", value)[1], flags=re.DOTALL)
            found.append(value)
    else:
        rest = url.partition("://")[2]
        found += [m["value"].strip("'") for m in _PARAMETER.finditer(rest)]
        rest = scrub_parameters(rest)
        at = rest.rfind("@")
        if at >= 0 and ":" in rest[:at]:
            found.append(rest[rest.index(":") + 1:at])
    found += [unquote(value) for value in found]
    return tuple(dict.fromkeys(value for value in found if value))


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
    """Text with every URL password and `password=` value masked, and each of `secrets` (a URL, a
    password) replaced."""
    for secret in sorted(secrets, key=len, reverse=True):  # a whole URL before the password inside it
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    text = _CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _BARE.sub(lambda m: f"{m['user']}:{MASK}@", text)
    return scrub_parameters(text)
