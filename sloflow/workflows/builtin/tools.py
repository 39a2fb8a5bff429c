"""The run tools of the built-in workflows, per tenant: its sources, its part of plan memory, its contexts."""

from __future__ import annotations

import threading
from typing import Any

from sloflow.planners.plans.memory import PlanMemory, TenantPlanMemory
from sloflow.retrieval.sources import SourceRegistry
from sloflow.retrieval.tenant_sources import TenantSources
from sloflow.tenancy import LOCAL_TENANT
from sloflow.workflows.builtin import reaper, text2sql
from sloflow.workflows.context import Tools
from sloflow.workflows.contexts import ContextStore, TenantContexts


def builtin_tools(sources: SourceRegistry, memory: Any = None) -> Tools:
    """What text2sql, reaper and react call, bound to one set of sources and a plan memory."""
    return {**text2sql.tools(sources), **reaper.tools(sources, memory)}


class TenantTools:
    """`tools_of(tenant)` for the runtime: each tenant's runs reach only its own sources, plans and contexts."""

    def __init__(self, sources: TenantSources, memory: PlanMemory | None = None, contexts: ContextStore | None = None) -> None:
        self.sources = sources
        self.memory = memory
        self.contexts = contexts
        self._cache: dict[str, Tools] = {}
        self._lock = threading.Lock()

    def __call__(self, tenant: str | None) -> Tools:
        name = tenant or LOCAL_TENANT
        with self._lock:
            found = self._cache.get(name)
            if found is None:
                memory = TenantPlanMemory(self.memory, name) if self.memory is not None else None
                found = builtin_tools(self.sources.of(name), memory)
                if self.contexts is not None:  # the sleeptime workflows' `contexts`
                    found = {**found, "contexts": TenantContexts(self.contexts, name)}
                self._cache[name] = found
            return found
