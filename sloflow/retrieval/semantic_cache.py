"""Category-aware semantic cache: per-category similarity threshold, TTL and LRU quota.

Keys are request embeddings in one in-memory FAISS HNSW index per category; values live in
SQLite, which also keeps the embeddings so the indexes are rebuilt on start. Two ways to use it:
`lookup` returns a cached answer (exact-answer mode); `examples` returns the nearest
(request, answer) pairs to put in a small model's prompt (IC-Cache mode).
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any
from pathlib import Path

import faiss
import numpy as np

from sloflow.errors import InvalidRequest
from sloflow.retrieval.embedder import Embedder
from sloflow.retrieval.threads import faiss_threads

DEFAULT_CATEGORY = "default"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
  id INTEGER PRIMARY KEY, category TEXT NOT NULL, request TEXT NOT NULL, answer TEXT NOT NULL,
  vector BLOB NOT NULL, created REAL NOT NULL, last_used REAL NOT NULL, hits INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS entries_lru ON entries (category, last_used);
"""


class _HnswKeys:
    """Inner-product HNSW over unit vectors with removal: removed ids are filtered out of searches
    until they outnumber the live ones, then the graph is rebuilt (FAISS HNSW cannot delete)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._index = self._new()
        self._removed: set[int] = set()
        # (batch, not): kept together, since the outer selector only points at the inner one.
        self._selector: tuple[faiss.IDSelector, faiss.IDSelector] | None = None

    def _new(self) -> faiss.IndexIDMap2:
        inner = faiss.IndexHNSWFlat(self.dim, 16, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = 128
        return faiss.IndexIDMap2(inner)

    def __len__(self) -> int:
        return self._index.ntotal - len(self._removed)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        faiss_threads(len(vectors))
        self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: list[int]) -> None:
        self._removed.update(ids)
        self._selector = None
        if len(self._removed) > len(self):
            live = np.array([i for i in faiss.vector_to_array(self._index.id_map).tolist() if i not in self._removed], dtype=np.int64)
            vectors = np.vstack([self._index.reconstruct(int(i)) for i in live]) if len(live) else None
            self._index, self._removed = self._new(), set()
            if vectors is not None:
                self.add(live, vectors)

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Up to k (id, cosine similarity) pairs, most similar first."""
        params = faiss.SearchParametersHNSW()
        params.efSearch = 64
        if self._removed:
            if self._selector is None:
                batch = faiss.IDSelectorBatch(np.array(sorted(self._removed), dtype=np.int64))
                self._selector = (batch, faiss.IDSelectorNot(batch))
            params.sel = self._selector[1]
        faiss_threads(1)
        scores, ids = self._index.search(vector.reshape(1, -1), k, params=params)
        return [(i, s) for i, s in zip(ids[0].tolist(), scores[0].tolist()) if i >= 0]


@cache
def _lookups() -> Any:
    from ray.util import metrics

    return metrics.Counter("sloflow_cache_lookups_total", "semantic cache lookups, by mode and result", tag_keys=("mode", "result"))


def _count_lookup(mode: str, hit: bool) -> None:
    """`sloflow_cache_lookups_total` on Ray's metrics export (skipped where Ray is not running)."""
    import ray

    if ray.is_initialized():
        _lookups().inc(1, tags={"mode": mode, "result": "hit" if hit else "miss"})


@dataclass(frozen=True)
class CachePolicy:
    """Per-category rules: cosine similarity needed for a hit, time to live, entries kept (LRU)."""

    threshold: float = 0.9
    ttl_s: float | None = 24 * 3600
    quota: int = 10_000

    def __post_init__(self) -> None:
        if not -1.0 <= self.threshold <= 1.0 or self.quota < 1 or (self.ttl_s is not None and self.ttl_s <= 0):
            raise InvalidRequest("cache policy: threshold in [-1, 1], quota >= 1, ttl_s > 0 or None")


@dataclass(frozen=True)
class CacheHit:
    """A cached (request, answer) pair and its similarity to the looked-up request."""

    id: int
    category: str
    request: str
    answer: str
    similarity: float


class CentroidClassifier:
    """Assigns a category by the nearest mean embedding of labelled example requests."""

    def __init__(self, vectors: np.ndarray, labels: Sequence[str]) -> None:
        self.labels = sorted(set(labels))
        label_of = np.array(labels)
        centroids = np.stack([vectors[label_of == name].mean(axis=0) for name in self.labels])
        self._centroids = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)

    def __call__(self, vector: np.ndarray) -> str:
        return self.labels[int(np.argmax(self._centroids @ vector))]


