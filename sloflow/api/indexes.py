"""Document indexes over HTTP: create, list, ingest documents, search, delete.

Needs `app.state.sources` (a `SourceRegistry`). Handlers are plain `def`: FastAPI runs them in its
thread pool, which is where embedding and index work belong.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from sloflow.errors import NotFound
from sloflow.retrieval.chunking import Document, Scalar
from sloflow.retrieval.document_index import IndexConfig
from sloflow.retrieval.sources import SourceRegistry

router = APIRouter(prefix="/v1/indexes", tags=["indexes"])


class IndexCreate(BaseModel):
    """A new index; the defaults are FAISS HNSW with 200-word chunks overlapping by 20."""

    name: str = Field(description="3-64 letters, digits, '_', '.', '-'")
    store: Literal["faiss", "chroma"] = "faiss"
    faiss_kind: Literal["flat", "hnsw", "ivf"] = "hnsw"
    chunk_mode: Literal["fixed", "paragraph"] = "fixed"
    chunk_size: int = Field(200, ge=1, le=5000, description="words per chunk")
    chunk_overlap: int = Field(20, ge=0, description="words shared by consecutive chunks")
    description: str = ""


class DocumentIn(BaseModel):
    """One document; re-sending it unchanged is a no-op, changed it replaces the old chunks."""

    id: str = Field(min_length=1, max_length=1000)
    text: str
    metadata: dict[str, Scalar] = Field(default_factory=dict)


class DocumentsIn(BaseModel):
    documents: list[DocumentIn] = Field(min_length=1, max_length=10_000)


class SearchIn(BaseModel):
    query: str = Field(min_length=1)
    k: int = Field(5, ge=1, le=100)
    where: dict[str, Scalar | list[Scalar]] | None = Field(None, description="metadata equalities; a list means any of")
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"


def _sources(request: Request) -> SourceRegistry:
    return request.app.state.sources


@router.get("")
def list_indexes(request: Request) -> dict[str, Any]:
    """Every index with its settings and size."""
    indexes = _sources(request).indexes
    return {"indexes": [indexes.get(name).describe() for name in indexes.names()]}


@router.post("", status_code=201)
def create_index(body: IndexCreate, request: Request) -> dict[str, Any]:
    """Create an empty index."""
    config = IndexConfig(**body.model_dump(exclude={"name"}))
    return _sources(request).indexes.create(body.name, config).describe()


@router.get("/{name}")
def get_index(name: str, request: Request) -> dict[str, Any]:
    """An index's settings, size and documents."""
    index = _sources(request).indexes.get(name)
    return {**index.describe(), "documents": index.documents()}


@router.delete("/{name}", status_code=204)
def delete_index(name: str, request: Request) -> Response:
    """Delete an index and its files."""
    _sources(request).indexes.drop(name)
    return Response(status_code=204)


@router.post("/{name}/documents")
def add_documents(name: str, body: DocumentsIn, request: Request) -> dict[str, Any]:
    """Ingest documents (the index is created with default settings if it does not exist)."""
    index = _sources(request).indexes.get(name, create=True)
    report = index.add_documents([Document(d.id, d.text, dict(d.metadata)) for d in body.documents])
    return {"index": name, **asdict(report)}


@router.delete("/{name}/documents/{doc_id:path}", status_code=204)
def delete_document(name: str, doc_id: str, request: Request) -> Response:
    """Remove one document and its chunks."""
    if not _sources(request).indexes.get(name).delete_documents([doc_id]):
        raise NotFound(f"document {doc_id!r} is not in index {name!r}")
    return Response(status_code=204)


@router.post("/{name}/search")
def search(name: str, body: SearchIn, request: Request) -> dict[str, Any]:
    """Top-k chunks with scores and provenance."""
    hits = _sources(request).indexes.get(name).search(body.query, body.k, body.where, body.mode)
    return {"index": name, "mode": body.mode, "hits": [h.to_dict() for h in hits]}
