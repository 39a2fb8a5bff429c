"""Execution-accuracy comparison and dev-set sampling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sloflow.bench.spider_eval import Question, has_order_by, load_devset, results_match, run_readonly, sample_questions
from sloflow.errors import InvalidRequest, NotFound
from tests.workflows.builtin.text2sql.conftest import SPIDER


def test_rows_compare_as_multisets_unless_ordered() -> None:
    gold = [(1, "a"), (2, "b"), (2, "b")]
    assert results_match(gold, [[2, "b"], [1, "a"], [2, "b"]], ordered=False)
    assert not results_match(gold, [[2, "b"], [1, "a"], [2, "b"]], ordered=True)
    assert not results_match(gold, [(1, "a"), (2, "b")], ordered=False)  # a duplicate row matters
    assert not results_match([(1,)], [(1, "a")], ordered=False)  # extra columns are wrong


def test_columns_may_come_in_another_order() -> None:
    gold = [(3, "Bath"), (1, "Sale")]
    assert results_match(gold, [("Sale", 1), ("Bath", 3)], ordered=False)
    assert results_match(gold, [("Bath", 3), ("Sale", 1)], ordered=True)
    assert not results_match(gold, [("Sale", 1), ("Bath", 3)], ordered=True)
    # the columns must line up across rows, not only as separate multisets
    assert not results_match([(1, "a"), (2, "b")], [("b", 1), ("a", 2)], ordered=False)


def test_integral_floats_equal_ints() -> None:
    assert results_match([(3,)], [(3.0,)], ordered=False)
    assert not results_match([(3,)], [(3.5,)], ordered=False)


def test_order_by_is_detected_on_the_outer_query_only() -> None:
    assert has_order_by("SELECT a FROM t ORDER BY a DESC LIMIT 1")
    assert not has_order_by("SELECT a FROM (SELECT a FROM t ORDER BY a) AS s")
    assert not has_order_by("SELECT count(*) FROM t")


def _questions() -> list[Question]:
    out = []
    for db, n in (("a", 50), ("b", 30), ("c", 15), ("d", 5)):
        out += [Question(f"{db}{i}", db, f"q{i}", "SELECT 1") for i in range(n)]
    return out


def test_sample_spreads_over_databases_in_proportion_with_a_fixed_seed() -> None:
    qs = _questions()
    got = sample_questions(qs, 20, seed=3)
    assert len(got) == 20 and len({q.id for q in got}) == 20
    per_db = {db: sum(q.db_id == db for q in got) for db in "abcd"}
    assert per_db == {"a": 10, "b": 6, "c": 3, "d": 1}
    assert got == sample_questions(qs, 20, seed=3)
    assert got != sample_questions(qs, 20, seed=4)
    assert [q.db_id for q in got] == sorted(q.db_id for q in got)  # grouped by database


def test_every_database_gets_a_question_when_the_limit_allows() -> None:
    assert {q.db_id for q in sample_questions(_questions(), 4)} == {"a", "b", "c", "d"}
    assert len(sample_questions(_questions(), None)) == 100


def test_gold_queries_run_read_only(tmp_path: Path) -> None:
    if not SPIDER.exists():
        pytest.skip(f"shared data missing: {SPIDER}")
    dev = load_devset(SPIDER)
    assert len(dev.questions) > 100 and dev.foreign_keys["concert_singer"]
    path = dev.db_path("concert_singer")
    assert run_readonly(path, "SELECT count(*) FROM singer") == [(6,)]
    with pytest.raises(InvalidRequest):
        run_readonly(path, "DELETE FROM singer")
    assert run_readonly(path, "SELECT count(*) FROM singer") == [(6,)]


def test_a_folder_without_questions_is_named(tmp_path: Path) -> None:
    (tmp_path / "tables.json").write_text(json.dumps([]))
    with pytest.raises(NotFound, match="questions.jsonl"):
        load_devset(tmp_path)
