"""One SQLite database from every database of a Spider-like folder, so each question must find its
tables among all of them (the large-schema setting of `sloflow bench text2sql --merge`).

Tables keep their names unless two databases hold one of the same name (compared without case, as
SQLite does); each such table becomes `<db_id>__<table>`. Gold SQL and join keys are rewritten with
sqlglot to the new names, and every rewritten gold query is checked to return the same rows on the
merged database as the original on its own.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import sqlglot
from sqlglot import exp

from sloflow.bench.spider_eval import DevSet, Question, results_match, run_readonly
from sloflow.errors import SloflowError
from sloflow.planners.sql.linking import parse_join_key
from sloflow.retrieval.databases import quote_identifier

MERGED = "merged"

# Nouns for filler tables that take a merged schema past 100 tables (none is a Spider-dev table).
FILLER_NOUNS = """airport album antenna aquarium asteroid auction bakery ballot banner barn battery beacon bicycle
blanket boiler bookshop bridge brochure bucket cabinet cactus camera canal candle canoe carpet castle
cathedral cellar chimney cinema circus clinic compass concerto cottage crane crater dairy dentist
diamond dolphin drone elevator embassy engine factory farm ferry festival fountain furnace galaxy
garage glacier greenhouse guitar hammer harbor helmet highway hospital hotel island jewel kettle
kitchen ladder lagoon lantern library lighthouse locomotive magnet marathon meadow microscope
mineral monastery museum_shop necklace orchard orchestra painting palace parachute pharmacy piano
pipeline planet pottery prison pyramid quarry radio reservoir robot saddle satellite tunnel""".split()


@dataclass(frozen=True)
class MergedSet:
    """The merged database as a dev set (every question on `MERGED`) and what the merge changed."""

    dev: DevSet
    origin: dict[str, str]  # question id -> the database it was asked on
    renamed: dict[str, str] = field(default_factory=dict)  # "db.table" -> its name in the merged database
    tables: int = 0
    gold_rewritten: int = 0
    gold_mismatch: list[str] = field(default_factory=list)  # ids whose rewritten gold returned other rows

    def summary(self) -> dict[str, object]:
        """What the output states about the merge."""
        return {
            "databases": len(set(self.origin.values())),
            "tables": self.tables,
            "renamed": self.renamed,
            "gold_rewritten": self.gold_rewritten,
            "gold_mismatch": self.gold_mismatch,
        }


def table_names(path: Path) -> list[str]:
    """The tables of a SQLite file, in creation order."""
    conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid")]
    finally:
        conn.close()


def clash_renames(tables_by_db: dict[str, list[str]]) -> dict[str, dict[str, str]]:
    """db -> {table (lower case): new name} for the tables whose name another database also uses."""
    counts = Counter(t.lower() for tables in tables_by_db.values() for t in set(tables))
    return {db: {t.lower(): f"{db}__{t}" for t in tables if counts[t.lower()] > 1} for db, tables in tables_by_db.items()}


def rename_tables_in_sql(sql: str, renames: dict[str, str]) -> str:
    """`sql` with the tables of `renames` (lower-case old name -> new) renamed, and the columns they qualify."""
    if not renames:
        return sql
    tree = sqlglot.parse_one(sql, read="sqlite")
    aliases = {a.name.lower() for a in tree.find_all(exp.TableAlias)}
    tables = [t for t in tree.find_all(exp.Table) if t.name.lower() in renames]
    if not tables:  # nothing to rename: the query stays as written, not as sqlglot would print it
        return sql
    for table in tables:
        table.set("this", exp.to_identifier(renames[table.name.lower()]))
    for column in tree.find_all(exp.Column):
        qualifier = column.table.lower()
        if qualifier and qualifier not in aliases and qualifier in renames:
            column.set("table", exp.to_identifier(renames[qualifier]))
    return tree.sql(dialect="sqlite")


def _rename_key(key: str, renames: dict[str, str]) -> str:
    parsed = parse_join_key(key)
    if parsed is None:
        return key
    return " = ".join(f"{renames.get(t.lower(), t)}.{c}" for t, c in parsed)


def _copy_tables(target: sqlite3.Connection, source: Path, renames: dict[str, str]) -> int:
    """Copy every table of `source` (columns, declared types, primary key, rows) under its merged name."""
    target.execute("ATTACH DATABASE ? AS src", (str(source),))
    try:
        copied = 0
        for table in table_names(source):
            info = target.execute(f"PRAGMA src.table_info({quote_identifier(table)})").fetchall()
            columns = [f"{quote_identifier(name)} {ty}".rstrip() for _, name, ty, _, _, _ in info]
            pk = [name for _, name, _, _, _, k in sorted(info, key=lambda r: r[5]) if k]
            if pk:
                columns.append(f"PRIMARY KEY ({', '.join(quote_identifier(c) for c in pk)})")
            new = renames.get(table.lower(), table)
            target.execute(f"CREATE TABLE {quote_identifier(new)} ({', '.join(columns)})")
            target.execute(f"INSERT INTO {quote_identifier(new)} SELECT * FROM src.{quote_identifier(table)}")
            copied += 1
        target.commit()
        return copied
    finally:
        target.execute("DETACH DATABASE src")


def merge_devset(dev: DevSet, root: Path, db_ids: list[str] | None = None) -> MergedSet:
    """Write `root/db/merged.sqlite` from the databases of `dev` (all, or `db_ids`) and rewrite its questions."""
    db_ids = sorted(db_ids or {q.db_id for q in dev.questions})
    tables_by_db = {db: table_names(dev.db_path(db)) for db in db_ids}
    renames = clash_renames(tables_by_db)
    merged = DevSet(Path(root), [], {})
    path = merged.db_path(MERGED)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    try:
        tables = sum(_copy_tables(conn, dev.db_path(db), renames[db]) for db in db_ids)
    finally:
        conn.close()
    questions, origin, rewritten, mismatch = [], {}, 0, []
    for q in dev.questions:
        if q.db_id not in renames:
            continue
        gold = rename_tables_in_sql(q.gold_sql, renames[q.db_id])
        if gold != q.gold_sql:
            rewritten += 1
            if not _same_rows(dev.db_path(q.db_id), q.gold_sql, path, gold):
                mismatch.append(q.id)
        questions.append(Question(q.id, MERGED, q.question, gold))
        origin[q.id] = q.db_id
    keys = [_rename_key(k, renames[db]) for db in db_ids for k in dev.foreign_keys.get(db, [])]
    renamed = {f"{db}.{t}": renames[db][t.lower()] for db in db_ids for t in tables_by_db[db] if t.lower() in renames[db]}
    return MergedSet(DevSet(Path(root), questions, {MERGED: keys}), origin, renamed, tables, rewritten, mismatch)


def _same_rows(old_db: Path, old_sql: str, new_db: Path, new_sql: str) -> bool:
    try:
        return results_match(run_readonly(old_db, old_sql), run_readonly(new_db, new_sql), ordered=True)
    except SloflowError:
        return False


def add_filler_tables(path: Path, count: int) -> list[str]:
    """Add `count` tables (one per filler noun: id, name, a status and a note, three rows each), chained
    by foreign keys, so linking must find a question's tables among them; their names."""
    nouns = FILLER_NOUNS[:count]
    conn = sqlite3.connect(path)
    try:
        taken = {r[0].lower() for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        nouns = [n for n in nouns if n not in taken]
        for i, noun in enumerate(nouns):
            ref = f", {nouns[i + 1]}_id INTEGER REFERENCES {nouns[i + 1]}(id)" if i + 1 < len(nouns) else ""
            conn.execute(f"CREATE TABLE {noun} (id INTEGER PRIMARY KEY, name TEXT, {noun}_status TEXT, note TEXT{ref})")
            rows = [(n, f"{noun} {n}", ("open", "closed")[n % 2], f"kept by the {noun} office") + ((n,) if ref else ()) for n in range(1, 4)]
            conn.executemany(f"INSERT INTO {noun} VALUES ({', '.join('?' * len(rows[0]))})", rows)
        conn.commit()
    finally:
        conn.close()
    return nouns
