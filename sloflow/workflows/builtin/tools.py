"""The run tools of the built-in workflows, per tenant: its sources and its part of plan memory."""

from __future__ import annotations

import threading
from typing import Any

from sloflow.planners.plans.memory import PlanMemory, TenantPlanMemory
from sloflow.retrieval.sources import SourceRegistry
from sloflow.retrieval.tenant_sources import TenantSources
from sloflow.tenancy import LOCAL_TENANT
from sloflow.workflows.builtin import reaper, text2sql
from sloflow.workflows.context import Tools


def builtin_tools(sources: SourceRegistry, memory: Any = None) -> Tools:
    """What text2sql, reaper and react call, bound to one set of sources and a plan memory."""
    return {**text2sql.tools(sources), **reaper.tools(sources, memory)}


class TenantTools:
    """`tools_of(tenant)` for the runtime: each tenant's runs reach only its own sources and plans."""

    def __init__(self, sources: TenantSources, memory: PlanMemory | None = None) -> None:
        self.sources = sources
        self.memory = memory
        self._cache: dict[str, Tools] = {}
        self._lock = threading.Lock()

    def __call__(self, tenant: str | None) -> Tools:
        name = tenant or LOCAL_TENANT
        with self._lock:
            found = self._cache.get(name)
            if found is None:
                memory = TenantPlanMemory(self.memory, name) if self.memory is not None else None
                found = self._cache[name] = builtin_tools(self.sources.of(name), memory)
            return found
