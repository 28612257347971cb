"""loop/values.py against CONTRACT §3: every form a score, a date and a tick may take in a cell,
the `--since` window, header matching, and text cut to fit a cell."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

import pytest

from loop.cell_values import (DOWN, UP, BadValue, cell_text, is_ticked, normalize_header, parse_score, parse_since,
                              parse_timestamp)

UTC = timezone.utc

# --- score (§3 Drafts `score`) -------------------------------------------------------------------

DOWN_FORMS = ["👎", "down", "thumbs down", "bad", "no", "n", "0", "-", "false", "fail", False, 0]
UP_FORMS = ["👍", "up", "thumbs up", "good", "yes", "y", "1", "+", "true", "pass", True, 1, 1.0]


@pytest.mark.parametrize("value", DOWN_FORMS, ids=repr)
def test_score_down_forms_mean_down(value):
    assert parse_score(value) == DOWN


@pytest.mark.parametrize("value", UP_FORMS, ids=repr)
def test_score_up_forms_mean_up(value):
    assert parse_score(value) == UP


def test_a_false_cell_is_down_and_a_true_cell_is_up():
    # bool is a subclass of int: a FALSE/TRUE cell must not be read through the number branch by accident
    assert parse_score(False) == DOWN
    assert parse_score(True) == UP
    assert parse_score(0.0) == DOWN


@pytest.mark.parametrize(
    "value, expected",
    [("  DOWN ", DOWN), ("Thumbs Down", DOWN), ("THUMBS  UP", UP), ("\tYes\n", UP), (" FALSE ", DOWN),
     (" Pass", UP), ("N", DOWN), ("Y ", UP)],
    ids=repr,
)
def test_score_ignores_case_and_surrounding_spaces(value, expected):
    assert parse_score(value) == expected


@pytest.mark.parametrize("value, expected", [("👎🏽", DOWN), ("👍🏿", UP), ("👎🏻", DOWN), ("👍\ufe0f", UP)], ids=repr)
def test_score_thumb_with_a_skin_tone_or_variation_selector_is_still_a_thumb(value, expected):
    assert parse_score(value) == expected


@pytest.mark.parametrize("value", [None, "", "   ", "\t\n"], ids=repr)
def test_blank_score_means_not_reviewed_yet(value):
    assert parse_score(value) is None


@pytest.mark.parametrize("value", ["maybe", "meh", "👌", "2", 2, 0.5, -1, "thumbs sideways", "upp"], ids=repr)
def test_any_other_score_is_a_bad_value_naming_the_value(value):
    with pytest.raises(BadValue) as raised:
        parse_score(value)
    assert str(value) in str(raised.value)


# --- created_at (§3 Drafts `created_at`) ---------------------------------------------------------


def test_created_at_naive_datetime_cell_is_utc():
    assert parse_timestamp(datetime(2026, 11, 23, 15, 30)) == datetime(2026, 11, 23, 15, 30, tzinfo=UTC)


def test_created_at_aware_datetime_is_converted_to_utc():
    moment = datetime(2026, 11, 23, 15, 30, tzinfo=timezone(timedelta(hours=2)))
    parsed = parse_timestamp(moment)
    assert parsed == datetime(2026, 11, 23, 13, 30, tzinfo=UTC)
    assert parsed.utcoffset() == timedelta(0)


def test_created_at_date_cell_is_midnight_utc():
    assert parse_timestamp(date(2026, 11, 23)) == datetime(2026, 11, 23, tzinfo=UTC)


def test_created_at_iso_date_only():
    assert parse_timestamp("2026-11-23") == datetime(2026, 11, 23, tzinfo=UTC)


def test_created_at_iso_naive_is_utc():
    parsed = parse_timestamp(" 2026-11-23T15:30:00 ")
    assert parsed == datetime(2026, 11, 23, 15, 30, tzinfo=UTC)
    assert parsed.utcoffset() == timedelta(0)


def test_created_at_iso_with_offset_is_converted_to_utc():
    parsed = parse_timestamp("2026-11-23T15:30:00-05:00")
    assert parsed == datetime(2026, 11, 23, 20, 30, tzinfo=UTC)
    assert parsed.utcoffset() == timedelta(0)


def test_created_at_iso_with_z_is_utc():
    assert parse_timestamp("2026-11-23T15:30:00Z") == datetime(2026, 11, 23, 15, 30, tzinfo=UTC)


def test_created_at_serial_number_float():
    # 45988.5 days after 1899-12-30 (the spreadsheet epoch) is noon on 2025-11-27
    assert parse_timestamp(45988.5) == datetime(2025, 11, 27, 12, 0, tzinfo=UTC)


def test_created_at_serial_number_int():
    assert parse_timestamp(45988) == datetime(2025, 11, 27, tzinfo=UTC)


def test_created_at_serial_number_as_text():
    assert parse_timestamp("45988.5") == datetime(2025, 11, 27, 12, 0, tzinfo=UTC)
    assert parse_timestamp(" 45988 ") == datetime(2025, 11, 27, tzinfo=UTC)


@pytest.mark.parametrize("value", ["yesterday", "23/11/2026 lunchtime", "2026-13-45", "not a date", "", None],
                         ids=repr)
def test_created_at_unreadable_text_is_a_bad_value(value):
    with pytest.raises(BadValue):
        parse_timestamp(value)


@pytest.mark.parametrize("value", [True, False], ids=repr)
def test_created_at_a_bool_is_a_bad_value_not_a_serial_number(value):
    with pytest.raises(BadValue):
        parse_timestamp(value)


def test_created_at_implausible_serial_number_is_a_bad_value():
    for value in (-5, 0, 10**9, float("nan"), float("inf")):
        with pytest.raises(BadValue):
            parse_timestamp(value)


# --- approve ticks (§3 Edits `approve`) ----------------------------------------------------------


@pytest.mark.parametrize("value", [True, "TRUE", "true", "yes", "Yes", "y", "x", "X", " x ", "✓", "✔"], ids=repr)
def test_ticked_forms_mean_approved(value):
    assert is_ticked(value) is True


@pytest.mark.parametrize("value", [False, "FALSE", "", None, "no", "n", "maybe", "0"], ids=repr)
def test_unticked_forms_mean_not_approved(value):
    assert is_ticked(value) is False


# --- --since (§4.1) ------------------------------------------------------------------------------

NOW = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)


def test_since_days():
    assert parse_since("14d", NOW) == NOW - timedelta(days=14)


def test_since_weeks():
    assert parse_since("2w", NOW) == NOW - timedelta(days=14)


def test_since_hours():
    assert parse_since("36h", NOW) == NOW - timedelta(hours=36)


def test_since_a_date():
    assert parse_since("2026-11-01", NOW) == datetime(2026, 11, 1, tzinfo=UTC)


def test_since_ignores_case_and_spaces():
    assert parse_since(" 14D ", NOW) == NOW - timedelta(days=14)


@pytest.mark.parametrize("text", ["fortnight", "14x", "d14", ""], ids=repr)
def test_since_unreadable_is_a_bad_value_naming_the_forms(text):
    with pytest.raises(BadValue, match="14d"):
        parse_since(text, NOW)


# --- headers (§3: case-insensitive, ignoring spaces, `_` and `-`) ---------------------------------


@pytest.mark.parametrize("header", ["trace_id", "Trace ID", "TRACE_ID", "trace-id", " Trace  Id ", "TraceID", "trace__id"])
def test_headers_match_ignoring_case_spaces_underscores_and_dashes(header):
    assert normalize_header(header) == normalize_header("trace_id") == "traceid"


def test_different_headers_stay_different():
    assert normalize_header("score") != normalize_header("judge_score")
    assert normalize_header(None) == ""


# --- cell text (§3: text over the cell limit is cut with a visible marker) -------------------------


def test_cell_text_leaves_text_within_the_limit_alone():
    assert cell_text("short", 10) == "short"
    assert cell_text("x" * 10, 10) == "x" * 10
    assert cell_text(None, 10) == ""


@pytest.mark.parametrize("length, limit", [(60_000, 50_000), (40_000, 32_767), (33_000, 32_767), (32_768, 32_767),
                                           (100_000, 32_767), (100, 50)])
def test_cell_text_cuts_long_text_with_a_visible_marker_that_counts_what_was_cut(length, limit):
    text = "".join(chr(ord("a") + i % 26) for i in range(length))
    cut = cell_text(text, limit)
    assert len(cut) <= limit
    match = re.search(r"…\[cut: (\d+) more characters\]$", cut)
    assert match, cut[-60:]
    kept = cut[: match.start()].rstrip(" ")
    assert text.startswith(kept)
    assert int(match.group(1)) == length - len(cut[: match.start() - 1])


@pytest.mark.parametrize("length, limit", [(40_000, 32_767), (33_000, 32_767), (32_768, 32_767), (100, 50),
                                           (60_000, 50_000), (50_001, 50_000)])
def test_cell_text_fills_the_cell_exactly_to_the_limit(length, limit):
    # the count of cut characters may have fewer digits than the whole length: the cut must still fill the cell
    assert len(cell_text("a" * length, limit)) == limit


def test_cell_text_never_exceeds_a_limit_shorter_than_the_marker():
    assert len(cell_text("a" * 100, 20)) <= 20
