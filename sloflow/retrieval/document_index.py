"""Named document indexes on disk: documents and chunks in SQLite, a dense store beside them, BM25 in memory.

Layout of `<home>/indexes/<name>/`: `index.json` (settings), `documents.sqlite` (documents with
content hashes, and their chunks), `dense.faiss` or `chroma/`. BM25 is rebuilt from the chunks.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Literal

from sloflow.errors import Conflict, InvalidRequest, NotFound
from sloflow.retrieval.bm25_store import Bm25Store
from sloflow.retrieval.chroma_store import ChromaStore, chroma_client
from sloflow.retrieval.chunking import Chunk, ChunkMode, Document, check_metadata, chunk_document
from sloflow.retrieval.embedder import Embedder
from sloflow.retrieval.faiss_store import FaissKind, FaissStore
from sloflow.retrieval.hybrid import HybridIndex
from sloflow.retrieval.index import SearchHit, Where
from sloflow.retrieval.names import check_name

SearchMode = Literal["hybrid", "dense", "bm25"]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
  id TEXT PRIMARY KEY, sha256 TEXT NOT NULL, chunks INTEGER NOT NULL, metadata TEXT NOT NULL, ingested_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
  doc_id TEXT NOT NULL, position INTEGER NOT NULL, text TEXT NOT NULL, metadata TEXT NOT NULL,
  PRIMARY KEY (doc_id, position));
"""


@dataclass(frozen=True)
class IndexConfig:
    """How an index stores and chunks (store, FAISS kind, chunking, Chroma server URL) and what it holds."""

    store: Literal["faiss", "chroma"] = "faiss"
    faiss_kind: FaissKind = "hnsw"
    chunk_mode: ChunkMode = "fixed"
    chunk_size: int = 200
    chunk_overlap: int = 20
    chroma_url: str | None = None
    description: str = ""


