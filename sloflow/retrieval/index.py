"""The one `Index` interface every store implements, the hits it returns, and metadata filters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from sloflow.retrieval.chunking import Chunk, Scalar

# A filter: every key must match; a list value means "any of these".
Where = dict[str, Scalar | list[Scalar]]


@dataclass(frozen=True)
class SearchHit:
    """One result with its provenance: which index and store, which document and position."""

    chunk_id: str
    doc_id: str
    position: int
    text: str
    score: float
    metadata: dict[str, Scalar]
    index: str
    store: str
    # Hybrid hits: the 1-based rank each fused retriever gave this chunk.
    ranks: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Index(Protocol):
    """Add, delete and search chunks; `search` takes top-k and an optional metadata filter."""

    name: str

    def add(self, chunks: Sequence[Chunk]) -> None: ...

    def delete(self, doc_ids: Iterable[str]) -> None: ...

    def search(self, query: str, k: int = 10, where: Where | None = None) -> list[SearchHit]: ...

    def __len__(self) -> int: ...


def flat_metadata(chunk: Chunk) -> dict[str, Scalar]:
    """The chunk's metadata plus `doc_id` and `position`, so filters can use them too."""
    return {**chunk.metadata, "doc_id": chunk.doc_id, "position": chunk.position}


def matches(metadata: dict[str, Scalar], where: Where | None) -> bool:
    """Whether flat metadata satisfies the filter."""
    if not where:
        return True
    for key, wanted in where.items():
        value = metadata.get(key)
        if isinstance(wanted, list):
            if value not in wanted:
                return False
        elif value != wanted:
            return False
    return True


def hit_from(meta: dict[str, Scalar], text: str, score: float, index: str, store: str) -> SearchHit:
    """Build a hit from flat metadata (as stored by `flat_metadata`)."""
    user = {k: v for k, v in meta.items() if k not in ("doc_id", "position")}
    doc_id, position = str(meta["doc_id"]), int(meta["position"])
    return SearchHit(f"{doc_id}#{position}", doc_id, position, text, float(score), user, index, store)
