"""The spans of traces the receiver has not seen whole: an exporter sends a trace's spans as they
end, in as many requests as it likes, and the agent's own span (the trace's root) comes last. They
wait here, committed (so a 200 never loses one), until the root arrives or the trace goes quiet."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from loop.store import now_text, utc_text


class SpanBuffer:
    def __init__(self, db):
        self.db = db

    def keep(self, spans) -> None:
        """Commit spans to wait for the rest of their traces; one sent again is kept once."""
        if spans:
            stamp = now_text()
            with self.db.transaction() as db:
                db.executemany("INSERT INTO trace_spans (trace_id, span_id, span, at) VALUES (?, ?, ?, ?) "
                               "ON CONFLICT (trace_id, span_id) DO NOTHING",
                               [(s.trace_id, s.span_id, s.dumps(), stamp) for s in spans])

    def waiting(self, trace_ids) -> dict[str, list]:
        """The spans kept for each of `trace_ids` that has any."""
        from loop.collect.spans import Span

        ids = sorted(set(trace_ids))
        found: dict[str, list] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for trace_id, text in self.db.execute(
                    f"SELECT trace_id, span FROM trace_spans WHERE trace_id IN ({', '.join('?' * len(chunk))})",
                    tuple(chunk)):
                found.setdefault(trace_id, []).append(Span.loads(text))
        return found

    def quiet(self, seconds: float, limit: int = 200) -> list[str]:
        """Traces no span of which arrived for `seconds`: their root is not coming (it is in another
        service, or was never exported), so they are taken as they are."""
        cut = utc_text(datetime.now(timezone.utc) - timedelta(seconds=seconds))
        rows = self.db.execute("SELECT trace_id FROM trace_spans GROUP BY trace_id HAVING MAX(at) < ? "
                               f"LIMIT {int(limit)}", (cut,))
        return [row[0] for row in rows]

    def done(self, trace_ids) -> None:
        ids = sorted(set(trace_ids))
        if ids:
            with self.db.transaction() as db:
                for start in range(0, len(ids), 500):
                    chunk = ids[start:start + 500]
                    db.execute(f"DELETE FROM trace_spans WHERE trace_id IN ({', '.join('?' * len(chunk))})",
                               tuple(chunk))