@dataclass(frozen=True)
class IngestReport:
    """What an ingestion did: documents added, replaced or left unchanged, and chunks written."""

    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    chunks: int = 0

    def __add__(self, other: IngestReport) -> IngestReport:
        return IngestReport(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def _digest(doc: Document) -> str:
    return hashlib.sha256(json.dumps([doc.text, doc.metadata], sort_keys=True).encode()).hexdigest()


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


class DocumentIndex:
    """One named index: ingest documents (re-ingesting unchanged ones is a no-op) and search them."""

    def __init__(self, folder: Path, config: IndexConfig, embedder: Embedder) -> None:
        self.folder = folder
        self.name = folder.name
        self.config = config
        self._db = sqlite3.connect(folder / "documents.sqlite", check_same_thread=False)
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        if config.store == "chroma":
            self.dense: FaissStore | ChromaStore = ChromaStore(self.name, embedder, chroma_client(config.chroma_url or folder / "chroma"))
        elif (folder / "dense.faiss").exists():
            self.dense = FaissStore.load(folder / "dense.faiss", self.name, embedder)
        else:
            self.dense = FaissStore(self.name, embedder, kind=config.faiss_kind)
        self.sparse = Bm25Store(self.name)
        rows = self._db.execute("SELECT doc_id, position, text, metadata FROM chunks").fetchall()
        self.sparse.add([Chunk(d, p, t, json.loads(m)) for d, p, t, m in rows])
        self.hybrid = HybridIndex(self.dense, self.sparse)

    @classmethod
    def create(cls, folder: Path, config: IndexConfig, embedder: Embedder) -> DocumentIndex:
        """Make a new empty index in `folder` (which must not exist yet)."""
        check_name(folder.name)
        if config.store not in ("faiss", "chroma"):
            raise InvalidRequest(f"store {config.store!r} is unknown; use faiss or chroma")
        if config.chunk_size < 1 or not 0 <= config.chunk_overlap < config.chunk_size:
            raise InvalidRequest("chunk_size must be >= 1 and 0 <= chunk_overlap < chunk_size")
        try:
            folder.mkdir(parents=True)
        except FileExistsError:
            raise Conflict(f"index {folder.name!r} already exists") from None
        try:
            index = cls(folder, config, embedder)
            _write_json(folder / "index.json", asdict(config))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return index

    @classmethod
    def open(cls, folder: Path, embedder: Embedder) -> DocumentIndex:
        """Open an index made by `create`."""
        try:
            config = IndexConfig(**json.loads((folder / "index.json").read_text()))
        except FileNotFoundError:
            raise NotFound(f"index {folder.name!r} does not exist") from None
        return cls(folder, config, embedder)

    def __len__(self) -> int:
        return len(self.sparse)

    def add_documents(self, docs: list[Document]) -> IngestReport:
        """Add new documents, replace changed ones, skip unchanged ones; all or nothing."""
        with self._lock:
            known = dict(self._db.execute("SELECT id, sha256 FROM documents").fetchall())
            todo: dict[str, tuple[Document, str]] = {}
            for doc in docs:
                check_metadata(doc.metadata)
                if not doc.id:
                    raise InvalidRequest("every document needs a non-empty id")
                todo[doc.id] = (doc, _digest(doc))
            changed = {i: (d, h) for i, (d, h) in todo.items() if known.get(i) != h}
            replaced = [i for i in changed if i in known]
            chunks = [c for d, _ in changed.values() for c in self._chunk(d)]
            if not changed:
                return IngestReport(unchanged=len(todo))
            # Embed before touching any store: a failure here leaves the index as it was.
            vectors = self.dense.embedder.embed([c.text for c in chunks]) if self.dense.embedder else None
            self.hybrid.delete(replaced)
            self.hybrid.add(chunks, vectors)
            # The dense file is saved before the SQLite commit: after a crash in between, the
            # documents look new or changed and the next ingestion simply replaces them.
            if isinstance(self.dense, FaissStore):
                self.dense.save(self.folder / "dense.faiss")
            per_doc = Counter(c.doc_id for c in chunks)
            with self._db:
                now = time.time()
                self._db.executemany("DELETE FROM chunks WHERE doc_id = ?", [(i,) for i in changed])
                self._db.executemany(
                    "INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?)",
                    [(i, h, per_doc[i], json.dumps(d.metadata), now) for i, (d, h) in changed.items()],
                )
                self._db.executemany(
                    "INSERT INTO chunks VALUES (?, ?, ?, ?)", [(c.doc_id, c.position, c.text, json.dumps(c.metadata)) for c in chunks]
                )
            return IngestReport(len(changed) - len(replaced), len(replaced), len(todo) - len(changed), len(chunks))

    def _chunk(self, doc: Document) -> list[Chunk]:
        cfg = self.config
        return chunk_document(doc, cfg.chunk_mode, cfg.chunk_size, cfg.chunk_overlap)

    def delete_documents(self, doc_ids: list[str]) -> int:
        """Remove documents and their chunks; returns how many existed."""
        with self._lock:
            present = [i for i in doc_ids if self._db.execute("SELECT 1 FROM documents WHERE id = ?", (i,)).fetchone()]
            if not present:
                return 0
            self.hybrid.delete(present)
            if isinstance(self.dense, FaissStore):
                self.dense.save(self.folder / "dense.faiss")
            with self._db:
                self._db.executemany("DELETE FROM chunks WHERE doc_id = ?", [(i,) for i in present])
                self._db.executemany("DELETE FROM documents WHERE id = ?", [(i,) for i in present])
            return len(present)

    def search(self, query: str, k: int = 5, where: Where | None = None, mode: SearchMode = "hybrid") -> list[SearchHit]:
        """Top-k chunks for `query` by hybrid (default), dense or BM25 search."""
        if k < 1:
            raise InvalidRequest("k must be at least 1")
        store = {"hybrid": self.hybrid, "dense": self.dense, "bm25": self.sparse}.get(mode)
        if store is None:
            raise InvalidRequest(f"search mode {mode!r} is unknown; use hybrid, dense or bm25")
        with self._lock:
            return store.search(query, k, where)

    def documents(self) -> list[dict]:
        """Every document with its chunk count and metadata."""
        rows = self._db.execute("SELECT id, chunks, metadata, ingested_at FROM documents ORDER BY id").fetchall()
        return [{"id": i, "chunks": n, "metadata": json.loads(m), "ingested_at": t} for i, n, m, t in rows]

    def describe(self) -> dict:
        """Name, settings and size."""
        (docs,) = self._db.execute("SELECT count(*) FROM documents").fetchone()
        return {"name": self.name, "config": asdict(self.config), "documents": docs, "chunks": len(self)}

    def close(self) -> None:
        self._db.close()


class IndexRegistry:
    """The named indexes under one folder, opened on first use and kept open."""

    def __init__(self, root: Path, embedder: Embedder | None = None) -> None:
        self.root = root
        self._embedder = embedder
        self._open: dict[str, DocumentIndex] = {}
        self._lock = threading.Lock()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from sloflow.retrieval.embedder import get_embedder

            self._embedder = get_embedder()
        return self._embedder

    def create(self, name: str, config: IndexConfig | None = None) -> DocumentIndex:
        """A new empty index."""
        with self._lock:
            index = DocumentIndex.create(self.root / check_name(name), config or IndexConfig(), self.embedder)
            self._open[name] = index
            return index

    def get(self, name: str, create: bool = False) -> DocumentIndex:
        """The index called `name`; with `create`, a default one is made if it does not exist."""
        with self._lock:
            if name in self._open:
                return self._open[name]
            folder = self.root / check_name(name)
            if not (folder / "index.json").exists():
                if not create:
                    raise NotFound(f"index {name!r} does not exist; create it or ingest documents into it first")
                index = DocumentIndex.create(folder, IndexConfig(), self.embedder)
            else:
                index = DocumentIndex.open(folder, self.embedder)
            self._open[name] = index
            return index

    def names(self) -> list[str]:
        """Names of every index on disk."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "index.json").exists())

    def drop(self, name: str) -> None:
        """Delete an index and its files."""
        index = self.get(name)
        with self._lock:
            self._open.pop(name, None)
            if isinstance(index.dense, ChromaStore):
                index.dense.drop()
            index.close()
            shutil.rmtree(index.folder)
