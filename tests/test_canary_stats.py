"""The canary's anytime-valid interval: equal arms rarely stop however often it is read."""

import statistics

from hypothesis import given, strategies as st

from loop.measure.sequential import MIN_REVIEWS, compare, reviews_to_tell
from loop.measure.simulate import desks


def test_equal_arms_stop_at_most_five_percent_over_fifty_looks():
    aa = desks(seed=1, count=1000, shift=0.0)
    stopped = sum(d.verdict != "too early" for d in aa)
    assert stopped / len(aa) <= 0.05


def test_a_canary_fifteen_points_worse_is_stopped_and_one_better_recommended():
    worse = desks(seed=2, count=300, shift=-0.15)
    stopped = [d.reviews for d in worse if d.verdict == "worse"]
    assert len(stopped) / len(worse) >= 0.9
    assert statistics.median(stopped) <= 300
    assert not any(d.verdict == "better" for d in worse)
    better = desks(seed=3, count=300, shift=0.15)
    assert sum(d.verdict == "better" for d in better) / len(better) >= 0.9


def test_no_verdict_before_the_minimum_reviews_per_arm():
    assert compare(0, MIN_REVIEWS - 1, MIN_REVIEWS - 1, MIN_REVIEWS - 1).verdict == "too early"
    assert compare(0, MIN_REVIEWS, MIN_REVIEWS, MIN_REVIEWS).verdict == "better"


def test_too_early_says_how_many_more_reviews_and_for_which_difference():
    near_zero = compare(40, 50, 40, 50)
    assert near_zero.verdict == "too early" and near_zero.more_for == 0.10 and near_zero.more > 0
    seen = compare(35, 50, 40, 50)
    assert seen.more_for == 0.10 or abs(seen.more_for - 0.10) < 1e-9
    after = compare(35 * 8, 50 * 8, 40 * 8, 50 * 8)  # the same rates with more reviews tell sooner
    assert after.more is None or after.more < seen.more
    assert reviews_to_tell(0.32, 0.0) is None


counts = st.integers(0, 400).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


@given(counts, counts)
def test_interval_contains_the_difference_and_is_symmetric_under_swapping_arms(a, b):
    (up_a, n_a), (up_b, n_b) = a, b
    one, other = compare(up_a, n_a, up_b, n_b), compare(up_b, n_b, up_a, n_a)
    assert one.low <= one.difference <= one.high
    assert abs(one.difference + other.difference) < 1e-12
    assert abs(one.low + other.high) < 1e-9 or one.low == -1.0 or other.high == 1.0
    flipped = {"better": "worse", "worse": "better", "too early": "too early"}
    assert other.verdict == flipped[one.verdict]
