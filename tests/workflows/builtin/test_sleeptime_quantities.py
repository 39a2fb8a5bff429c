"""Model-written arithmetic is evaluated, never executed: what `sleeptime.quantities` keeps and refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from sloflow.workflows.builtin.sleeptime.quantities import assignments, continued_code, evaluate, learned_values, result


def test_a_continued_block_ends_at_its_closing_fence() -> None:
    assert continued_code("a = 1\nb = a + 1\n```\nDone.") == "a = 1\nb = a + 1"
    assert continued_code("a = 1\nb = a + 1") == "a = 1\nb = a + 1"  # stopped before the fence, or cut by its bound


def test_learned_values_drop_a_guessed_answer_and_what_builds_on_it() -> None:
    code = "eggs = 16\neaten = 3\nanswer = eggs - eaten\ntwice = answer * 2\nprice = 2"
    assert learned_values(code) == "eggs = 16\neaten = 3\nprice = 2"


def test_assignments_keep_the_lines_that_evaluate_in_order_with_their_comments() -> None:
    code = "eggs = 16  # eggs a day\nimport os\neaten = 3\nleft = eggs - eaten  # eggs\nbad = os.system('ls')\nprice = 2\nincome = left * price"
    assert assignments(code) == "eggs = 16  # eggs a day\neaten = 3\nleft = eggs - eaten  # eggs\nprice = 2\nincome = left * price"
    values, dropped = evaluate(code)
    assert values == {"eggs": 16, "eaten": 3, "left": 13, "price": 2, "income": 26}
    assert dropped == ["not an assignment to one name: import os", "bad: NameNotDefined"]


def test_a_line_that_does_not_parse_loses_only_itself() -> None:
    values, dropped = evaluate("a = 2\nb = (a +\nc = a * 3")  # as a reply cut by its token bound
    assert values == {"a": 2, "c": 6} and dropped == ["does not parse: b = (a +"]


def test_the_answer_is_what_the_code_itself_assigns() -> None:
    names = {"apples": 12.0, "answer": 99.0}  # a learned `answer` is not this question's
    assert result("left = apples - 5\nanswer = left", names) == 7
    assert result("answer = math.ceil(apples / 5) + round(2.6)", names) == 6
    assert result("left = apples - 5", names) == 7  # no `answer` line: the last name it assigns
    assert result("apples = apples - 2", names) == 10
    assert result("apples - 5", names) is None and result("left = pears - 5", names) is None
    assert result("answer = 'twelve'", names) is None


@pytest.mark.parametrize(
    "code",
    [
        "answer = __import__('os').system('touch {marker}')",
        "answer = open('{marker}', 'w').write('x')",
        "answer = (1).__class__.__bases__[0].__subclasses__()",
        "answer = 9 ** 9 ** 9",
        "exec(\"open('{marker}', 'w')\")\nanswer = 1 if 0 else 2",
    ],
)
def test_unsafe_code_never_runs(tmp_path: Path, code: str) -> None:
    marker = tmp_path / "ran"
    assert result(code.format(marker=marker), {}) in (None, 2)
    assert not marker.exists()


def test_an_update_that_fails_does_not_answer_with_the_learned_value() -> None:
    assert result("apples = apples - pears", {"apples": 12.0}) is None  # not the 12 it failed to change
