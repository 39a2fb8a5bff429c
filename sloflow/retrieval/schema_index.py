"""Per-database schema index: one entry per table and per column (names, types, sample values),
searched by FAISS and BM25 fused by reciprocal rank, and rebuilt when the schema's fingerprint changes.

A question is matched against columns as well as tables (CHESS's column-level retrieval): "how many
singers are from France" names `singer.Country` by a stored value and `singer` by its name, and a
table ranks by its best entry, so a table with many columns is not favoured for its size.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sloflow.retrieval.bm25_store import Bm25Store
from sloflow.retrieval.chunking import Chunk
from sloflow.retrieval.databases import Table, schema_fingerprint
from sloflow.retrieval.embedder import Embedder
from sloflow.retrieval.faiss_store import FaissStore
from sloflow.retrieval.hybrid import HybridIndex
from sloflow.retrieval.index import SearchHit

PER_TABLE = 3
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def name_words(name: str) -> str:
    """An identifier as words, so BM25 and the embedder see them: `car_makers` -> `car makers`, `MakeId` -> `make id`."""
    return " ".join(_CAMEL.sub(" ", name).replace("_", " ").replace("-", " ").lower().split())


def _samples(values: Sequence[object]) -> str:
    shown = [str(v)[:40] for v in values if v is not None and str(v).strip()]
    return f"; e.g. {', '.join(shown)}" if shown else ""


def schema_entries(tables: Sequence[Table]) -> list[Chunk]:
    """A table entry (position 0: its name and columns) and one entry per column (its name, type, values)."""
    entries = []
    for t in tables:
        columns = ", ".join(c.name for c in t.columns)
        entries.append(Chunk(t.name, 0, f"table {t.name} ({name_words(t.name)}): {columns}", {"table": t.name, "column": ""}))
        for i, c in enumerate(t.columns, start=1):
            text = f"{t.name}.{c.name} ({name_words(t.name)} {name_words(c.name)}) {c.type or 'text'}{_samples(c.samples)}"
            entries.append(Chunk(t.name, i, text, {"table": t.name, "column": c.name}))
    return entries


class SchemaIndex:
    """Hybrid (FAISS + BM25) search over the entries of one database's schema."""

    def __init__(self, db: str, tables: Sequence[Table], embedder: Embedder) -> None:
        self.db = db
        self.fingerprint = schema_fingerprint(tables)
        self._describe = {t.name: t.describe() for t in tables}
        entries = schema_entries(tables)
        # Exact search: a schema has hundreds to a few thousand entries, far below where HNSW pays.
        self._hybrid = HybridIndex(FaissStore(f"schema:{db}", embedder, kind="flat"), Bm25Store(f"schema:{db}"))
        self._hybrid.add(entries)
        self.entries = len(entries)

    def search_entries(self, question: str, k: int = 30) -> list[SearchHit]:
        """The best table and column entries for `question`."""
        return self._hybrid.search(question, k)

    def tables(self, question: str, k: int = 5, fetch: int = 40) -> list[SearchHit]:
        """The `k` tables whose best entries score highest; `metadata["columns"]` lists the columns that matched.

        A table scores the sum of its best `PER_TABLE` entries: a question usually names a table
        by more than one of its parts, while a word every table shares ("status") lends each just
        one entry; the cap keeps wide tables from winning by their width.
        """
        scores: dict[str, list[float]] = {}
        columns: dict[str, list[str]] = {}
        for hit in self.search_entries(question, max(fetch, k)):
            table, column = str(hit.metadata["table"]), str(hit.metadata.get("column") or "")
            scores.setdefault(table, []).append(hit.score)
            if column:
                columns.setdefault(table, []).append(column)
        total = {t: sum(s[:PER_TABLE]) for t, s in scores.items()}
        ranked = sorted(total, key=lambda t: -total[t])[:k]
        return [
            SearchHit(f"{t}#0", t, 0, self._describe[t], total[t], {"table": t, "columns": ",".join(columns.get(t, []))}, f"schema:{self.db}", "hybrid")
            for t in ranked
        ]
