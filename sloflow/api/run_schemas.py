"""Request and response bodies of the workflow and run endpoints."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sloflow.workflows.records import RunRecord, RunStatus
from sloflow.workflows.registry import AnyWorkflow

# A deadline shorter than this cannot be met by any stage (one LLM call's set-up alone): refused at submission.
MIN_SLO_S = 0.05
MAX_SLO_S = 7 * 24 * 3600.0


class WorkflowOut(BaseModel):
    """A registered workflow."""

    name: str
    description: str
    slo: float | None = Field(description="default SLO in seconds; null: background work")
    stages: list[str]
    input_schema: dict[str, Any]

    @classmethod
    def of(cls, wf: AnyWorkflow) -> WorkflowOut:
        return cls(
            name=wf.name,
            description=wf.description,
            slo=wf.slo,
            stages=wf.stage_names,
            input_schema=wf.input_schema(),
        )


class WorkflowList(BaseModel):
    """All registered workflows."""

    workflows: list[WorkflowOut]


class RunCreate(BaseModel):
    """Start a run: the workflow's input (its `input_schema` in GET /v1/workflows), and an SLO overriding its default."""

    model_config = ConfigDict(extra="forbid", strict=True)  # a wrong type is refused, not coerced

    input: dict[str, Any] = Field(default_factory=dict, description="the workflow's input; GET /v1/workflows gives its schema")
    slo: float | None = Field(
        None, ge=MIN_SLO_S, le=MAX_SLO_S, description=f"seconds from now, {MIN_SLO_S}-{MAX_SLO_S}; default: the workflow's own"
    )


class StageTiming(BaseModel):
    """One finished stage invocation."""

    model_config = {"extra": "allow"}

    stage: str
    started_at: float | None = None
    duration_s: float
    budget_s: float | None = None
    attempts: int | None = None


class RunOut(BaseModel):
    """A run's record."""

    id: str
    workflow: str
    status: RunStatus
    slo_s: float | None
    deadline: float | None
    deadline_met: bool | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    input: Any
    output: Any
    error: dict[str, Any] | None
    stages: list[StageTiming]

    @classmethod
    def of(cls, record: RunRecord) -> RunOut:
        return cls(
            id=record.id,
            workflow=record.workflow,
            status=record.status,
            slo_s=record.slo_s,
            deadline=record.deadline,
            deadline_met=record.deadline_met,
            created_at=record.created_at,
            started_at=record.started_at,
            finished_at=record.finished_at,
            input=record.input,
            output=record.output,
            error=record.error,
            stages=[StageTiming.model_validate(s) for s in record.stages],
        )


class RunList(BaseModel):
    """Runs, newest first."""

    runs: list[RunOut]
