"""The few statistics of 👍 rates the report needs, written out so their limits are plain.

- A 👍 rate gets a 95% Wilson score interval: unlike the textbook ±1.96·√(p(1−p)/n), it stays inside
  [0, 1] and is honest for small samples and rates near 0 or 1.
- Two rates are compared with a two-sided two-proportion z-test (pooled standard error). With fewer
  than 5 expected successes or failures in either group the normal approximation fails, and the
  comparison says "too few to tell" instead of a p-value.
- Agreement between the judge and people is Cohen's kappa: agreement beyond what their own rates of
  👍 would give by chance (1 = always agree, 0 = chance, below 0 = worse than chance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054
ALPHA = 0.05


@dataclass(frozen=True)
class Tally:
    """People's reviews of some drafts: how many, the 👍 among them, the rate and its Wilson interval."""

    reviewed: int
    up: int
    rate: float | None
    low: float | None
    high: float | None


def tally(scores: list[str | None], up_mark: str) -> Tally:
    """The reviews among `scores` (None: not reviewed by a person) and their 👍 rate with its interval."""
    reviewed = [s for s in scores if s is not None]
    up = sum(s == up_mark for s in reviewed)
    if not reviewed:
        return Tally(0, 0, None, None, None)
    return Tally(len(reviewed), up, up / len(reviewed), *wilson(up, len(reviewed)))


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The 95% Wilson score interval of successes/trials; (0, 1) when there are no trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Comparison:
    difference: float  # rate after − rate before
    p_value: float | None  # None: too few cases for the test
    verdict: str  # better, worse, no clear change, too few to tell


def compare(before_up: int, before_n: int, after_up: int, after_n: int, alpha: float = ALPHA) -> Comparison:
    """Did the rate change from before to after? A two-sided two-proportion z-test."""
    if not before_n or not after_n:
        return Comparison(0.0, None, "too few to tell")
    p1, p2 = before_up / before_n, after_up / after_n
    pooled = (before_up + after_up) / (before_n + after_n)
    expected = [pooled * before_n, (1 - pooled) * before_n, pooled * after_n, (1 - pooled) * after_n]
    if min(expected) < 5:
        return Comparison(p2 - p1, None, "too few to tell")
    error = math.sqrt(pooled * (1 - pooled) * (1 / before_n + 1 / after_n))
    z = (p2 - p1) / error if error else 0.0
    p_value = math.erfc(abs(z) / math.sqrt(2))
    verdict = "no clear change" if p_value >= alpha else ("better" if p2 > p1 else "worse")
    return Comparison(p2 - p1, p_value, verdict)


@dataclass(frozen=True)
class Agreement:
    both: int
    agree: int
    kappa: float | None  # None when chance agreement is total (everyone said the same)
    confusion: dict[tuple[str, str], int]  # (person, judge) → count, each "up" or "down"

    @property
    def rate(self) -> float:
        return self.agree / self.both if self.both else 0.0


def agreement(pairs: list[tuple[str, str]]) -> Agreement:
    """How often the judge agreed with people on the same drafts, and Cohen's kappa."""
    labels = ("up", "down")
    confusion = {(a, b): 0 for a in labels for b in labels}
    for person, judge in pairs:
        confusion[(person, judge)] += 1
    both = len(pairs)
    agree = confusion[("up", "up")] + confusion[("down", "down")]
    if not both:
        return Agreement(0, 0, None, confusion)
    observed = agree / both
    chance = sum((sum(confusion[(label, j)] for j in labels) / both) * (sum(confusion[(p, label)] for p in labels) / both)
                 for label in labels)
    kappa = None if chance >= 1 else (observed - chance) / (1 - chance)
    return Agreement(both, agree, kappa, confusion)
