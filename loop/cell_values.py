"""Reading and writing cell values: scores, dates, checkboxes, headers, and safe text.

Spreadsheets hold the same meaning in many forms (a TRUE cell or the text "yes", a date cell or
an ISO string or a serial number); this module is the one place that knows them all.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, time, timedelta, timezone

UP, DOWN = "up", "down"
SCORE_MARKS = {UP: "👍", DOWN: "👎"}  # how the sheet shows a score

_DOWN_WORDS = {"👎", "down", "thumbs down", "bad", "no", "n", "0", "-", "false", "fail"}
_UP_WORDS = {"👍", "up", "thumbs up", "good", "yes", "y", "1", "+", "true", "pass"}
_TICKED_WORDS = {"true", "yes", "y", "x", "✓", "✔"}
_EXCEL_EPOCH = datetime(1899, 12, 30, tzinfo=timezone.utc)
TRUNCATION_MARKER = " …[cut: {n} more characters]"
# What a character XML 1.0 forbids becomes, in any cell of either backend.
REPLACEMENT = "\ufffd"
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class BadValue(ValueError):
    """A cell whose value cannot be read; the row is skipped and reported."""


def normalize_header(name: object) -> str:
    """`Trace ID`, `trace-id` and `TRACE_ID` all become `traceid`."""
    return re.sub(r"[\s_\-]+", "", str(name or "")).lower()


def parse_score(value: object) -> str | None:
    """Return UP, DOWN or None (not reviewed yet); raise BadValue for anything else."""
    if value is None:
        return None
    if isinstance(value, bool):
        return UP if value else DOWN
    if isinstance(value, (int, float)):
        if value == 1:
            return UP
        if value == 0:
            return DOWN
        raise BadValue(f"score {value!r} is not a thumbs up or down")
    text = " ".join(str(value).split()).lower()
    # Emoji may carry a skin-tone modifier or a variation selector.
    stripped = re.sub("[\U0001F3FB-\U0001F3FF\uFE0F]", "", text)
    if not stripped:
        return None
    if stripped in _DOWN_WORDS:
        return DOWN
    if stripped in _UP_WORDS:
        return UP
    raise BadValue(f"score {str(value)!r} is not a thumbs up or down (use 👍/👎, up/down, yes/no)")


def parse_timestamp(value: object) -> datetime:
    """A date or datetime cell, an ISO-8601 string, or a spreadsheet serial number, as aware UTC."""
    if isinstance(value, bool) or value is None or value == "":
        raise BadValue(f"created_at {value!r} is not a date")
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        return _from_serial(float(value))
    text = str(value).strip()
    try:
        return _from_serial(float(text))
    except (ValueError, BadValue):
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadValue(f"created_at {text!r} is not an ISO-8601 date or a serial number") from None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def _from_serial(serial: float) -> datetime:
    if not math.isfinite(serial) or not 1 <= serial < 2_958_466:  # 1900-01-01 .. 9999-12-31
        raise BadValue(f"created_at {serial!r} is not a plausible spreadsheet serial date")
    return _EXCEL_EPOCH + timedelta(days=serial)


def to_serial(moment: datetime) -> float:
    """The spreadsheet serial number of an aware datetime."""
    return (moment.astimezone(timezone.utc) - _EXCEL_EPOCH) / timedelta(days=1)


def is_ticked(value: object) -> bool:
    """A checkbox or TRUE/FALSE cell, or text a person would type to mean yes."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value == 1
    return str(value or "").strip().lower().replace("\ufe0f", "") in _TICKED_WORDS


def window_start(since: str, now: datetime | None = None) -> datetime:
    """The start of the review window `--since` names, relative to `now` (default: this moment); a
    value that names none is a usage error."""
    from loop.errors import UsageError

    try:
        return parse_since(since, now or datetime.now(timezone.utc))
    except BadValue as problem:
        raise UsageError(str(problem)) from None


def parse_since(text: str, now: datetime) -> datetime:
    """`14d`, `2w`, `36h`, or an ISO date: the start of the window."""
    raw = text.strip().lower()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([hdw])", raw)
    if match:
        amount, unit = float(match.group(1)), match.group(2)
        try:
            start = now - timedelta(hours=amount) * {"h": 1, "d": 24, "w": 24 * 7}[unit]
        except OverflowError:
            start = None
        if start is None or start.year < 1900:
            raise BadValue(f"--since {text!r} reaches back before the year 1900; use a shorter window or a date.")
        return start
    if re.fullmatch(r"\d+(?:\.\d+)?", raw):
        raise BadValue(f"--since {text!r} has no unit; write {raw}d for {raw} days (or 2w, 36h, or a date like 2026-11-01).")
    try:
        return parse_timestamp(text)
    except BadValue:
        raise BadValue(f"--since {text!r} is neither a duration (14d, 2w, 36h) nor a date (2026-11-01)") from None


def xml_safe(text: str) -> str:
    """`text` with every character XML 1.0 forbids (control characters, U+FFFE, U+FFFF, lone
    surrogates) replaced by U+FFFD: a workbook holding one of them cannot be opened again."""
    return _NOT_XML.sub(REPLACEMENT, text)


def valid_unicode(value):
    """`value` (text, or lists and dicts of it) with lone surrogates replaced by U+FFFD: a model may
    send them, and no file or terminal can take them."""
    if isinstance(value, str):
        return _SURROGATE.sub(REPLACEMENT, value)
    if isinstance(value, list):
        return [valid_unicode(v) for v in value]
    if isinstance(value, dict):
        return {valid_unicode(k): valid_unicode(v) for k, v in value.items()}
    return value


def lone_surrogate(text: str) -> int | None:
    """The position of the first lone surrogate in `text` (it cannot be stored as UTF-8), else None."""
    match = _SURROGATE.search(text)
    return match.start() if match else None


def cell_text(value: object, limit: int) -> str:
    """Text safe for a cell of `limit` characters: XML-safe, and cut with a visible marker when longer."""
    text = xml_safe("" if value is None else str(value))
    if len(text) <= limit:
        return text
    keep = limit - len(TRUNCATION_MARKER.format(n=len(text)))
    if keep <= 0:
        return text[:limit]
    while len(TRUNCATION_MARKER.format(n=len(text) - keep)) < limit - keep:
        keep += 1  # the count of cut characters may have fewer digits than the whole length
    return text[:keep] + TRUNCATION_MARKER.format(n=len(text) - keep)


def as_text(value: object) -> str:
    """A cell value as the text a reader would see."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def shown(text: object) -> str:
    """Untrusted text (a pattern name, a model's reason) as it may be printed: no terminal control codes."""
    return _CONTROL.sub("\ufffd", str(text))
