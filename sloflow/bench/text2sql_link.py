"""What linking costs as the schema grows: `sloflow bench text2sql --link-report`.

The dev questions are asked of merged databases of about 10 tables (the first databases), about 40
(all of them) and 100+ (all, plus filler tables chained by foreign keys). The workflow's own `link`
stage runs with no model bound: linking that retrieval keeps within `prune_above_tables` needs
none, and a pruning call would see only the retrieved part (its prompt is counted here unsent).
Reported per size: link time (P50/P95, after the first question built the schema index and read
the stored values: that one-off cost is given apart), tokens of the candidate prompt the linked
schema makes against the whole schema's, and link recall (questions whose gold tables were all kept). With
`--columns-per-table N` the stage filters columns too, and the report adds the prompt tokens with
every column of the kept tables and the column recall both ways (questions whose gold query's
column names all appear in the shown schema; names only, so a name two tables share counts once).
"""

from __future__ import annotations

import asyncio
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sloflow.bench.progress import say
from sloflow.bench.spider_eval import DevSet, Question
from sloflow.bench.spider_merge import MERGED, add_filler_tables, merge_devset, table_names
from sloflow.bench.text2sql import gold_columns, gold_tables, percentile
from sloflow.planners.sql.prompts import SchemaTable, schema_ddl
from sloflow.retrieval.databases import DatabaseRegistry
from sloflow.retrieval.document_index import IndexRegistry
from sloflow.retrieval.sources import SourceRegistry
from sloflow.workflows.builtin.text2sql import SqlState, candidate_prompt_tokens, link, tools
from sloflow.workflows.context import RunScope, StageContext

SMALL_TABLES, LARGE_TABLES = 10, 100


def shows_columns(schema_sql: str, columns: set[str]) -> bool:
    """Whether every name of `columns` is a column (or join key) the schema text shows; its value comments do not count."""
    shown = re.sub(r"--[^\n]*", "", schema_sql).lower()
    return all(re.search(r"(?<![\w])" + re.escape(c) + r"(?![\w])", shown) for c in columns)


async def _link_all(sources: SourceRegistry, questions: list[Question], keys: list[str], columns_per_table: int | None) -> dict[str, Any]:
    db = sources.databases.get(MERGED)
    by_name = {t.name: SchemaTable.from_table(t) for t in db.tables}
    whole = schema_ddl(list(by_name.values()), keys)
    ctx = StageContext(RunScope(tools=tools(sources)), "link", None)
    first_s, seconds, prompts, full, recalled, pruned = 0.0, [], [], [], 0, 0
    every_column, columns_recalled, unfiltered_recalled = [], 0, 0
    for n, q in enumerate(questions):
        state = SqlState(question=q.question, db=MERGED, join_keys=keys, columns_per_table=columns_per_table)
        started = time.perf_counter()
        out = await link(state, ctx)
        took = time.perf_counter() - started
        if n == 0:
            first_s = took  # builds the schema index and reads the stored values
        else:
            seconds.append(took)
        prompts.append(candidate_prompt_tokens(out["schema_sql"], q.question, out["values"]))
        full.append(candidate_prompt_tokens(whole, q.question, out["values"]))
        recalled += gold_tables(q.gold_sql) <= {t.lower() for t in out["tables"]}
        unfiltered = schema_ddl([by_name[t] for t in out["tables"]], keys)
        every_column.append(candidate_prompt_tokens(unfiltered, q.question, out["values"]))
        needed = gold_columns(q.gold_sql)
        columns_recalled += shows_columns(out["schema_sql"], needed)
        unfiltered_recalled += shows_columns(unfiltered, needed)
        pruned += any("table choice failed" in note for note in out["notes"])
    count = len(questions) or 1
    return {
        "tables": len(db.tables),
        "questions": len(questions),
        "first_link_s": round(first_s, 2),
        "link_ms_p50": round(1000 * percentile(seconds, 50), 1),
        "link_ms_p95": round(1000 * percentile(seconds, 95), 1),
        "prompt_tokens_mean": round(statistics.fmean(prompts), 1) if prompts else 0.0,
        "full_schema_prompt_tokens": round(statistics.fmean(full), 1) if full else 0.0,
        "link_recall": round(recalled / count, 4),
        "columns_per_table": columns_per_table,
        "prompt_tokens_every_column_mean": round(statistics.fmean(every_column), 1) if every_column else 0.0,
        "column_recall": round(columns_recalled / count, 4),
        "column_recall_every_column": round(unfiltered_recalled / count, 4),
        # Questions whose retrieved part stayed over prune_above_tables: a run would make one
        # pruning call over it; here the retrieved tables stood.
        "would_prune": pruned,
    }


def link_report(dev: DevSet, questions: list[Question], columns_per_table: int | None = None) -> dict[str, Any]:
    """Link figures at about 10, 40 and 100+ tables over `questions` (those on the merged databases)."""
    by_size: dict[str, Any] = {}
    db_ids = sorted({q.db_id for q in dev.questions})
    small: list[str] = []
    for db in db_ids:  # the first databases, in name order, until they hold 10 tables
        if sum(len(table_names(dev.db_path(d))) for d in small) >= SMALL_TABLES:
            break
        small.append(db)
    with tempfile.TemporaryDirectory(prefix="sloflow-link-") as home:
        for label, chosen, filler in (("small", small, False), ("all", db_ids, False), ("large", db_ids, True)):
            root = Path(home) / label
            merged = merge_devset(dev, root, chosen)
            if filler:
                add_filler_tables(merged.dev.db_path(MERGED), max(0, LARGE_TABLES + 6 - merged.tables))
            asked = [q for q in merged.dev.questions if q.id in {x.id for x in questions}]
            sources = SourceRegistry(IndexRegistry(root / "indexes"), DatabaseRegistry(root / "databases.json"))
            sources.databases.add(MERGED, f"sqlite:///{merged.dev.db_path(MERGED)}")
            figures = asyncio.run(_link_all(sources, asked, merged.dev.foreign_keys[MERGED], columns_per_table))
            say(f"link at {figures['tables']} tables: {figures}")
            by_size[str(figures["tables"])] = figures
    return {"link_report": by_size}
