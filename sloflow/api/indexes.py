"""Document indexes over HTTP: create, list, ingest documents, search, delete.

Needs `app.state.sources` (a `TenantSources`): each tenant reaches only its own indexes. Handlers
are plain `def`: FastAPI runs them in its thread pool, which is where embedding and index work belong.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from sloflow.api.auth import Caller
from sloflow.api.params import NAME_PATTERN, DocId, IndexName
from sloflow.errors import NotFound
from sloflow.retrieval.chunking import Document, Scalar
from sloflow.retrieval.document_index import IndexConfig
from sloflow.retrieval.sources import SourceRegistry
from sloflow.tenancy import Principal

router = APIRouter(prefix="/v1/indexes", tags=["indexes"])


class IndexCreate(BaseModel):
    """A new index; the defaults are FAISS HNSW with 200-word chunks overlapping by 20."""

    model_config = ConfigDict(extra="forbid", strict=True)  # a wrong type is refused, not coerced

    name: str = Field(pattern=NAME_PATTERN, description="3-64 letters, digits, '_', '.', '-'", examples=["notes"])
    store: Literal["faiss", "chroma"] = "faiss"
    faiss_kind: Literal["flat", "hnsw", "ivf"] = "hnsw"
    chunk_mode: Literal["fixed", "paragraph"] = "fixed"
    chunk_size: int = Field(200, ge=1, le=5000, description="words per chunk")
    chunk_overlap: int = Field(20, ge=0, le=4999, description="words shared by consecutive chunks (fewer than chunk_size)")
    description: str = Field("", max_length=2000)


class DocumentIn(BaseModel):
    """One document; re-sending it unchanged is a no-op, changed it replaces the old chunks."""

    model_config = ConfigDict(extra="forbid", strict=True)  # a wrong type is refused, not coerced

    id: str = Field(min_length=1, max_length=1000)
    text: str = Field(max_length=1_000_000)
    metadata: dict[str, Scalar] = Field(default_factory=dict, max_length=64)


class DocumentsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # a wrong type is refused, not coerced

    documents: list[DocumentIn] = Field(min_length=1, max_length=10_000)


class SearchIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # a wrong type is refused, not coerced

    query: str = Field(min_length=1, max_length=10_000)
    k: int = Field(5, ge=1, le=100)
    where: dict[str, Scalar | list[Scalar]] | None = Field(None, description="metadata equalities; a list means any of")
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"


def _sources(request: Request, caller: Principal) -> SourceRegistry:
    return request.app.state.sources.of(caller.tenant)


_INDEX_LINKS = {
    name: {"operationId": op, "parameters": {"name": "$response.body#/name"}}
    for name, op in (("GetIndex", "get_index"), ("SearchIndex", "search_index"), ("AddDocuments", "add_documents"), ("DeleteIndex", "delete_index"))
}


@router.get(
    "",
    operation_id="list_indexes",
    responses={200: {"description": "the indexes", "links": {"GetIndex": {"operationId": "get_index", "parameters": {"name": "$response.body#/indexes/0/name"}}}}},
)
def list_indexes(request: Request, caller: Caller) -> dict[str, Any]:
    """Every index of the caller with its settings and size."""
    indexes = _sources(request, caller).indexes
    return {"indexes": [indexes.get(name).describe() for name in indexes.names()]}


@router.post("", status_code=201, operation_id="create_index", responses={201: {"description": "the new index", "links": _INDEX_LINKS}})
def create_index(body: IndexCreate, request: Request, caller: Caller) -> dict[str, Any]:
    """Create an empty index."""
    config = IndexConfig(**body.model_dump(exclude={"name"}))
    return _sources(request, caller).indexes.create(body.name, config).describe()


@router.get("/{name}", operation_id="get_index")
def get_index(name: IndexName, request: Request, caller: Caller) -> dict[str, Any]:
    """An index's settings, size and documents."""
    index = _sources(request, caller).indexes.get(name)
    return {**index.describe(), "documents": index.documents()}


@router.delete("/{name}", status_code=204, operation_id="delete_index")
def delete_index(name: IndexName, request: Request, caller: Caller) -> Response:
    """Delete an index and its files."""
    _sources(request, caller).indexes.drop(name)
    return Response(status_code=204)


@router.post("/{name}/documents", operation_id="add_documents")
def add_documents(name: IndexName, body: DocumentsIn, request: Request, caller: Caller) -> dict[str, Any]:
    """Ingest documents (the index is created with default settings if it does not exist)."""
    index = _sources(request, caller).indexes.get(name, create=True)
    report = index.add_documents([Document(d.id, d.text, dict(d.metadata)) for d in body.documents])
    return {"index": name, **asdict(report)}


@router.delete("/{name}/documents/{doc_id:path}", status_code=204, operation_id="delete_document")
def delete_document(name: IndexName, doc_id: DocId, request: Request, caller: Caller) -> Response:
    """Remove one document and its chunks."""
    if not _sources(request, caller).indexes.get(name).delete_documents([doc_id]):
        raise NotFound(f"document {doc_id!r} is not in index {name!r}")
    return Response(status_code=204)


@router.post("/{name}/search", operation_id="search_index")
def search(name: IndexName, body: SearchIn, request: Request, caller: Caller) -> dict[str, Any]:
    """Top-k chunks with scores and provenance."""
    hits = _sources(request, caller).indexes.get(name).search(body.query, body.k, body.where, body.mode)
    return {"index": name, "mode": body.mode, "hits": [h.to_dict() for h in hits]}
