"""Chroma store: a persistent local collection, or a collection on a Chroma server given by URL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import urlparse

import chromadb
import numpy as np

from sloflow.errors import InvalidRequest
from sloflow.retrieval.chunking import Chunk
from sloflow.retrieval.embedder import Embedder
from sloflow.retrieval.index import SearchHit, Where, flat_metadata, hit_from


def chroma_client(location: Path | str) -> chromadb.api.ClientAPI:
    """A persistent client for a folder, or an HTTP client for `http(s)://host:port`."""
    settings = chromadb.Settings(anonymized_telemetry=False)
    if isinstance(location, str) and location.startswith(("http://", "https://")):
        url = urlparse(location)
        return chromadb.HttpClient(
            host=url.hostname or "127.0.0.1",
            port=url.port or (443 if url.scheme == "https" else 8000),
            ssl=url.scheme == "https",
            settings=settings,
        )
    return chromadb.PersistentClient(path=str(location), settings=settings)


def chroma_where(where: Where | None) -> dict | None:
    """Our filter in Chroma's syntax (one condition, or `$and` of several)."""
    if not where:
        return None
    conditions = [{k: {"$in": v} if isinstance(v, list) else v} for k, v in where.items()]
    return conditions[0] if len(conditions) == 1 else {"$and": conditions}


class ChromaStore:
    """An `Index` on one Chroma collection with cosine distance; Chroma is given our embeddings."""

    store = "chroma"

    def __init__(self, name: str, embedder: Embedder | None, client: chromadb.api.ClientAPI) -> None:
        if not 3 <= len(name) <= 512:
            raise InvalidRequest(f"Chroma collection name {name!r} must have 3 to 512 characters")
        self.name = name
        self.embedder = embedder
        self._client = client
        # embedding_function=None: Chroma's default would download a model.
        self._collection = client.get_or_create_collection(
            name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
        )
        self._batch = client.get_max_batch_size()

    def __len__(self) -> int:
        return self._collection.count()

    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray | None = None) -> None:
        """Add chunks, embedding them unless their unit vectors are given."""
        if vectors is None:
            if self.embedder is None:
                raise InvalidRequest("this Chroma store has no embedder; pass the vectors")
            vectors = self.embedder.embed([c.text for c in chunks])
        for start in range(0, len(chunks), self._batch):
            part = chunks[start : start + self._batch]
            self._collection.upsert(
                ids=[c.id for c in part],
                embeddings=np.asarray(vectors[start : start + self._batch], dtype=np.float32),
                documents=[c.text for c in part],
                metadatas=[flat_metadata(c) for c in part],
            )

    def delete(self, doc_ids: Iterable[str]) -> None:
        """Remove every chunk of these documents."""
        doc_ids = list(doc_ids)
        if doc_ids:
            self._collection.delete(where={"doc_id": {"$in": doc_ids}})

    def search_vectors(self, queries: np.ndarray, k: int = 10, where: Where | None = None) -> list[list[SearchHit]]:
        """Top-k hits for each query vector; scores are cosine similarities."""
        if not len(self):
            return [[] for _ in range(len(queries))]
        result = self._collection.query(
            query_embeddings=np.asarray(queries, dtype=np.float32).reshape(len(queries), -1),
            n_results=k,
            where=chroma_where(where),
            include=["documents", "metadatas", "distances"],
        )
        return [
            [hit_from(meta, text, 1.0 - dist, self.name, self.store) for text, meta, dist in zip(texts, metas, dists)]
            for texts, metas, dists in zip(result["documents"], result["metadatas"], result["distances"])
        ]

    def search(self, query: str, k: int = 10, where: Where | None = None) -> list[SearchHit]:
        """Top-k chunks by cosine similarity to the query."""
        if self.embedder is None:
            raise InvalidRequest("this Chroma store has no embedder; use search_vectors")
        return self.search_vectors(self.embedder.embed([query]), k, where)[0]

    def drop(self) -> None:
        """Delete the collection and its data."""
        self._client.delete_collection(self.name)
