"""The sleep-time benchmark's data split and answer reading (the run itself is `sloflow bench sleeptime --quick`)."""

from __future__ import annotations

import pytest

from sloflow.bench.sleeptime import DEFAULT_DATA, amortisation_figures, amortised_costs, learn_input, load_problems, options, split_problem


def test_a_problem_splits_into_context_and_its_last_sentence() -> None:
    context, question = split_problem("Ann has 3 bags. Each holds 4.5 apples. How many apples does she have?")  # type: ignore[misc]
    assert context == "Ann has 3 bags. Each holds 4.5 apples." and question == "How many apples does she have?"
    assert split_problem("How many apples?") is None


def test_the_shared_gsm8k_file_loads_with_gold_numbers() -> None:
    if not DEFAULT_DATA.exists():
        pytest.skip(f"the shared GSM8K file is missing: {DEFAULT_DATA}")
    problems = load_problems(DEFAULT_DATA, 5)
    assert len(problems) == 5 and all(p["context"] and p["question"].endswith("?") for p in problems)
    assert problems[0]["gold"] == 18


def test_the_learn_passes_get_the_solve_settings_and_quick_takes_one_sample() -> None:
    assert learn_input(options(["--samples", "5", "--solve", "2"])) == {"solve_n": 2, "samples": 5}
    assert learn_input(options([])) == {"solve_n": 1, "samples": 3}
    quick = options([], quick=True)
    assert learn_input(quick) == {"solve_n": 1, "samples": 1} and (quick.limit, quick.followups) == (1, 1)


def test_measured_cost_per_question_counts_the_learn_pass_once_per_context() -> None:
    learn = [100.0, 100.0]
    with_ = [[10, 10, 10], [10]]  # the second context has no follow-up
    without = [[50, 50, 50], [50]]
    assert amortised_costs(learn, with_, without, 1) == (110.0, 50.0, 2)
    assert amortised_costs(learn, with_, without, 3) == ((100 + 30) / 3, 50.0, 1)  # only the context with 3 questions
    assert amortised_costs(learn, with_, without, 5) is None


def test_amortisation_figures_and_follow_up_consistency() -> None:
    def answer(number: float | None, tokens: int) -> dict:
        return {"number": number, "output_tokens": tokens, "answer": ""}

    without = [[answer(12, 60), answer(3, 60), answer(7, 60)]]
    with_ = [[answer(12, 10), answer(3, 10), answer(None, 10)]]  # one follow-up agrees, one gives no number
    figures = amortisation_figures(without, with_, [90], followup_tokens=30, asked=2)
    assert figures["followups"] == 2 and figures["followup_consistency_rate"] == 0.5
    assert figures["amortised_cost_ratio"]["1"] == round(60 / 100, 3) and figures["amortised_cost_ratio"]["2"] == round(60 / 55, 3)
    assert figures["amortised_cost_ratio_10"] is None and figures["contexts_at_k"] == {"1": 1, "2": 1, "5": 0, "10": 0}
    assert figures["amortisation_method"].startswith("measured")
