"""Spider-style execution accuracy: load a dev folder, run gold SQL, compare result multisets.

A folder holds `questions.jsonl` (`db_id`, `question`, `gold_sql`), `tables.json` and
`db/<db_id>.sqlite`. Two results match when they hold the same rows as multisets, in the same
order only when the gold query has an ORDER BY, and with columns in any order (Spider's
test-suite execution comparison).
"""

from __future__ import annotations

import itertools
import json
import random
import sqlite3
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlglot

from sloflow.errors import InvalidRequest, NotFound


@dataclass(frozen=True)
class Question:
    """One dev question with its gold SQL."""

    id: str
    db_id: str
    question: str
    gold_sql: str


@dataclass(frozen=True)
class DevSet:
    """A Spider-like folder: questions, per-database join keys from `tables.json`, database files."""

    root: Path
    questions: list[Question]
    foreign_keys: dict[str, list[str]]  # db_id -> ["t.c = u.d", ...]

    def db_path(self, db_id: str) -> Path:
        return self.root / "db" / f"{db_id}.sqlite"


def load_devset(root: Path) -> DevSet:
    """Read a Spider-like folder; `NotFound` says which file is missing."""
    root = Path(root)
    qfile, tfile = root / "questions.jsonl", root / "tables.json"
    for f in (qfile, tfile, root / "db"):
        if not f.exists():
            raise NotFound(f"{f} does not exist; --data must point at a folder with questions.jsonl, tables.json and db/")
    questions = []
    for n, line in enumerate(qfile.read_text().splitlines()):
        if line.strip():
            row = json.loads(line)
            questions.append(Question(str(row.get("id", n)), row["db_id"], row["question"], row["gold_sql"]))
    fks: dict[str, list[str]] = {}
    for db in json.loads(tfile.read_text()):
        tables, cols = db["table_names_original"], db["column_names_original"]

        def name(i: int) -> str:
            t, c = cols[i]
            return f"{tables[t]}.{c}"

        fks[db["db_id"]] = [f"{name(a)} = {name(b)}" for a, b in db.get("foreign_keys", [])]
    return DevSet(root, questions, fks)


def sample_questions(questions: list[Question], limit: int | None, seed: int = 0) -> list[Question]:
    """`limit` questions drawn across databases in proportion to their size (fixed seed), grouped by database.

    Grouping by database keeps each database's schema prefix warm in the model's prompt cache.
    """
    if limit is None or limit >= len(questions):
        chosen = list(questions)
    else:
        rng = random.Random(seed)
        by_db: dict[str, list[Question]] = defaultdict(list)
        for q in questions:
            by_db[q.db_id].append(q)
        # Largest-remainder apportionment, at least one question per database when limit allows.
        total = len(questions)
        quotas = {db: limit * len(qs) / total for db, qs in by_db.items()}
        counts = {db: int(v) for db, v in quotas.items()}
        if limit >= len(by_db):
            for db in counts:
                counts[db] = max(counts[db], 1)
        order = sorted(by_db, key=lambda d: quotas[d] - int(quotas[d]), reverse=True)
        i = 0
        while sum(counts.values()) < limit:
            db = order[i % len(order)]
            if counts[db] < len(by_db[db]):
                counts[db] += 1
            i += 1
        while sum(counts.values()) > limit:
            db = max(counts, key=lambda d: counts[d])
            counts[db] -= 1
        chosen = [q for db in sorted(by_db) for q in rng.sample(by_db[db], counts[db])]
    position = {q.id: i for i, q in enumerate(questions)}
    return sorted(chosen, key=lambda q: (q.db_id, position[q.id]))


def run_readonly(path: Path, sql: str, timeout_s: float = 10.0, max_rows: int = 100_000) -> list[tuple]:
    """Rows of trusted SQL (gold queries) on a read-only connection, stopped after `timeout_s`."""
    conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    deadline = time.monotonic() + timeout_s
    try:
        conn.execute("PRAGMA query_only = ON")
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        conn.text_factory = lambda b: b.decode(errors="replace")
        return conn.execute(sql).fetchmany(max_rows)
    except sqlite3.Error as exc:
        raise InvalidRequest(f"query failed: {exc}") from None
    finally:
        conn.close()


def has_order_by(sql: str) -> bool:
    """Whether the outermost query of `sql` orders its rows."""
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except Exception:
        return " order by " in f" {sql.lower()} "
    return tree is not None and tree.args.get("order") is not None


def _norm(value: Any) -> Any:
    # 3 and 3.0 are the same answer; compare floats at a tolerance that survives AVG rounding.
    if isinstance(value, float):
        return int(value) if value.is_integer() else round(value, 6)
    if isinstance(value, bytes):
        return value.hex()
    return value


def _column_orders(gold: list[tuple], pred: list[tuple]) -> list[tuple[int, ...]]:
    """Orders of the predicted columns that could line up with the gold ones.

    A predicted column can stand for a gold column only if it holds the same values as a
    multiset; the product of those choices is small in practice, and is capped.
    """
    width = len(gold[0])
    columns = [Counter(row[i] for row in pred) for i in range(width)]
    options = [[j for j in range(width) if columns[j] == Counter(row[i] for row in gold)] for i in range(width)]
    orders: list[tuple[int, ...]] = []
    for order in itertools.product(*options):
        if len(set(order)) == width:
            orders.append(order)
            if len(orders) >= 64:
                break
    return orders


def results_match(gold: list[tuple] | list[list], pred: list[tuple] | list[list], ordered: bool) -> bool:
    """Whether two results hold the same rows (as multisets, or as sequences when `ordered`).

    As in Spider's test-suite evaluation, the columns may come in another order: "the number of
    employees from each city" is answered by (count, city) and by (city, count) alike.
    """
    g = [tuple(_norm(v) for v in row) for row in gold]
    p = [tuple(_norm(v) for v in row) for row in pred]
    if len(g) != len(p):
        return False
    if not g:
        return True
    if len(g[0]) != len(p[0]):
        return False
    for order in _column_orders(g, p):
        moved = [tuple(row[j] for j in order) for row in p]
        if (g == moved) if ordered else (Counter(g) == Counter(moved)):
            return True
    return False
