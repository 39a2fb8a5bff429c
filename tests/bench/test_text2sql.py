"""Benchmark arithmetic (percentiles, the wall time of overlapping stages) and the merged run's wiring."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sloflow.bench.spider_eval import load_devset
from sloflow.bench.spider_merge import merge_devset
from sloflow.bench.text2sql import DEFAULT_DATA, Databases, gold_columns, gold_rows, percentile, run_baseline, run_workflow, wall_seconds
from sloflow.llm.types import Completion, approx_tokens


def test_parallel_instances_of_a_stage_count_once_and_rounds_add_up() -> None:
    fan_out = [(0.0, 3.0), (0.0, 2.5), (0.1, 3.2)]
    assert abs(wall_seconds(fan_out) - 3.2) < 1e-9
    assert abs(wall_seconds(fan_out + [(10.0, 11.0)]) - 4.2) < 1e-9
    assert wall_seconds([]) == 0.0


def test_percentiles_interpolate() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.5
    assert abs(percentile(values, 95) - 95.05) < 1e-9
    assert percentile([], 95) == 0.0 and percentile([7.0], 95) == 7.0


class GoldWriter:
    """A backend that answers each question with its gold SQL: the bench's wiring, not a model, is under test."""

    context_tokens = 4096

    def __init__(self, golds: dict[str, str]) -> None:
        self.golds = golds

    def prompt_tokens(self, request: Any) -> list[int]:
        return [0] * sum(approx_tokens(m.content) for m in request.messages)

    async def generate(self, request: Any) -> Completion:
        if request.json_schema is not None:
            return Completion(text='{"tables": []}', prompt_tokens=10, completion_tokens=5, ttft_s=0.0, total_s=0.0)
        asked = request.messages[-1].content
        sql = next(gold for question, gold in self.golds.items() if question in asked)
        return Completion(text=f"```sql\n{sql}\n```", prompt_tokens=len(self.prompt_tokens(request)), completion_tokens=20, ttft_s=0.0, total_s=0.0)


async def test_the_merged_run_links_records_predictions_and_says_when_the_whole_schema_does_not_fit(tmp_path: Path) -> None:
    if not (DEFAULT_DATA / "questions.jsonl").exists():
        pytest.skip(f"shared data missing: {DEFAULT_DATA}")
    dev = load_devset(DEFAULT_DATA)
    asked = [q for q in dev.questions if q.db_id == "course_teach"][:2]
    merged = merge_devset(dev, tmp_path / "merged")
    questions = [q for q in merged.dev.questions if q.id in {a.id for a in asked}]
    golds = {q.id: gold_rows(merged.dev, q) for q in questions}
    dbs = Databases(merged.dev)
    backend = GoldWriter({q.question: q.gold_sql for q in questions})
    predictions = tmp_path / "predictions.jsonl"
    figures = await run_workflow(backend, dbs, questions, golds, tmp_path / "home", None, predictions=predictions)
    assert figures["execution_accuracy"] == 1.0 and figures["link_recall"] == 1.0
    assert 0 < figures["prompt_tokens_per_question"] < 3 * 1200  # three candidates over the linked part, not 36 tables
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [(r["id"], r["db"]) for r in rows] == [(q.id, "merged") for q in questions] and all(r["sql"] for r in rows)
    backend.context_tokens = 1000  # the whole merged schema (about 3,200 tokens) cannot fit
    baseline = await run_baseline(backend, dbs, questions, golds)
    assert baseline["baseline_over_context"] == 2 and baseline["baseline_execution_accuracy"] == 0.0


def test_a_gold_querys_columns_leave_out_its_double_quoted_text() -> None:
    sql = 'SELECT T1.Airline, count(*) FROM airlines AS T1 JOIN flights AS T2 ON T1.uid = T2.Airline WHERE T1.Country = "USA" GROUP BY T1.Airline'
    assert gold_columns(sql) == {"airline", "uid", "country"}
    assert gold_columns("SELEC nothing (") == set()
