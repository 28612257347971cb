"""Pattern bookkeeping (every failure in exactly one pattern) and configuration precedence."""

import pytest

from loop import config
from loop.errors import UsageError
from loop.improver.patterns import UNASSIGNED, PatternAnswer, _assign, _by_name


def test_invented_trace_ids_are_dropped_and_left_out_failures_are_gathered():
    answers = [PatternAnswer(name="Too long", description="d", trace_ids=["a", "ghost", "a"]),
               PatternAnswer(name="Tone", description="d", trace_ids=["b", "a"])]
    patterns = _assign(["a", "b", "c"], answers)
    assert [(p.name, p.trace_ids) for p in patterns] == [("Too long", ["a"]), ("Tone", ["b"]), (UNASSIGNED, ["c"])]


def test_patterns_with_the_same_name_from_different_batches_are_joined():
    first = _assign(["a"], [PatternAnswer(name="Too long", description="d", trace_ids=["a"])])
    second = _assign(["b"], [PatternAnswer(name="too LONG", description="d", trace_ids=["b"])])
    joined = _by_name(first + second)
    assert [(p.name, p.trace_ids) for p in joined] == [("Too long", ["a", "b"])]


def test_flags_beat_environment_which_beats_defaults(monkeypatch):
    monkeypatch.delenv("LOOP_SHEET", raising=False)
    monkeypatch.delenv("LOOP_MODEL", raising=False)
    assert config.resolve().sheet == config.DEFAULT_SHEET
    monkeypatch.setenv("LOOP_SHEET", "env.xlsx")
    monkeypatch.setenv("LOOP_MODEL", "env-model")
    assert config.resolve().sheet == "env.xlsx"
    assert config.resolve(sheet="flag.xlsx", model="flag-model").model == "flag-model"
    assert config.resolve(sheet="flag.xlsx").sheet == "flag.xlsx"


@pytest.mark.parametrize("name, value", [("LOOP_MAX_INPUT_TOKENS", "lots"), ("LOOP_MAX_EDIT_CHARS", "0"),
                                         ("LOOP_TIMEOUT", "soon"), ("LOOP_MAX_EDIT_SHARE", "1.5"),
                                         ("LOOP_MAX_EDIT_SHARE", "half")])
def test_a_bad_number_in_the_environment_is_a_usage_error_naming_it(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(UsageError, match=name):
        config.resolve()
