"""The PostgreSQL fixtures themselves: each test gets its own real, empty database."""
import psycopg
import pytest

_seen: list[str] = []


def test_a_table_round_trips_a_row(postgres_url):
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE drafts (trace_id text PRIMARY KEY, draft text NOT NULL)")
        conn.execute("INSERT INTO drafts VALUES (%s, %s)", ("t-1", "Go to Reports ✓"))
        assert conn.execute("SELECT trace_id, draft FROM drafts").fetchall() == [("t-1", "Go to Reports ✓")]


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_a_distinct_empty_database(postgres_url, run):
    """What one test creates is gone for the next: its database is another, and the old one is dropped."""
    with psycopg.connect(postgres_url) as conn:
        name = conn.execute("SELECT current_database()").fetchone()[0]
        assert name.startswith("loop_test_") and name not in _seen
        tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
        assert tables == []
        dropped = conn.execute("SELECT count(*) FROM pg_database WHERE datname = ANY(%s)", (_seen,)).fetchone()[0]
        assert dropped == 0
        conn.execute("CREATE TABLE left_behind (id int)")
    _seen.append(name)
