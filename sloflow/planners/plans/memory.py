"""Plan memory, after IC-Cache: plans that worked, kept by the meaning of their request, come back as few-shot examples.

The store is the semantic cache in example mode. Its category is a key of the namespace (tenant)
and the set of source names, so a tenant never sees another's plans and a plan is only offered
where the sources it calls exist.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sloflow.errors import InvalidRequest
from sloflow.planners.plans.plan import Plan, PlanExample, parse_plan
from sloflow.planners.plans.references import find_references
from sloflow.retrieval.embedder import Embedder, get_embedder
from sloflow.retrieval.semantic_cache import CachePolicy, SemanticCache

# A plan that worked stays a good example while its sources keep their names; the quota keeps the newest.
DEFAULT_POLICY = CachePolicy(threshold=0.9, ttl_s=None, quota=2000)
_SAME = 0.999  # cosine similarity at which two requests count as the same text
_CANDIDATES = 4  # nearest plans looked at per example wanted, to find k of different shapes
ALL_SHAPES = 8  # a category with at most this many plan shapes shows them all, in a prompt that stays cached
_SCAN = 64  # stored plans read to count a category's shapes; more than that counts as many


def memory_category(namespace: str, sources: Iterable[Any]) -> str:
    """The cache category of a namespace and a set of sources (names or objects with `.name`; order does not matter)."""
    names = sorted({s if isinstance(s, str) else s.name for s in sources})
    digest = hashlib.sha256(json.dumps([namespace, names]).encode()).hexdigest()[:32]
    return f"plans:{digest}"


class PlanMemory:
    """Remembers (request, plan) pairs per namespace and source set; returns the nearest as examples."""

    def __init__(
        self, cache: SemanticCache | None = None, embedder: Embedder | None = None, path: Path | str = ":memory:"
    ) -> None:
        # get_embedder loads the model shipped in an installed package: nothing is downloaded.
        # `is None`, not `or`: an empty cache is falsy (it has a length).
        self.cache = cache if cache is not None else SemanticCache(embedder or get_embedder(), path, default_policy=DEFAULT_POLICY)
        if self.cache.embedder is None:
            raise InvalidRequest("plan memory needs a semantic cache with an embedder")
        self._embedder = self.cache.embedder

    def remember(self, namespace: str, request: str, plan: Plan, sources: Iterable[Any]) -> int:
        """Store a plan that ran and produced an answer; the same request with the same plan is kept once."""
        category = memory_category(namespace, sources)
        vector = self._embedder.embed_one(request)
        text = plan.to_json()
        for hit in self.cache.examples(request, category, k=4, min_similarity=_SAME, vector=vector):
            if hit.answer == text:
                return hit.id
        return self.cache.put(request, text, category, vector=vector)

    def examples(self, namespace: str, request: str, sources: Iterable[Any], k: int = 3, min_similarity: float = 0.0) -> list[PlanExample]:
        """Up to k stored (request, plan) pairs of this namespace and source set, most similar first,
        one per plan shape: plans that differ only in their literal values teach the planner the
        same thing, and each one shown costs prefill."""
        hits = self.cache.examples(request, memory_category(namespace, sources), k=k * _CANDIDATES, min_similarity=min_similarity)
        chosen: dict[str, PlanExample] = {}
        for hit in hits:
            plan = parse_plan(hit.answer)
            chosen.setdefault(plan_shape(plan), PlanExample(hit.request, plan, hit.similarity))
        return list(chosen.values())[:k]

    def every_shape(self, namespace: str, sources: Iterable[Any], most: int = ALL_SHAPES) -> list[PlanExample] | None:
        """Each plan shape of this namespace and source set once (its first stored plan), in the
        order stored, or None when there are more than `most` shapes (or nothing stored).

        The same examples whatever the request: a planner prompt made of them is prefilled once per
        worker and then served from its prompt cache, where examples chosen per request are new
        prefill every time.
        """
        category = memory_category(namespace, sources)
        if not 0 < self.cache.count(category) <= _SCAN:
            return None
        first: dict[str, PlanExample] = {}
        for hit in self.cache.entries(category):
            plan = parse_plan(hit.answer)
            first.setdefault(plan_shape(plan), PlanExample(hit.request, plan, hit.similarity))
            if len(first) > most:
                return None
        return list(first.values())


def plan_shape(plan: Plan) -> str:
    """A plan with its literal argument values blanked: sources, argument names and references remain."""
    steps = [[s.name, s.label, {k: v if find_references(v) else None for k, v in s.arguments.items()}] for s in plan.steps]
    return json.dumps(steps, sort_keys=True, default=str)


class TenantPlanMemory:
    """One tenant's view of a shared `PlanMemory`: every namespace it names lives inside its own."""

    def __init__(self, memory: PlanMemory, tenant: str) -> None:
        self.memory = memory
        self.tenant = tenant

    def _ns(self, namespace: str) -> str:
        return json.dumps([self.tenant, namespace])  # no name a tenant can choose equals another's

    def remember(self, namespace: str, request: str, plan: Plan, sources: Iterable[Any]) -> int:
        """`PlanMemory.remember` within this tenant."""
        return self.memory.remember(self._ns(namespace), request, plan, sources)

    def examples(self, namespace: str, request: str, sources: Iterable[Any], k: int = 3, min_similarity: float = 0.0) -> list[PlanExample]:
        """`PlanMemory.examples` within this tenant."""
        return self.memory.examples(self._ns(namespace), request, sources, k, min_similarity)

    def every_shape(self, namespace: str, sources: Iterable[Any], most: int = ALL_SHAPES) -> list[PlanExample] | None:
        """`PlanMemory.every_shape` within this tenant."""
        return self.memory.every_shape(self._ns(namespace), sources, most)
