"""`sloflow workflows` and `sloflow run`, through the typer sub-app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sloflow.config import get_settings
from sloflow.workflows.commands import app

FLOW = '''
from pydantic import BaseModel
from sloflow import Workflow, register

class Greeting(BaseModel):
    name: str
    text: str = ""

hello = Workflow("hello", state=Greeting, slo=30.0, description="greet someone")

@hello.stage
async def greet(s, ctx):
    ctx.emit("greeting", who=s.name)
    return {"text": f"hello {s.name}"}

@hello.stage
async def shout(s, ctx):
    return {"text": s.text.upper()}

register(hello.then(greet, shout))
'''


@pytest.fixture
def flow_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SLOFLOW_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    path = tmp_path / "hello_flow.py"
    path.write_text(FLOW)
    yield path
    get_settings.cache_clear()


def test_workflows_lists_what_a_file_registers(flow_file: Path):
    result = CliRunner().invoke(app, ["workflows", "--load", str(flow_file)])
    assert result.exit_code == 0, result.output
    assert "hello" in result.output and "stages: greet, shout" in result.output and "slo 30s" in result.output


def test_run_prints_progress_then_the_result(flow_file: Path):
    result = CliRunner().invoke(app, ["run", "hello", "--input", '{"name": "ada"}', "--slo", "10", "--load", str(flow_file)])
    assert result.exit_code == 0, result.output
    assert "stage_finished greet" in result.stderr and "progress greet" in result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["status"] == "succeeded" and outcome["output"]["text"] == "HELLO ADA" and outcome["deadline_met"] is True
    assert (Path(get_settings().home) / "runs.sqlite").exists()


def test_run_reports_bad_input_and_unknown_workflows(flow_file: Path):
    bad = CliRunner().invoke(app, ["run", "hello", "--input", '{"nom": 1}', "--load", str(flow_file)])
    assert bad.exit_code == 2 and "name: Field required" in bad.stderr
    unknown = CliRunner().invoke(app, ["run", "nope", "--load", str(flow_file)])
    assert unknown.exit_code == 2 and "no workflow named 'nope'" in unknown.stderr
    not_json = CliRunner().invoke(app, ["run", "hello", "--input", "{", "--load", str(flow_file)])
    assert not_json.exit_code == 2 and "--input is not valid JSON" in not_json.stderr
