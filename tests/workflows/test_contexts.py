"""The context store on a real SQLite file, the learn queue's order, and the readers of learn output."""

from __future__ import annotations

from pathlib import Path

import pytest

from sloflow.errors import NotFound
from sloflow.workflows.builtin.sleeptime.order import learn_order, likelihood
from sloflow.workflows.builtin.sleeptime.prompts import (
    REUSE_SIMILARITY,
    answer_messages,
    last_number,
    read_choice,
    read_derived,
    read_questions,
    reusable,
    reused_answer,
)
from sloflow.workflows.contexts import ContextStore, LearnedContext, PendingLearn

LEARNED = LearnedContext(
    "a farm",
    ["apples = 3 * 4 = 12"],
    [{"question": "How many apples?", "answer": "3 * 4 = 12", "result": 12.0, "agreement": 0.667}, {"question": "How many bags?"}],
)


def test_contexts_and_learned_contexts_survive_a_restart(tmp_path: Path) -> None:
    store = ContextStore(tmp_path / "runs.sqlite")
    made = store.create("team-a", "Ann has 3 bags of 4 apples.", priority=2)
    store.start_learning(made.id, 1, "run1")
    assert store.save_learned(made.id, 1, "run1", LEARNED, tokens=40)
    store.asked(made.id, "team-a")
    store.close()
    again = ContextStore(tmp_path / "runs.sqlite").get(made.id, "team-a")
    assert (again.text, again.version, again.priority, again.questions, again.learn_tokens) == ("Ann has 3 bags of 4 apples.", 1, 2, 1, 40)
    assert again.learned is not None and again.learned.status == "ready" and again.learned.content == LEARNED


def test_a_new_version_invalidates_the_learned_context_and_an_old_pass_saves_nothing(tmp_path: Path) -> None:
    store = ContextStore(tmp_path / "runs.sqlite")
    c = store.create("t", "version one")
    assert store.start_learning(c.id, 1, "old-run")
    changed, overtaken = store.replace(c.id, "t", "version two")
    assert overtaken == "old-run"  # the caller cancels it
    assert changed.version == 2 and changed.learned is not None and changed.learned.status == "queued"
    assert changed.learned.content is None
    assert not store.save_learned(c.id, 1, "old-run", LEARNED, tokens=10)  # the old version's pass finishes late
    now = store.get(c.id, "t")
    assert now.learned is not None and now.learned.version == 2 and now.learned.content is None
    assert now.learn_tokens == 10  # what it spent still counts in the amortised cost
    assert [p.version for p in store.pending()] == [2]
    assert store.start_learning(c.id, 2, "new-run") and store.save_learned(c.id, 2, "new-run", LEARNED, tokens=5)
    assert store.get(c.id, "t").learned.content == LEARNED  # type: ignore[union-attr]


def test_another_tenants_or_a_deleted_context_is_not_found(tmp_path: Path) -> None:
    store = ContextStore(tmp_path / "runs.sqlite")
    c = store.create("a", "mine")
    for call in (lambda: store.get(c.id, "b"), lambda: store.replace(c.id, "b", "x"), lambda: store.delete(c.id, "b"), lambda: store.asked(c.id, "b")):
        with pytest.raises(NotFound):
            call()
    assert store.get(c.id, "a").text == "mine"  # untouched
    assert store.delete(c.id, "a") is None
    with pytest.raises(NotFound, match="POST /v1/contexts"):
        store.get(c.id, "a")
    assert store.pending() == []


def test_a_pass_that_could_not_run_is_failed_and_a_stopped_one_is_queued_again(tmp_path: Path) -> None:
    store = ContextStore(tmp_path / "runs.sqlite")
    c = store.create("t", "text")
    assert store.start_learning(c.id, 1, "r1")
    assert not store.start_learning(c.id, 1, "r2")  # already running
    assert store.requeue(c.id, 1, "r1") and store.start_learning(c.id, 1, "r3")
    assert not store.fail_learning(c.id, 1, "boom", "r1")  # not that run's any more
    assert store.fail_learning(c.id, 1, "boom", "r3")
    learned = store.get(c.id, "t").learned
    assert learned is not None and (learned.status, learned.error) == ("failed", "boom")


def _job(name: str, *, priority: int = 0, age_s: float = 0.0, asked_ago: tuple[float, ...] = ()) -> PendingLearn:
    now = 1_000_000.0
    return PendingLearn(name, "t", 1, priority, now - age_s, tuple(now - a for a in asked_ago))


