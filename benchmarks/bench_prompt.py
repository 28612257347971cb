"""`loop.prompt(unit=…)` answered from the process cache, against a bare dict lookup in the same run.

A store on SQLite holds v1 and a canary v2 at 10%, so every call hashes its unit to find its arm.
Each call is timed alone (time.perf_counter_ns around one call); the floor is the same loop around
`d[key]` on a dict. Usage: .venv/bin/python benchmarks/bench_prompt.py [--calls 200000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import loop  # noqa: E402
from loop.prompt_store import PromptStore  # noqa: E402
from loop.store.db import connect  # noqa: E402


def percentiles(samples: list[int]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] / 1000, ordered[int(len(ordered) * 0.99)] / 1000


def timed(call, units: list[str]) -> list[int]:
    clock, found = time.perf_counter_ns, []
    for unit in units:
        start = clock()
        call(unit)
        found.append(clock() - start)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    calls = parser.parse_args().calls
    folder = Path(tempfile.mkdtemp(prefix="loop-bench-prompt-"))
    prompt = folder / "support_agent.md"
    prompt.write_text("You are a support agent.\n" * 40, encoding="utf-8")
    os.environ.update(LOOP_STORE=f"sqlite:///{folder}/loop.db", LOOP_PROMPT=str(prompt),
                      LOOP_PROMPT_CACHE=str(folder / "cache"), LOOP_SHEET=str(folder / "loop.xlsx"))
    store = PromptStore(prompt, db=connect(os.environ["LOOP_STORE"]))
    store.sync()
    store.commit(prompt.read_text() + "Be brief.\n", "apply", canary_share=0.1)
    units = [f"TH-{n}" for n in range(calls)]
    loop.prompt(unit="warm")  # the first call reads the store; every call after is from the cache
    table = {unit: unit for unit in units}
    floor = timed(table.__getitem__, units)
    served = timed(lambda unit: loop.prompt(unit=unit), units)
    canary = sum(loop.prompt(unit=u).arm == "canary" for u in units[:10_000]) / 10_000
    (f50, f99), (p50, p99) = percentiles(floor), percentiles(served)
    print(f"loop.prompt from the cache, {calls:,} calls, a canary at 10% ({canary:.1%} of units in it):")
    print(f"  bare dict lookup (floor): p50 {f50:.2f} µs, p99 {f99:.2f} µs")
    print(f"  loop.prompt(unit=…):      p50 {p50:.2f} µs ({p50 / f50:.0f}×), p99 {p99:.2f} µs ({p99 / f99:.0f}×); "
          f"target p99 ≤ 50 µs")
    print(f"  mean {statistics.fmean(served) / 1000:.2f} µs")


if __name__ == "__main__":
    main()
