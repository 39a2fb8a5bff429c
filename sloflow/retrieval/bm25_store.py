"""BM25 store (bm25s): keyword search over chunk texts, rebuilt lazily after changes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import bm25s
import numpy as np

from sloflow.retrieval.chunking import Chunk
from sloflow.retrieval.index import SearchHit, Where, flat_metadata, hit_from, matches


def _tokenize(texts: list[str]) -> list[list[str]]:
    return bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)


class Bm25Store:
    """An `Index` whose scores are BM25 scores; chunks with no query term never match."""

    store = "bm25"

    def __init__(self, name: str) -> None:
        self.name = name
        self._chunks: dict[str, Chunk] = {}
        self._order: list[Chunk] = []
        # bm25s has no incremental add: the index is rebuilt on the first search after a change.
        self._bm25: bm25s.BM25 | None = None

    def __len__(self) -> int:
        return len(self._chunks)

    def add(self, chunks: Sequence[Chunk]) -> None:
        """Add (or replace, by chunk id) chunks."""
        for chunk in chunks:
            self._chunks[chunk.id] = chunk
        self._bm25 = None

    def delete(self, doc_ids: Iterable[str]) -> None:
        """Remove every chunk of these documents."""
        gone = set(doc_ids)
        self._chunks = {cid: c for cid, c in self._chunks.items() if c.doc_id not in gone}
        self._bm25 = None

    def _index(self) -> bm25s.BM25:
        if self._bm25 is None:
            self._order = list(self._chunks.values())
            self._bm25 = bm25s.BM25()
            self._bm25.index(_tokenize([c.text for c in self._order]), show_progress=False)
        return self._bm25

    def search(self, query: str, k: int = 10, where: Where | None = None) -> list[SearchHit]:
        """Top-k chunks by BM25 score."""
        if not self._chunks:
            return []
        bm25 = self._index()
        tokens = _tokenize([query])
        if not tokens[0]:
            return []
        mask = None
        if where:
            mask = np.array([matches(flat_metadata(c), where) for c in self._order], dtype=np.float32)
            if not mask.any():
                return []
        ids, scores = bm25.retrieve(
            tokens, k=min(k, len(self._order)), weight_mask=mask, show_progress=False, n_threads=1
        )
        return [
            hit_from(flat_metadata(self._order[i]), self._order[i].text, s, self.name, self.store)
            for i, s in zip(ids[0].tolist(), scores[0].tolist())
            if s > 0
        ]
