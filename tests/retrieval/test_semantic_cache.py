"""Semantic cache: per-category thresholds, TTL, LRU quota, example mode, persistence, classifier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sloflow.errors import InvalidRequest
from sloflow.retrieval.embedder import Embedder
from sloflow.retrieval.semantic_cache import CachePolicy, CentroidClassifier, SemanticCache


def _unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_paraphrase_hits_under_a_loose_threshold_and_misses_under_a_strict_one(embedder: Embedder) -> None:
    cache = SemanticCache(embedder, policies={"chat": CachePolicy(threshold=0.6), "code": CachePolicy(threshold=0.97)})
    cache.put("how do I reset my password", "Use the reset link.", "chat")
    cache.put("how do I reset my password", "Use the reset link.", "code")
    hit = cache.lookup("I forgot my password, how can I reset it?", "chat")
    assert hit is not None and hit.answer == "Use the reset link." and 0.6 <= hit.similarity < 0.97
    assert cache.lookup("I forgot my password, how can I reset it?", "code") is None
    assert cache.lookup("what's the weather in Oslo", "chat") is None


def test_categories_do_not_see_each_other() -> None:
    cache = SemanticCache(None, dim=3)
    cache.put("q", "billing answer", "billing", vector=_unit(1, 0, 0))
    assert cache.lookup("q", "travel", vector=_unit(1, 0, 0)) is None
    assert cache.lookup("q", "billing", vector=_unit(1, 0, 0)).answer == "billing answer"


def test_entries_expire_after_their_category_ttl() -> None:
    clock = Clock()
    cache = SemanticCache(None, dim=3, policies={"news": CachePolicy(threshold=0.9, ttl_s=60)}, clock=clock)
    cache.put("q", "old news", "news", vector=_unit(1, 0, 0))
    clock.now += 59
    assert cache.lookup("q", "news", vector=_unit(1, 0, 0)) is not None
    clock.now += 2
    assert cache.lookup("q", "news", vector=_unit(1, 0, 0)) is None
    assert len(cache) == 0


def test_the_quota_evicts_the_least_recently_used_entry_of_that_category_only() -> None:
    clock = Clock()
    cache = SemanticCache(None, dim=3, policies={"small": CachePolicy(threshold=0.99, quota=2)}, clock=clock)
    cache.put("other", "kept", "big", vector=_unit(0, 0, 1))
    cache.put("a", "A", "small", vector=_unit(1, 0, 0))
    clock.now += 1
    cache.put("b", "B", "small", vector=_unit(0, 1, 0))
    clock.now += 1
    assert cache.lookup("a", "small", vector=_unit(1, 0, 0)).answer == "A"  # a is now more recent than b
    clock.now += 1
    cache.put("c", "C", "small", vector=_unit(1, 1, 0))
    assert cache.lookup("b", "small", vector=_unit(0, 1, 0)) is None
    assert cache.lookup("a", "small", vector=_unit(1, 0, 0)).answer == "A"
    assert cache.lookup("other", "big", vector=_unit(0, 0, 1)).answer == "kept"
    assert len(cache) == 3


def test_example_mode_returns_the_nearest_pairs_most_similar_first() -> None:
    cache = SemanticCache(None, dim=3)
    cache.put_many(["x", "xy", "y"], ["X", "XY", "Y"], ["c"] * 3, np.stack([_unit(1, 0, 0), _unit(1, 1, 0), _unit(0, 1, 0)]))
    examples = cache.examples("q", "c", k=2, vector=_unit(1, 0.2, 0))
    assert [(e.request, e.answer) for e in examples] == [("x", "X"), ("xy", "XY")]
    assert examples[0].similarity > examples[1].similarity


def test_the_cache_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    SemanticCache(None, path, dim=3).put("q", "A", "c", vector=_unit(1, 0, 0))
    again = SemanticCache(None, path, dim=3)
    assert len(again) == 1 and again.lookup("q", "c", vector=_unit(1, 0.01, 0)).answer == "A"


def test_a_classifier_picks_the_category_when_the_caller_gives_none(embedder: Embedder) -> None:
    texts = ["transfer money to savings", "what is my account balance", "book a flight to Rome", "find a hotel in Lisbon"]
    classify = CentroidClassifier(embedder.embed(texts), ["banking", "banking", "travel", "travel"])
    cache = SemanticCache(embedder, classify=classify, default_policy=CachePolicy(threshold=0.5))
    cache.put("reserve a plane ticket to Paris", "Done.")
    hit = cache.lookup("book me a plane ticket to Paris")
    assert hit is not None and hit.category == "travel"


def test_bad_policies_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        CachePolicy(threshold=1.5)
    with pytest.raises(InvalidRequest):
        CachePolicy(quota=0)
