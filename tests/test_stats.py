"""loop/measure/proportions.py against published values."""

from __future__ import annotations

import pytest

from loop.measure.proportions import agreement, compare, wilson


@pytest.mark.parametrize("k, n, low, high", [
    (0, 10, 0.0, 0.2775),  # upper bound z²/(n + z²)
    (5, 10, 0.2366, 0.7634),
    (81, 263, 0.2553, 0.3662),  # Newcombe (1998), Statistics in Medicine 17, table I
    (10, 10, 0.7225, 1.0),
])
def test_wilson_intervals_match_textbook_values(k, n, low, high):
    assert wilson(k, n) == pytest.approx((low, high), abs=5e-4)


def test_no_trials_is_the_whole_interval():
    assert wilson(0, 0) == (0.0, 1.0)


def test_two_proportion_test_matches_a_worked_example():
    # 45/100 then 60/100: pooled p = .525, z = 2.124, two-sided p = 0.0337
    result = compare(45, 100, 60, 100)
    assert result.difference == pytest.approx(0.15)
    assert result.p_value == pytest.approx(0.0337, abs=5e-4) and result.verdict == "better"
    assert compare(60, 100, 45, 100).verdict == "worse"
    assert compare(50, 100, 52, 100).verdict == "no clear change"


def test_too_few_cases_are_too_few_to_tell():
    assert compare(1, 3, 3, 3).verdict == "too few to tell" and compare(1, 3, 3, 3).p_value is None
    assert compare(0, 0, 5, 10).verdict == "too few to tell"


def test_cohens_kappa_matches_the_standard_example():
    # 50 items: both yes 20, person yes judge no 5, person no judge yes 10, both no 15 → κ = 0.4
    pairs = [("up", "up")] * 20 + [("up", "down")] * 5 + [("down", "up")] * 10 + [("down", "down")] * 15
    result = agreement(pairs)
    assert result.kappa == pytest.approx(0.4) and result.rate == pytest.approx(0.7)
    assert result.confusion[("down", "up")] == 10
    assert agreement([("up", "up")] * 4).kappa is None  # everyone said 👍: chance explains it all
