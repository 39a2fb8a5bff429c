"""The text2sql workflow on a 100-table schema built here: retrieval linking, join paths, flat cost."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sloflow.bench.spider_merge import FILLER_NOUNS
from sloflow.retrieval.databases import DatabaseRegistry
from sloflow.retrieval.document_index import IndexRegistry
from sloflow.retrieval.embedder import Embedder
from sloflow.retrieval.sources import SourceRegistry
from sloflow.workflows import MemoryRunStore, Registry, Runtime
from sloflow.workflows.builtin.text2sql import text2sql, tools
from tests.workflows.builtin.text2sql.conftest import SqlWriter

NOUNS = FILLER_NOUNS  # 100 table names, none a Spider table


def build_schema(path: Path) -> Path:
    """100 tables, one per noun: id, name, a text column with stored values; each of the first 60
    refers to the next one, so tables far apart are joined only through the ones between them."""
    assert len(NOUNS) == 100
    conn = sqlite3.connect(path)
    for i, noun in enumerate(NOUNS):
        ref = f", {NOUNS[i + 1]}_id INTEGER REFERENCES {NOUNS[i + 1]}(id)" if i < 60 else ""
        conn.execute(f"CREATE TABLE {noun} (id INTEGER PRIMARY KEY, name TEXT, {noun}_status TEXT{ref})")
        rows = [(n, f"{noun} {n}", ("open", "closed")[n % 2]) + ((n,) if ref else ()) for n in range(1, 4)]
        conn.executemany(f"INSERT INTO {noun} VALUES ({', '.join('?' * len(rows[0]))})", rows)
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def big(tmp_path: Path, embedder: Embedder) -> SourceRegistry:
    registry = SourceRegistry(IndexRegistry(tmp_path / "indexes", embedder), DatabaseRegistry(tmp_path / "databases.json"))
    registry.databases.add("big", f"sqlite:///{build_schema(tmp_path / 'big.sqlite')}")
    return registry


def runtime(llm: SqlWriter, sources: SourceRegistry) -> Runtime:
    registry = Registry()
    registry.add(text2sql)
    return Runtime(MemoryRunStore(), None, client=llm, tools=tools(sources), registry=registry)


@pytest.mark.parametrize(
    ("question", "named"),
    [
        ("How many lighthouses are there?", {"lighthouse"}),
        ("List the names of the glaciers whose status is open.", {"glacier"}),
        ("Which orchestras play in which cathedral?", {"orchestra", "cathedral"}),
    ],
)
async def test_linking_a_100_table_schema_returns_the_tables_the_question_names(
    big: SourceRegistry, question: str, named: set[str]
) -> None:
    llm = SqlWriter(lambda n: "SELECT count(*) FROM lighthouse")
    record = await runtime(llm, big).run("text2sql", {"question": question, "db": "big", "candidates_n": 1})
    out = record.output
    assert record.status.value == "succeeded", record.error
    assert named <= set(out["tables"])
    assert len(out["tables"]) <= 6  # the prompt sees the retrieved part, not 100 tables
    assert all(f"CREATE TABLE {t} (" in out["schema_sql"] for t in out["tables"])
    assert out["schema_sql"].count("CREATE TABLE") == len(out["tables"])
    # Retrieval kept the part small, so no model call was needed to prune it.
    assert [r.json_schema for r, _ in llm.calls] == [None]


async def test_tables_named_far_apart_are_joined_through_the_tables_between_them(big: SourceRegistry) -> None:
    # bakery -> ballot -> banner: the question names the ends; the join path brings the middle.
    llm = SqlWriter(lambda n: "SELECT 1")
    record = await runtime(llm, big).run(
        "text2sql", {"question": "For each bakery, the banner it is linked to.", "db": "big", "candidates_n": 1, "link_tables": 2}
    )
    out = record.output
    assert {"bakery", "ballot", "banner"} <= set(out["tables"])
    assert "bakery.ballot_id = ballot.id" in out["schema_sql"] and "ballot.banner_id = banner.id" in out["schema_sql"]


async def test_the_prompt_stays_the_same_size_as_the_schema_grows(big: SourceRegistry, tmp_path: Path) -> None:
    small_path = tmp_path / "small.sqlite"
    conn = sqlite3.connect(small_path)
    conn.execute("CREATE TABLE lighthouse (id INTEGER PRIMARY KEY, name TEXT, lighthouse_status TEXT)")
    conn.executemany("INSERT INTO lighthouse VALUES (?, ?, ?)", [(n, f"lighthouse {n}", "open") for n in range(1, 4)])
    for noun in NOUNS[:9]:
        conn.execute(f"CREATE TABLE {noun} (id INTEGER PRIMARY KEY, name TEXT, {noun}_status TEXT)")
    conn.commit()
    conn.close()
    big.databases.add("small", f"sqlite:///{small_path}")
    sizes = {}
    for db in ("small", "big"):
        llm = SqlWriter(lambda n: "SELECT count(*) FROM lighthouse")
        record = await runtime(llm, big).run("text2sql", {"question": "How many lighthouses are there?", "db": db, "candidates_n": 1})
        sizes[db] = len(llm.calls[0][0].messages[0].content)
        assert "lighthouse" in record.output["tables"]
    assert sizes["big"] <= 1.5 * sizes["small"]  # 10x the tables, about the same prompt


async def test_column_filtering_shows_a_kept_tables_keys_and_the_columns_the_question_matched(big: SourceRegistry) -> None:
    llm = SqlWriter(lambda n: "SELECT name FROM glacier WHERE glacier_status = 'open'")
    question = "List the names of the glaciers whose status is open."
    whole = (await runtime(llm, big).run("text2sql", {"question": question, "db": "big", "candidates_n": 1})).output
    record = await runtime(llm, big).run("text2sql", {"question": question, "db": "big", "candidates_n": 1, "columns_per_table": 1})
    out = record.output
    assert record.status.value == "succeeded", record.error
    assert out["tables"] == whole["tables"] and len(out["schema_sql"]) < len(whole["schema_sql"])


    def columns(schema_sql: str) -> list[str]:
        block = schema_sql.split("CREATE TABLE glacier (", 1)[1].split(");", 1)[0]
        return [line.split()[0] for line in block.splitlines() if line.strip() and not line.strip().startswith("PRIMARY KEY")]

    shown, every = columns(out["schema_sql"]), columns(whole["schema_sql"])
    keys = {"id", *(c for c in every if c.endswith("_id"))}  # its primary key and its side of the join keys
    assert keys <= set(shown) and len(set(shown) - keys) <= 1 and set(shown) < set(every)
    assert any(n.startswith("linking: ") and "columns shown" in n for n in out["notes"])


async def test_linking_needs_no_model_when_retrieval_settles_it(big: SourceRegistry) -> None:
    # As `sloflow bench text2sql --link-report` runs the stage: no LLM client bound at all.
    from sloflow.workflows.builtin.text2sql import SqlState, link
    from sloflow.workflows.context import RunScope, StageContext

    ctx = StageContext(RunScope(tools=tools(big)), "link", None)
    out = await link(SqlState(question="How many lighthouses are there?", db="big", columns_per_table=2), ctx)
    assert "lighthouse" in out["tables"] and out["candidates_planned"] == 3  # no deadline: every candidate asked
    assert "CREATE TABLE lighthouse (" in out["schema_sql"]
