"""An anytime-valid interval for the difference of two 👍 rates (canary − current).

A canary's report is read again after every batch of reviews, so a fixed-sample test would stop
far more than 5% of equal arms by chance. This is the asymptotic confidence sequence of
Waudby-Smith et al. (normal mixture, Howard et al.): the interval holds at every look at once,
with probability at least 1 − α (α = 0.05, two-sided). Its radius is

    se · sqrt((nρ² + 1) / (nρ²) · 2 · ln(sqrt(nρ² + 1) / α))

with se the two-sample standard error, n the reviews of the smaller arm and ρ tuned so the
interval is tightest near PLANNED reviews per arm. It is asymptotic, so it is guarded at small n:
no verdict before MIN_REVIEWS per arm, and each arm's variance is estimated from a rate pulled
towards ½ by one 👍 and one 👎 and never below VARIANCE_FLOOR (a 20/20 arm is not certain).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ALPHA = 0.05
PLANNED = 500
MIN_REVIEWS = 30
VARIANCE_FLOOR = 0.05 * 0.95
NEAR_ZERO = 0.05  # an observed difference smaller than this asks how long a 10-point one would take
TEN_POINTS = 0.10
MOST = 100_000


def rho_squared(planned: int = PLANNED, alpha: float = ALPHA) -> float:
    """ρ² that makes the boundary tightest at `planned` observations (Howard et al., eq. 3.10)."""
    a = -2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)
    return a / planned


def _variance(up: int, n: int) -> float:
    p = (up + 1) / (n + 2)
    return max(p * (1 - p), VARIANCE_FLOOR)


def radius(variance: float, n: int, alpha: float = ALPHA, planned: int = PLANNED) -> float:
    """Half-width of the interval after n reviews per arm, for the summed per-arm variances."""
    r2 = rho_squared(planned, alpha)
    nr = n * r2
    return math.sqrt(variance / n) * math.sqrt((nr + 1) / nr * 2 * math.log(math.sqrt(nr + 1) / alpha))


@dataclass(frozen=True)
class Sequential:
    difference: float  # canary rate − current rate
    low: float
    high: float
    verdict: str  # better, worse, too early
    more: int | None  # about how many more reviews per arm would tell; None once it has told
    more_for: float | None  # the difference `more` is for: the observed one, or 0.10 when that is ~0


def compare(current_up: int, current_n: int, canary_up: int, canary_n: int,
            alpha: float = ALPHA, planned: int = PLANNED) -> Sequential:
    """The anytime-valid interval and verdict after the reviews so far."""
    p_current = current_up / current_n if current_n else 0.0
    p_canary = canary_up / canary_n if canary_n else 0.0
    d = p_canary - p_current
    n = min(current_n, canary_n)
    var_current, var_canary = _variance(current_up, current_n), _variance(canary_up, canary_n)
    if n < 1:
        return Sequential(d, -1.0, 1.0, "too early", MIN_REVIEWS, TEN_POINTS)
    # se from each arm's own size; the mixture's factor from the smaller arm (the cautious side).
    se2 = var_current / max(current_n, 1) + var_canary / max(canary_n, 1)
    r = radius(se2 * n, n, alpha, planned)
    low, high = max(-1.0, d - r), min(1.0, d + r)
    if n >= MIN_REVIEWS and low > 0:
        return Sequential(d, low, high, "better", None, None)
    if n >= MIN_REVIEWS and high < 0:
        return Sequential(d, low, high, "worse", None, None)
    target = abs(d) if abs(d) >= NEAR_ZERO else TEN_POINTS
    needed = reviews_to_tell(var_current + var_canary, target, alpha, planned)
    more = None if needed is None else max(needed, MIN_REVIEWS) - n
    return Sequential(d, low, high, "too early", max(more, 1) if more is not None else None, target)


def reviews_to_tell(variance: float, difference: float, alpha: float = ALPHA,
                    planned: int = PLANNED) -> int | None:
    """Reviews per arm at which the interval around `difference` would exclude 0; None past MOST."""
    if difference <= 0 or radius(variance, MOST, alpha, planned) >= difference:
        return None
    lo, hi = 1, MOST
    while lo < hi:
        mid = (lo + hi) // 2
        if radius(variance, mid, alpha, planned) < difference:
            hi = mid
        else:
            lo = mid + 1
    return lo
