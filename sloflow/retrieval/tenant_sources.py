"""Each tenant's own sources: indexes, databases and registered functions, kept apart on disk.

The local tenant (the one `make run`'s key and a server without auth belong to) owns the
process-wide registry, so the demo data and `register_source` functions stay where they were;
any other tenant gets `tenants/<name>/indexes` and `tenants/<name>/databases.json` beside it.
All tenants share the one embedder.
"""

from __future__ import annotations

import threading
from pathlib import Path

from sloflow.retrieval.databases import DatabaseRegistry
from sloflow.retrieval.document_index import IndexRegistry
from sloflow.retrieval.sources import SourceRegistry
from sloflow.tenancy import LOCAL_TENANT, check_tenant


class TenantSources:
    """A `SourceRegistry` per tenant, opened on first use."""

    def __init__(self, base: SourceRegistry, root: Path | None = None, base_tenant: str = LOCAL_TENANT) -> None:
        self.base = base
        self.base_tenant = base_tenant
        self.root = root if root is not None else base.indexes.root.parent / "tenants"
        self._registries: dict[str, SourceRegistry] = {base_tenant: base}
        self._lock = threading.Lock()

    def of(self, tenant: str) -> SourceRegistry:
        """The tenant's registry (created empty the first time)."""
        with self._lock:
            found = self._registries.get(tenant)
            if found is None:
                folder = self.root / check_tenant(tenant)
                indexes = IndexRegistry(folder / "indexes", self.base.indexes.embedder)
                found = SourceRegistry(indexes, DatabaseRegistry(folder / "databases.json"))
                self._registries[tenant] = found
            return found
