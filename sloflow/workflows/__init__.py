"""Workflows: the DSL, its compilation to LangGraph, deadline budgets and the durable runtime.

Names are imported on first use, so importing the package loads nothing; `Workflow` brings
LangGraph with it, since the DSL compiles to a LangGraph graph.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Cost": "budget",
    "Speed": "budget",
    "StageContext": "context",
    "Workflow": "dsl",
    "GraphWorkflow": "graph_workflow",
    "Event": "records",
    "RunRecord": "records",
    "RunStatus": "records",
    "Registry": "registry",
    "load": "registry",
    "register": "registry",
    "workflows": "registry",
    "MemoryRunStore": "run_store",
    "SqliteRunStore": "run_store",
    "Runtime": "runtime",
    "Retry": "stages",
    "InvalidInput": "state",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from sloflow.workflows.budget import Cost, Speed
    from sloflow.workflows.context import StageContext
    from sloflow.workflows.dsl import Workflow
    from sloflow.workflows.graph_workflow import GraphWorkflow
    from sloflow.workflows.records import Event, RunRecord, RunStatus
    from sloflow.workflows.registry import Registry, load, register, workflows
    from sloflow.workflows.run_store import MemoryRunStore, SqliteRunStore
    from sloflow.workflows.runtime import Runtime
    from sloflow.workflows.stages import Retry
    from sloflow.workflows.state import InvalidInput


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sloflow.workflows' has no attribute {name!r}")
    return getattr(importlib.import_module(f"sloflow.workflows.{module}"), name)
