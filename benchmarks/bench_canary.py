"""The canary's interval on simulated desks: how often equal arms stop, how fast a worse canary does.

Reviews arrive 10 per arm per batch, up to 500 per arm, and the interval is read after every batch.
1,000 desks each: equal arms (rates 0.5–0.9), a canary 15 points worse, one 15 points better.
Seeded, so the figures repeat. Usage: .venv/bin/python benchmarks/bench_canary.py [--desks 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loop.measure.simulate import desks  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--desks", type=int, default=1000)
    count = parser.parse_args().desks
    started = time.perf_counter()
    equal = desks(1, count, 0.0)
    worse = desks(2, count, -0.15)
    better = desks(3, count, 0.15)
    stopped_equal = sum(d.verdict != "too early" for d in equal) / count
    stopped_worse = [d.reviews for d in worse if d.verdict == "worse"]
    print(f"canary: {count} desks each, 10 reviews per arm per batch, up to 500 per arm")
    print(f"  equal arms ever stopped:           {stopped_equal:.1%} (at most 5%)")
    print(f"  15 points worse, stopped as worse: {len(stopped_worse) / count:.1%}, "
          f"median {statistics.median(stopped_worse):.0f} reviews per arm")
    print(f"  15 points better, promotion recommended: "
          f"{sum(d.verdict == 'better' for d in better) / count:.1%}")
    print(f"  {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
