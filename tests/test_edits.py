"""loop/edits.py against CONTRACT §4.4: every reason a proposed edit is rejected before anyone sees
it, the overlap rule, and applying an edit to the prompt."""

from __future__ import annotations

import pytest

from loop.improver.edits import PROPOSED, REJECTED, Edit, NotLocated, apply_one, change_size, locate, validate
from tests.conftest import PROMPT

FAILURES = {"f1", "f2", "f3", "f4"}
SUCCESS = "s1"  # a draft scored up: in the window, but not a failure
LIMIT = 600


def edit(find, replace, evidence=("f1",), edit_id="e1", pattern="too long") -> Edit:
    return Edit(edit_id=edit_id, pattern=pattern, find=find, replace=replace, rationale="because",
                evidence=list(evidence))


def check(*edits, prompt=PROMPT, failures=FAILURES, limit=LIMIT) -> list[Edit]:
    return validate(list(edits), prompt, set(failures), limit)


def test_a_good_edit_is_proposed_with_an_empty_check():
    [result] = check(edit("Be friendly and professional in every reply.",
                          "Be friendly and professional in every reply. Keep replies to two sentences."))
    assert (result.status, result.check) == (PROPOSED, "")


# --- find must identify exactly one passage ------------------------------------------------------


def test_rejects_find_absent_from_the_prompt():
    [result] = check(edit("Always answer in French.", "Always answer in English."))
    assert result.status == REJECTED
    assert "not in the prompt" in result.check


def test_rejects_find_present_more_than_once():
    prompt = "Be brief.\nCheck the knowledge base.\nBe brief.\n"
    [result] = check(edit("Be brief.", "Be brief: two sentences."), prompt=prompt)
    assert result.status == REJECTED
    assert "2 times" in result.check


def test_rejects_find_present_more_than_once_up_to_whitespace():
    prompt = "Be  brief.\nCheck the knowledge base.\nBe\nbrief.\n"
    [result] = check(edit("Be brief.", "Be brief: two sentences."), prompt=prompt)
    assert result.status == REJECTED
    assert "2 times" in result.check


def test_rejects_an_empty_find():
    [result] = check(edit("   ", "Add this line."))
    assert result.status == REJECTED
    assert "empty" in result.check


def test_accepts_a_unique_whitespace_insensitive_match_with_a_newline_for_a_space():
    find = "search the knowledge base\nbefore you answer."
    assert find not in PROMPT
    [result] = check(edit(find, "search the knowledge base before you answer, and cite the article."))
    assert result.status == PROPOSED, result.check


def test_accepts_a_unique_whitespace_insensitive_match_with_extra_spaces():
    find = "  Escalate   billing  disputes to a person. "
    [result] = check(edit(find, "Escalate billing disputes and refund requests to a person."))
    assert result.status == PROPOSED, result.check


def test_whitespace_insensitive_match_locates_and_replaces_the_right_span():
    find = "Never invent UI paths;\n   copy them   from the knowledge base."
    start, end = locate(PROMPT, find)
    assert PROMPT[start:end] == "Never invent UI paths; copy them from the knowledge base."
    new = apply_one(PROMPT, edit(find, "Never invent UI paths; quote them from the knowledge base."))
    assert new == PROMPT.replace("Never invent UI paths; copy them from the knowledge base.",
                                 "Never invent UI paths; quote them from the knowledge base.")


def test_apply_one_replaces_an_exact_match():
    new = apply_one(PROMPT, edit("Be friendly", "Be warm"))
    assert new == PROMPT.replace("Be friendly", "Be warm")
    assert new.count("Be warm") == 1


def test_apply_one_raises_not_located_when_find_is_gone():
    prompt = PROMPT.replace("Escalate billing disputes to a person.", "Escalate billing disputes to billing@.")
    with pytest.raises(NotLocated):
        apply_one(prompt, edit("Escalate billing disputes to a person.", "Escalate billing disputes to a human."))


def test_apply_one_raises_not_located_when_find_is_ambiguous():
    with pytest.raises(NotLocated):
        apply_one("Be brief.\nBe brief.\n", edit("Be brief.", "Be short."))


# --- evidence must be failures in the window -----------------------------------------------------


def test_rejects_an_edit_with_no_evidence():
    [result] = check(edit("Be friendly", "Be warm", evidence=()))
    assert result.status == REJECTED
    assert "no evidence" in result.check


def test_rejects_evidence_that_is_a_success_not_a_failure():
    [result] = check(edit("Be friendly", "Be warm", evidence=("f1", SUCCESS)), failures=FAILURES)
    assert result.status == REJECTED
    assert SUCCESS in result.check and "not a failure" in result.check


