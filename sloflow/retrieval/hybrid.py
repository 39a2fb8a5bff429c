"""Hybrid search: dense and BM25 rankings fused by reciprocal rank (RRF, Cormack et al. 2009)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np

from sloflow.retrieval.bm25_store import Bm25Store
from sloflow.retrieval.chroma_store import ChromaStore
from sloflow.retrieval.chunking import Chunk
from sloflow.retrieval.faiss_store import FaissStore
from sloflow.retrieval.index import SearchHit, Where

RRF_K = 60  # the constant from the RRF paper; it damps the weight of the very first ranks


def reciprocal_rank_fusion(rankings: dict[str, list[SearchHit]], k: int = 10, rrf_k: int = RRF_K) -> list[SearchHit]:
    """Fuse named rankings: score = sum of 1 / (rrf_k + rank); hits keep each retriever's rank."""
    fused: dict[str, float] = {}
    first: dict[str, SearchHit] = {}
    ranks: dict[str, dict[str, int]] = {}
    for name, hits in rankings.items():
        for rank, hit in enumerate(hits, start=1):
            fused[hit.chunk_id] = fused.get(hit.chunk_id, 0.0) + 1.0 / (rrf_k + rank)
            first.setdefault(hit.chunk_id, hit)
            ranks.setdefault(hit.chunk_id, {})[name] = rank
    best = sorted(fused, key=lambda cid: -fused[cid])[:k]
    return [replace(first[cid], score=fused[cid], store="hybrid", ranks=ranks[cid]) for cid in best]


class HybridIndex:
    """An `Index` over a dense store and a BM25 store holding the same chunks."""

    store = "hybrid"

    def __init__(self, dense: FaissStore | ChromaStore, sparse: Bm25Store, fetch: int = 50) -> None:
        self.name = dense.name
        self.dense, self.sparse = dense, sparse
        self.fetch = fetch  # candidates taken from each retriever before fusion

    def __len__(self) -> int:
        return len(self.sparse)

    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray | None = None) -> None:
        """Add chunks to both stores."""
        self.dense.add(chunks, vectors)
        self.sparse.add(chunks)

    def delete(self, doc_ids: Iterable[str]) -> None:
        """Remove every chunk of these documents from both stores."""
        doc_ids = list(doc_ids)
        self.dense.delete(doc_ids)
        self.sparse.delete(doc_ids)

    def search(self, query: str, k: int = 10, where: Where | None = None, vector: np.ndarray | None = None) -> list[SearchHit]:
        """Top-k by RRF of the dense and BM25 rankings; `vector` skips embedding the query."""
        fetch = max(self.fetch, k)
        dense = self.dense.search_vectors(vector[None, :], fetch, where)[0] if vector is not None else self.dense.search(query, fetch, where)
        sparse = self.sparse.search(query, fetch, where)
        return reciprocal_rank_fusion({self.dense.store: dense, self.sparse.store: sparse}, k)
