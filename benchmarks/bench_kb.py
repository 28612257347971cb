"""Benchmark loop.collect.knowledge_base on a large synthetic help centre: is the index cheap enough to refresh before
every agent session, and is a search fast enough to sit inside an agent's tool call?

It writes N Markdown documents (deterministic: a seeded made-up vocabulary drawn with Zipf-like
frequencies, so a few words are very common and most are rare, as in real prose; 100-600 words
each) to a temporary folder, then times:
  - the first index build (refresh() on an empty index),
  - a refresh with nothing changed (a folder scan: one stat per file, no reads),
  - a refresh after 10 files were rewritten,
  - 200 searches of 1-4 words (a mix of common and rare words), each opening its own connection
    as the agent's calls do.

Usage: .venv/bin/python benchmarks/bench_kb.py [--docs 10000] [--searches 200] [--seed 7]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for `loop` without installing

from loop.collect.knowledge_base import KnowledgeBase

VOCABULARY_SIZE = 20_000


def vocabulary(rng: random.Random) -> tuple[list[str], list[float]]:
    """Made-up words and cumulative Zipf weights (word k is drawn with probability ~ 1/k)."""
    words = list(dict.fromkeys("".join(rng.choices("etaoinshrdlucmfwypvbgk", k=rng.randint(3, 10)))
                               for _ in range(VOCABULARY_SIZE * 2)))[:VOCABULARY_SIZE]
    return words, list(itertools.accumulate(1 / (k + 1) for k in range(len(words))))


def document(rng: random.Random, words: list[str], cum: list[float]) -> str:
    title = " ".join(rng.choices(words, cum_weights=cum, k=rng.randint(3, 8))).capitalize()
    body = rng.choices(words, cum_weights=cum, k=rng.randint(100, 600))
    paragraphs = [" ".join(body[i:i + 60]).capitalize() + "." for i in range(0, len(body), 60)]
    return f"# {title}\n\n" + "\n\n".join(paragraphs) + "\n"


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    words, cum = vocabulary(rng)
    with tempfile.TemporaryDirectory(prefix="bench-kb-") as tmp:
        folder = Path(tmp) / "kb"
        for i in range(args.docs):
            path = folder / f"section-{i % 50:02d}" / f"article-{i:05d}.md"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(document(rng, words, cum), encoding="utf-8")
        corpus_mb = sum(p.stat().st_size for p in folder.rglob("*.md")) / 1e6

        build_s, counts = timed(KnowledgeBase(folder).refresh)
        assert counts == (args.docs, 0, 0), counts
        # A new instance each time: what a fresh agent process pays before its first search.
        no_change = [timed(KnowledgeBase(folder).refresh) for _ in range(5)]
        assert all(c == (0, 0, 0) for _, c in no_change)
        no_change_s = statistics.median(t for t, _ in no_change)

        for path in rng.sample(sorted(folder.rglob("*.md")), 10):
            before = path.stat().st_mtime_ns
            path.write_text(document(rng, words, cum), encoding="utf-8")
            os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))
        changed_s, counts = timed(KnowledgeBase(folder).refresh)
        assert counts == (0, 10, 0), counts

        kb = KnowledgeBase(folder)
        kb.refresh()
        common, rare = words[:200], words[200:]
        queries = [" ".join(rng.sample(common, 1) + rng.sample(rare, rng.randint(0, 3))) for _ in range(args.searches)]
        latencies, hits = [], 0
        for query in queries:
            seconds, results = timed(lambda q=query: kb.search(q, limit=5))
            latencies.append(seconds * 1000)
            hits += len(results)
        index_mb = sum(p.stat().st_size for p in Path(tmp, "kb").glob(".kb-index.sqlite*")) / 1e6

    print(f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}; {args.docs:,} documents, "
          f"{corpus_mb:.1f} MB of Markdown, index {index_mb:.1f} MB; {args.searches} searches "
          f"(avg {hits / len(queries):.1f} hits)\n")
    print("| measure | value |")
    print("|---|---:|")
    print(f"| index build ({args.docs:,} docs) | {build_s:.2f} s |")
    print(f"| refresh, nothing changed (median of 5) | {no_change_s * 1000:.0f} ms |")
    print(f"| refresh, 10 files changed | {changed_s * 1000:.0f} ms |")
    print(f"| search p50 | {percentile(latencies, 50):.2f} ms |")
    print(f"| search p95 | {percentile(latencies, 95):.2f} ms |")


if __name__ == "__main__":
    main()