class SemanticCache:
    """Lookups and inserts by meaning, within the request's category."""

    def __init__(
        self,
        embedder: Embedder | None,
        path: Path | str = ":memory:",
        policies: dict[str, CachePolicy] | None = None,
        default_policy: CachePolicy | None = None,
        classify: Callable[[np.ndarray], str] | None = None,
        dim: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.embedder = embedder
        self.dim = dim or (embedder.dim if embedder else 0)
        if not self.dim:
            raise InvalidRequest("the semantic cache needs an embedder or a dimension")
        self.policies = dict(policies or {})
        self.default_policy = default_policy or CachePolicy()
        self.classify = classify
        self._clock = clock
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        self._indexes: dict[str, _HnswKeys] = {}
        self._counts: dict[str, int] = {}
        for category, ids, blobs in self._rows_by_category():
            self._index(category).add(ids, np.frombuffer(blobs, dtype=np.float32).reshape(len(ids), self.dim))
            self._counts[category] = len(ids)

    def _rows_by_category(self) -> list[tuple[str, np.ndarray, bytes]]:
        out = []
        for (category,) in self._db.execute("SELECT DISTINCT category FROM entries").fetchall():
            rows = self._db.execute("SELECT id, vector FROM entries WHERE category = ?", (category,)).fetchall()
            out.append((category, np.array([r[0] for r in rows], dtype=np.int64), b"".join(r[1] for r in rows)))
        return out

    def _index(self, category: str) -> _HnswKeys:
        if category not in self._indexes:
            self._indexes[category] = _HnswKeys(self.dim)
        return self._indexes[category]

    def policy(self, category: str) -> CachePolicy:
        """The policy for a category (the default one if it has none)."""
        return self.policies.get(category, self.default_policy)

    def __len__(self) -> int:
        return sum(self._counts.values())

    def count(self, category: str) -> int:
        """Entries stored in `category`."""
        return self._counts.get(category, 0)

    def entries(self, category: str) -> list[CacheHit]:
        """Every live entry of `category`, oldest first (similarity 0: no request was compared)."""
        ttl = self.policy(category).ttl_s
        oldest = -math.inf if ttl is None else self._clock() - ttl
        with self._lock:
            rows = self._db.execute(
                "SELECT id, request, answer FROM entries WHERE category = ? AND created >= ? ORDER BY id", (category, oldest)
            ).fetchall()
        return [CacheHit(key, category, request, answer, 0.0) for key, request, answer in rows]

    def _vector(self, request: str, vector: np.ndarray | None) -> np.ndarray:
        if vector is not None:
            return np.asarray(vector, dtype=np.float32).reshape(self.dim)
        if self.embedder is None:
            raise InvalidRequest("this cache has no embedder; pass the request's vector")
        return self.embedder.embed_one(request)

    def _category(self, category: str | None, vector: np.ndarray) -> str:
        if category:
            return category
        return self.classify(vector) if self.classify else DEFAULT_CATEGORY

    def _nearest(self, vector: np.ndarray, category: str, k: int, min_similarity: float) -> list[CacheHit]:
        index = self._indexes.get(category)
        if index is None or len(index) == 0:
            return []
        policy = self.policy(category)
        now = self._clock()
        hits, expired = [], []
        for key, similarity in index.search(vector, min(k, len(index))):
            if similarity < min_similarity:
                break
            row = self._db.execute("SELECT request, answer, created FROM entries WHERE id = ?", (key,)).fetchone()
            if row is None:
                continue
            if policy.ttl_s is not None and now - row[2] > policy.ttl_s:
                expired.append(key)
                continue
            hits.append(CacheHit(key, category, row[0], row[1], similarity))
        if expired:
            self._evict(category, expired)
        return hits

    def lookup(self, request: str, category: str | None = None, vector: np.ndarray | None = None) -> CacheHit | None:
        """Exact-answer mode: the cached answer of the most similar request above the category's threshold."""
        vector = self._vector(request, vector)
        with self._lock:
            category = self._category(category, vector)
            hits = self._nearest(vector, category, 4, self.policy(category).threshold)
            _count_lookup("answer", bool(hits))
            if not hits:
                return None
            self._db.execute("UPDATE entries SET last_used = ?, hits = hits + 1 WHERE id = ?", (self._clock(), hits[0].id))
            self._db.commit()
            return hits[0]

    def examples(
        self, request: str, category: str | None = None, k: int = 3, min_similarity: float = 0.0, vector: np.ndarray | None = None
    ) -> list[CacheHit]:
        """IC-Cache mode: up to k nearest (request, answer) pairs, most similar first, as in-context examples."""
        vector = self._vector(request, vector)
        with self._lock:
            hits = self._nearest(vector, self._category(category, vector), k, min_similarity)
        _count_lookup("examples", bool(hits))
        return hits

    def put(self, request: str, answer: str, category: str | None = None, vector: np.ndarray | None = None) -> int:
        """Store a (request, answer) pair; the category's least recently used entries make room."""
        return self.put_many([request], [answer], [category], None if vector is None else np.asarray(vector)[None, :])[0]

    def put_many(
        self, requests: Sequence[str], answers: Sequence[str], categories: Sequence[str | None], vectors: np.ndarray | None = None
    ) -> list[int]:
        """Store many pairs at once (one embedding batch, one transaction)."""
        if vectors is None:
            if self.embedder is None:
                raise InvalidRequest("this cache has no embedder; pass the vectors")
            vectors = self.embedder.embed(list(requests))
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(requests), self.dim)
        now = self._clock()
        with self._lock, self._db:
            ids, added = [], {}
            for request, answer, category, vector in zip(requests, answers, categories, vectors):
                category = self._category(category, vector)
                cursor = self._db.execute(
                    "INSERT INTO entries (category, request, answer, vector, created, last_used) VALUES (?, ?, ?, ?, ?, ?)",
                    (category, request, answer, vector.tobytes(), now, now),
                )
                ids.append(cursor.lastrowid)
                added.setdefault(category, []).append((cursor.lastrowid, vector))
            for category, rows in added.items():
                self._index(category).add(np.array([i for i, _ in rows]), np.stack([v for _, v in rows]))
                self._counts[category] = self._counts.get(category, 0) + len(rows)
                over = self._counts[category] - self.policy(category).quota
                if over > 0:
                    lru = self._db.execute(
                        "SELECT id FROM entries WHERE category = ? ORDER BY last_used, id LIMIT ?", (category, over)
                    ).fetchall()
                    self._evict(category, [r[0] for r in lru], commit=False)
            return ids

    def _evict(self, category: str, ids: list[int], commit: bool = True) -> None:
        self._db.executemany("DELETE FROM entries WHERE id = ?", [(i,) for i in ids])
        if commit:
            self._db.commit()
        self._indexes[category].remove(ids)
        self._counts[category] -= len(ids)

    def close(self) -> None:
        self._db.close()
