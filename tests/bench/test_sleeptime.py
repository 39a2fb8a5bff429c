"""The sleep-time benchmark's data split and answer reading (the run itself is `sloflow bench sleeptime --quick`)."""

from __future__ import annotations

from sloflow.bench.sleeptime import DEFAULT_DATA, last_number, load_problems, split_problem


def test_a_problem_splits_into_context_and_its_last_sentence() -> None:
    context, question = split_problem("Ann has 3 bags. Each holds 4.5 apples. How many apples does she have?")  # type: ignore[misc]
    assert context == "Ann has 3 bags. Each holds 4.5 apples." and question == "How many apples does she have?"
    assert split_problem("How many apples?") is None


def test_the_last_number_is_the_answer() -> None:
    assert last_number("9 * 2 = $1,018.50 a day") == 1018.5
    assert last_number("Answer: -3") == -3 and last_number("no number") is None


def test_the_shared_gsm8k_file_loads_with_gold_numbers() -> None:
    problems = load_problems(DEFAULT_DATA, 5)
    assert len(problems) == 5 and all(p["context"] and p["question"].endswith("?") for p in problems)
    assert problems[0]["gold"] == 18