def test_rejects_evidence_with_an_unknown_trace_id():
    [result] = check(edit("Be friendly", "Be warm", evidence=("t-does-not-exist",)))
    assert result.status == REJECTED
    assert "t-does-not-exist" in result.check


# --- no-ops --------------------------------------------------------------------------------------


def test_rejects_a_no_op():
    [result] = check(edit("Be friendly and professional", "Be friendly and professional"))
    assert result.status == REJECTED
    assert "no-op" in result.check


def test_rejects_a_no_op_up_to_whitespace():
    [result] = check(edit("Be friendly and professional", "Be  friendly\nand professional "))
    assert result.status == REJECTED
    assert "no-op" in result.check


# --- size ----------------------------------------------------------------------------------------


def test_change_size_counts_characters_removed_plus_added():
    assert change_size("Be friendly.", "Be friendly.") == 0
    assert change_size("Be friendly.", "Be very friendly.") == len("very ")
    assert change_size("cat", "dog") == 6
    assert change_size("Be friendly.", "") == len("Be friendly.")


def test_rejects_a_find_longer_than_the_bound():
    long_prompt = PROMPT + "Policy: " + "refunds are handled by billing. " * 30 + "\n"
    passage = "Policy: " + "refunds are handled by billing. " * 30
    # a one-word change of a long passage is still a rewrite-sized edit
    [result] = check(edit(passage, passage.replace("Policy:", "Rule:")), prompt=long_prompt, limit=200)
    assert len(passage) > 200
    assert result.status == REJECTED
    assert "too large" in result.check and "200" in result.check


def test_rejects_a_change_larger_than_the_bound():
    addition = " Keep replies short." * 15
    [result] = check(edit("Be friendly.", "Be friendly." + addition), prompt="Be friendly.\n", limit=200)
    assert change_size("Be friendly.", "Be friendly." + addition) > 200
    assert result.status == REJECTED
    assert "too large" in result.check


def test_the_size_bound_is_configurable():
    find, replace = "Be friendly", "Be friendly, brief and exact, in two sentences at most"
    size = change_size(find, replace)
    assert len(find) < size
    [small_bound] = check(edit(find, replace), limit=size - 1)
    [large_bound] = check(edit(find, replace), limit=size)
    assert small_bound.status == REJECTED and "too large" in small_bound.check
    assert large_bound.status == PROPOSED, large_bound.check


# --- overlapping edits ---------------------------------------------------------------------------


def test_of_two_edits_touching_the_same_text_only_the_one_with_more_evidence_stays_proposed():
    weak = edit("Be friendly and professional in every reply.", "Be friendly, brief and professional.",
                evidence=("f1",), edit_id="weak")
    strong = edit("professional in every reply.", "professional in every reply; two sentences at most.",
                  evidence=("f2", "f3", "f4"), edit_id="strong")
    check(weak, strong)
    assert strong.status == PROPOSED, strong.check
    assert weak.status == REJECTED
    assert "strong" in weak.check and "overlap" in weak.check


def test_overlap_counts_distinct_evidence_not_repeats():
    padded = edit("Be friendly and professional", "Be warm and professional", evidence=("f1", "f1", "f1"),
                  edit_id="padded")
    real = edit("friendly and professional in every reply", "friendly and exact in every reply",
                evidence=("f2", "f3"), edit_id="real")
    check(padded, real)
    assert real.status == PROPOSED, real.check
    assert padded.status == REJECTED and "real" in padded.check


def test_non_overlapping_edits_are_both_kept():
    first = edit("Be friendly and professional in every reply.", "Be friendly and brief in every reply.",
                 evidence=("f1",), edit_id="first")
    second = edit("Escalate billing disputes to a person.", "Escalate billing disputes and refunds to a person.",
                  evidence=("f2", "f3"), edit_id="second")
    check(first, second)
    assert (first.status, second.status) == (PROPOSED, PROPOSED), (first.check, second.check)


def test_a_rejected_edit_does_not_knock_out_an_overlapping_valid_one():
    invalid = edit("Be friendly and professional in every reply.", "Be brief.", evidence=("f1", "f2", SUCCESS),
                   edit_id="invalid")
    valid = edit("professional in every reply.", "professional and brief in every reply.", evidence=("f3",),
                 edit_id="valid")
    check(invalid, valid)
    assert invalid.status == REJECTED and "not a failure" in invalid.check
    assert valid.status == PROPOSED, valid.check


def test_validate_marks_and_returns_the_same_edits():
    edits = [edit("Be friendly", "Be warm")]
    assert validate(edits, PROMPT, FAILURES, LIMIT) is edits
