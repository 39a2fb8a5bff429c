"""The five-stage example in examples/ keeps running, on the real (small) embedded model."""

from __future__ import annotations

from pathlib import Path

import pytest

from sloflow.llm.client import DirectClient
from sloflow.workflows import MemoryRunStore, Runtime, RunStatus, load, workflows

from .conftest import ScriptedLLM

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "triage.py"


class Recording(ScriptedLLM):
    """Passes calls to a real client and keeps what each call carried."""

    def __init__(self, inner: DirectClient) -> None:
        super().__init__()
        self.inner = inner

    async def generate(self, request, ctx):
        self.calls.append((request, ctx))
        return await self.inner.generate(request, ctx)


@pytest.mark.model
async def test_the_triage_example_runs_its_branch_and_fan_out(small_llm):
    load(str(EXAMPLE))
    triage = workflows.get("triage")
    assert len(triage.stages) == 5 and triage.branches and any(s.fan_out for s in triage.stages.values())
    client = Recording(DirectClient(small_llm))
    runtime = Runtime(MemoryRunStore(), None, client=client, registry=workflows)
    run = await runtime.run("triage", {"text": "The app crashes with a bug when I press save."})
    assert run.status is RunStatus.succeeded, run.error
    assert run.output["reply"].endswith("-- the support team")
    ran = [t["stage"] for t in run.stages]
    assert ran[0] == "classify" and ran[-1] == "sign"
    assert ("draft" in ran) != ("answer" in ran)  # exactly one side of the branch ran
    if "draft" in ran:
        assert ran.count("draft") == 2 and len(run.output["drafts"]) == 2
    # every LLM call carried the run's deadline and a budget no larger than the time left
    assert client.calls and all(c.run_id == run.id and c.deadline == run.deadline for _, c in client.calls)
    assert all(0 < c.budget_s <= run.slo_s for _, c in client.calls)
