"""CONTRACT §4.2: with thousands of failures, every one reaches the pattern stage and no request
passes LOOP_MAX_INPUT_TOKENS."""

import json
import re

from loop import config
from loop.improver import pipeline
from loop.model import estimate_messages
from tests.conftest import draft, write_workbook

COMMENTS = ["too long", "menu path doesn't exist", "read the thread", "unrelated workaround", "rude tone"]


def test_twenty_thousand_rows_with_three_thousand_failures(workspace, model, monkeypatch):
    budget = 6000
    monkeypatch.setenv("LOOP_MAX_INPUT_TOKENS", str(budget))
    rows = []
    for i in range(20_000):
        if i % 20 < 3:  # 3,000 failures
            rows.append(draft(trace_id=f"f{i}", comment=COMMENTS[i % 5] + " " + "x" * (i % 700), days_ago=(i % 13) + 0.5,
                              draft="word " * (i % 400), thread="message\n" * (i % 50)))
        elif i % 20 < 5:
            rows.append(draft(trace_id=f"s{i}", score="👍", comment="", days_ago=(i % 13) + 0.5))
        else:
            rows.append(draft(trace_id=f"u{i}", score=None, comment="", days_ago=(i % 13) + 0.5))
    write_workbook(workspace / "loop.xlsx", rows)

    report = pipeline.improve(config.resolve(), check=False)

    assert len(report.window.failures) == 3000
    sent = []
    for request in model.requests:
        assert estimate_messages(request["messages"]) <= budget
        if request["response_format"]["json_schema"]["name"] == "failure_patterns":
            match = re.search(r'<data kind="failures">\n(.*?)\n</data>', request["messages"][-1]["content"], re.S)
            if match:
                sent += [item["trace_id"] for item in json.loads(match.group(1))]
    assert sorted(sent) == sorted(f"f{i}" for i in range(20_000) if i % 20 < 3)  # each failure exactly once
    assert sum(p.count for p in report.patterns) == 3000
    assert {p.name for p in report.patterns} >= {"Too verbose", "Wrong menu paths", "Missed thread context"}
    assert report.usage.calls == len(model.requests)