def test_learn_order_puts_likely_questions_first() -> None:
    now = 1_000_000.0
    jobs = [
        _job("old-unasked", age_s=7 * 86400),
        _job("new", age_s=60),
        _job("asked-recently", age_s=7 * 86400, asked_ago=(30, 120, 600)),
        _job("asked-long-ago", age_s=7 * 86400, asked_ago=(5 * 3600,)),
        _job("urgent", age_s=7 * 86400, priority=8),
    ]
    assert [j.context_id for j in learn_order(jobs, now)] == ["urgent", "asked-recently", "new", "asked-long-ago", "old-unasked"]
    assert likelihood(_job("x", priority=3), now) == pytest.approx(4.0)  # priority + fresh


def test_the_learn_output_readers_keep_every_complete_line() -> None:
    summary, facts = read_derived("SUMMARY: Ann's apples.\nFACTS:\n- bags = 3\n* per bag = 4\n1. total = 3 * 4 = 12\n- bags = 3\n")
    assert summary == "Ann's apples." and facts == ["bags = 3", "per bag = 4", "total = 3 * 4 = 12"]
    cut = read_questions("Q: How many apples?\n2. Q: How many bags?\n- q: how many APPLES?\nQ1: How many pears are left?\nQ: What colour are the", 5)
    assert cut == ["How many apples?", "How many bags?", "How many pears are left?"]  # labels dropped, once each, a cut line dropped
    assert read_questions("Q: How many apples?\nQ: How many bags?", 1) == ["How many apples?"]
    assert read_questions("Q: How many apples?\nQ: How many bags?", 5, besides="how many apples") == ["How many bags?"]
    assert read_questions("no format at all", 3) == [] and read_derived("") == ("", [])


def test_the_final_number_is_the_answer_lines_else_the_last_one() -> None:
    assert last_number("9 * 2 = $1,018.50 a day") == 1018.5
    assert last_number("Answer: -3") == -3 and last_number("no number") is None
    assert last_number("Answer: 18 dollars\nCheck: 18 / 2 = 9") == 18  # the Answer line, not the check after it
    assert last_number("**Final answer:** $1,200\n") == 1200 and last_number("Answer: none\n3 + 4 = 7") == 7


def test_a_solved_result_is_reusable_only_for_a_similar_question_that_brings_no_values_of_its_own() -> None:
    apples, bags = LEARNED.questions[0], {"question": "How many bags?", "answer": "3", "result": 3.0}
    context = "Ann has 3 bags. Each bag holds 4 apples."
    assert reusable("How many apples does Ann have?", context, [apples, bags], [0.95, 0.5]) == [apples]
    assert reusable("How many apples?", context, [apples, bags], [0.85, 0.9]) == [bags, apples]  # the closest first
    assert reusable("How many apples?", context, [apples], [REUSE_SIMILARITY - 0.01]) == []
    # A value the context does not give: not a question solved before it was asked, however alike.
    assert reusable("If Ann eats 5, how many apples are left?", context, [apples], [0.99]) == []
    assert reusable("How many apples are in the 3 bags?", context, [apples], [0.9]) == [apples]  # 3 is the context's


def test_the_models_choice_is_a_listed_question_or_none() -> None:
    assert read_choice("2", 3) == 2 and read_choice(" 1.", 1) == 1
    assert read_choice("0", 3) is None and read_choice("4", 3) is None and read_choice("The first", 3) is None
    assert reused_answer(LEARNED.questions[0]) == "3 * 4 = 12\nAnswer: 12"
    assert reused_answer({"question": "How many apples?", "result": 12.5}) == "Answer: 12.5"


def test_questions_about_one_context_share_the_prompt_prefix() -> None:
    first, second = answer_messages("ctx", "q1"), answer_messages("ctx", "q2")
    assert first[:-1] == second[:-1] and "step by step" in first[0].content and first[0].content.endswith("Context:\nctx")


def test_learn_order_takes_tenants_in_turn() -> None:
    now = 1_000_000.0
    busy = [PendingLearn(f"busy-{i}", "busy", 1, 9, now - i, ()) for i in range(4)]  # many likely contexts
    quiet = [PendingLearn("quiet-0", "quiet", 1, 0, now, ()), PendingLearn("quiet-1", "quiet", 1, 0, now - 7 * 86400, ())]
    order = [j.context_id for j in learn_order([*quiet, *busy], now)]
    assert order == ["busy-0", "quiet-0", "busy-1", "quiet-1", "busy-2", "busy-3"]  # each tenant's by likelihood
    served = [j.context_id for j in learn_order([*quiet, *busy], now, {"busy": now - 1})]
    assert served[:2] == ["quiet-0", "busy-0"]  # the tenant served last waits its turn
    assert [j.context_id for j in learn_order([*busy, *quiet], now, {"busy": now - 5, "quiet": now - 1})][:2] == ["busy-0", "quiet-0"]
