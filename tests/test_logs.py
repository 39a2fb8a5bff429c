"""Log lines carry the ids of what they are about: JSON for pipelines, text for people."""

from __future__ import annotations

import json
import logging

from sloflow.logs import JsonFormatter, TextFormatter, log_fields


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("sloflow.x", logging.WARNING, __file__, 1, "worker %s slow", ("w1",), None)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_bound_ids_and_those_passed_as_extra() -> None:
    with log_fields(run_id="r1", workflow="text2sql"), log_fields(stage="link", tenant=None):
        line = JsonFormatter().format(_record(call_id="c9", worker="w1"))
    doc = json.loads(line)
    assert doc["message"] == "worker w1 slow" and doc["level"] == "WARNING" and doc["logger"] == "sloflow.x"
    assert {k: doc[k] for k in ("run_id", "workflow", "stage", "call_id", "worker")} == {
        "run_id": "r1", "workflow": "text2sql", "stage": "link", "call_id": "c9", "worker": "w1",
    }
    assert "tenant" not in doc and doc["ts"].endswith("Z")


def test_ids_are_unbound_after_the_block_and_text_lines_show_them() -> None:
    with log_fields(run_id="r1"):
        pass
    assert "run_id" not in json.loads(JsonFormatter().format(_record()))
    line = TextFormatter().format(_record(run_id="r2", call_id="c1"))
    assert line.endswith("sloflow.x: worker w1 slow [run_id=r2 call_id=c1]")
