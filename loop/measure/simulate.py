"""Simulated review desks, to show what the canary's interval does over repeated looks."""

from __future__ import annotations

import random
from dataclasses import dataclass

from loop.measure.sequential import compare


@dataclass(frozen=True)
class Desk:
    verdict: str  # the first verdict other than "too early", or "too early" at the end
    reviews: int  # reviews per arm when it stopped (or the last look)


def run_desk(rng: random.Random, current_rate: float, canary_rate: float,
             batch: int = 10, most: int = 500) -> Desk:
    """Reviews arrive `batch` per arm at a time; the interval is read after every batch."""
    up_current = up_canary = n = 0
    rand = rng.random
    while n < most:
        up_current += sum(rand() < current_rate for _ in range(batch))
        up_canary += sum(rand() < canary_rate for _ in range(batch))
        n += batch
        verdict = compare(up_current, n, up_canary, n).verdict
        if verdict != "too early":
            return Desk(verdict, n)
    return Desk("too early", n)


def desks(seed: int, count: int, shift: float, batch: int = 10, most: int = 500) -> list[Desk]:
    """`count` desks with current rates spread over 0.5–0.9 and the canary `shift` away."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        current = 0.5 + 0.4 * i / max(count - 1, 1)
        canary = min(1.0, max(0.0, current + shift))
        out.append(run_desk(rng, current, canary, batch, most))
    return out
