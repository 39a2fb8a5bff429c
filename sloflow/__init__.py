"""sloflow: agentic LLM workflows under latency SLOs.

`from sloflow import Workflow, Cost, Retry, Runtime` gives the public API; each name is imported
on first use, so importing sloflow itself stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = ("Cost", "Retry", "Workflow", "StageContext", "RunRecord", "RunStatus", "Runtime", "register")
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from sloflow.workflows.budget import Cost
    from sloflow.workflows.context import StageContext
    from sloflow.workflows.dsl import Workflow
    from sloflow.workflows.records import RunRecord, RunStatus
    from sloflow.workflows.registry import register
    from sloflow.workflows.runtime import Runtime
    from sloflow.workflows.stages import Retry


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sloflow' has no attribute {name!r}")
    return getattr(importlib.import_module("sloflow.workflows"), name)
