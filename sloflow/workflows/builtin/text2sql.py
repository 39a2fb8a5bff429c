"""The `text2sql` workflow: link the schema, draft SQL candidates in parallel, run them through the
guard, revise the failures with their error, pick the candidate most others agree with, answer.

    link -> candidate (fan-out) -> execute -> [revise -> execute]* -> select -> answer

Stages reach the data only through run tools: `retrieve("schema:DB", ...)`, `sql(DB, sql)` (the
guarded, read-only path) and `database(DB)` for the schema; see `tools()`. A runtime that binds
none (the CLI's) gets the process-wide sources' own.
"""

from __future__ import annotations

import asyncio
import math
import operator
import statistics
import time
from collections.abc import Mapping
from dataclasses import asdict
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from sloflow.errors import DeadlineExceeded, SloflowError
from sloflow.llm.types import GenerateRequest, Speed, approx_tokens
from sloflow.planners.sql.extract import extract_sql
from sloflow.planners.sql.linking import SHOWN_WHOLE_TABLES, linked_tables, match_values, shown_columns
from sloflow.planners.sql.repair import name_hints, repair_names
from sloflow.planners.sql.prompts import (
    SchemaTable,
    answer_sentence,
    candidate_messages,
    describe_values,
    link_json_schema,
    link_messages,
    revision_messages,
    schema_ddl,
)
from sloflow.planners.sql.select import Candidate, select_candidate
from sloflow.workflows.budget import Cost
from sloflow.workflows.dsl import Workflow
from sloflow.workflows.registry import register

SHOWN_ROWS = 50
_TAIL_S = 0.5  # select + answer, without an LLM call
_LAST_QUERY_S = 0.5  # what a query still gets when the run must answer and none has run yet
BRIDGE_MAX = 2  # retrieved tables are joined through at most this many others (Spider's link tables are one)


class SqlState(BaseModel):
    """Input (question, db, options) and what the stages fill in."""

    question: str = Field(min_length=1, max_length=2000)
    db: str = Field(min_length=1)
    evidence: str = ""
    join_keys: list[str] = Field(default_factory=list, description="extra join keys 'a.x = b.y' beyond the database's foreign keys")
    candidates_n: int = Field(3, ge=1, le=8)
    max_revisions: int = Field(3, ge=0, le=10)
    # Above this many tables the schema index retrieves `link_tables`, and the model prunes only
    # when those and their joins exceed it.
    prune_above_tables: int = Field(SHOWN_WHOLE_TABLES, ge=0)
    link_tables: int = Field(5, ge=1, le=50, description="tables retrieved from the schema index when it is not shown whole")
    columns_per_table: int | None = Field(
        None,
        ge=0,
        le=100,
        description="when the schema is searched, show of each kept table only its keys, the columns whose values the question names "
        "and this many of the columns the search matched (column filtering); unset: every column",
    )
    max_sql_tokens: int = Field(256, ge=16, le=2048)
    models: dict[Literal["link", "candidate", "revise"], str] = Field(
        default_factory=dict, description="a model per LLM stage, e.g. a small one for linking; unset: any worker"
    )

    schema_sql: str = ""
    tables: list[str] = Field(default_factory=list)
    candidates_planned: int = 0
    values: list[str] = Field(default_factory=list)
    drafts: Annotated[list[dict[str, Any]], operator.add] = Field(default_factory=list)
    candidates: list[dict[str, Any]] = Field(default_factory=list)
    revisions: int = 0
    can_revise: bool = True
    call_s: Annotated[list[float], operator.add] = Field(default_factory=list)
    notes: Annotated[list[str], operator.add] = Field(default_factory=list)

    sql: str | None = None
    columns: list[str] = Field(default_factory=list)
    rows: list[list[Any]] = Field(default_factory=list)
    truncated: bool = False
    agreement: int = 0
    answer: str = ""


text2sql = Workflow(
    "text2sql",
    state=SqlState,
    slo=60.0,
    description="question + registered database -> linked schema, SQL candidates, guarded execution, revision, selection, answer",
)


# --- tools ----------------------------------------------------------------------------------


def tools(sources: Any) -> dict[str, Any]:
    """The run tools this workflow uses, from a `SourceRegistry`."""
    return {"retrieve": sources.retrieve, "sql": sources.sql, "database": sources.databases.get}


@text2sql.admit
def _database_is_registered(s: SqlState, tools: Mapping[str, Any]) -> None:
    """A run on a database the tenant has not registered is refused at submission (404)."""
    database = tools.get("database")
    if database is not None:
        database(s.db)


def _tool(ctx: Any, name: str) -> Any:
    """A run tool, or the process-wide sources' own when the runtime bound none (e.g. the CLI)."""
    bound = ctx.tools.get(name)
    if bound is not None:
        return bound
    from sloflow.retrieval.sources import default_sources

    return tools(default_sources())[name]


async def _database(ctx: Any, name: str) -> Any:
    return await asyncio.to_thread(_tool(ctx, "database"), name)


def join_keys(db: Any, extra: list[str]) -> list[str]:
    """The database's foreign keys as 'a.x = b.y', then `extra` ones."""
    keys = [f"{t.name}.{fk.column} = {fk.ref_table}.{fk.ref_column}" for t in db.tables for fk in t.foreign_keys if fk.ref_column]
    return list(dict.fromkeys(keys + list(extra)))


# --- stages ---------------------------------------------------------------------------------


@text2sql.stage(cost=Cost(calls=1, prompt=350, output=20, seconds=0.3))
async def link(s: SqlState, ctx: Any) -> dict[str, Any]:
    """The tables the prompts show, and how many candidates the time left covers.

    A small schema is shown whole. A larger one is searched (the schema index: table and column
    entries, FAISS + BM25) for the question's tables; tables whose stored values the question
    names join them, and so do the tables on the join paths between them. Only when that is still
    more than `prune_above_tables` does the model choose among the retrieved tables, so linking
    costs the same at 40 tables as at 400. With `columns_per_table`, a searched schema's kept
    tables show only their keys, the columns the question's values name and the best columns the
    search matched (CHESS filters columns with a model call per column; this uses the search it
    already made, at no model cost).
    """
    db = await _database(ctx, s.db)
    names = [t.name for t in db.tables]
    by_name = {t.name: SchemaTable.from_table(t) for t in db.tables}
    joins = join_keys(db, s.join_keys)
    matches = match_values(s.question, await asyncio.to_thread(db.text_values))
    values = describe_values(matches)
    # The workers' measured speed when the client knows it: a static guess oversizes on slow machines.
    speed = await ctx.llm.speed(s.models.get("candidate")) or text2sql.speed
    notes = []
    hits: list[Any] = []
    if len(names) <= s.prune_above_tables:
        kept = names
        notes.append(f"linking: {len(names)} tables, shown whole")
    else:
        hits = await _tool(ctx, "retrieve")(f"schema:{s.db}", s.question, k=min(s.link_tables, len(names)))
        retrieved = [h.metadata.get("table") for h in hits if h.metadata.get("table") in by_name]
        kept = linked_tables(names, retrieved, matches, retrieved, joins, BRIDGE_MAX)
        how = "retrieved"
        if len(kept) > s.prune_above_tables:
            chosen = await _prune(s, ctx, [by_name[t] for t in kept], values, notes, speed)
            if chosen:  # else the retrieved tables stand, as the note of a failed choice says
                kept, how = linked_tables(names, chosen, matches, retrieved, joins, BRIDGE_MAX), "pruned by the model"
        notes.append(f"linking: kept {len(kept)} of {len(names)} tables, {how} ({', '.join(kept)})")
    shown = [by_name[t] for t in kept]
    if s.columns_per_table is not None and hits:
        shown = _filter_columns(shown, hits, joins, matches, s.columns_per_table)
        notes.append(f"linking: {sum(len(t.columns) for t in shown)} of {sum(len(by_name[t].columns) for t in kept)} columns shown")
    schema_sql = schema_ddl(shown, joins)
    planned, why = _candidates_that_fit(s, schema_sql, values, ctx.deadline, speed)
    if why:
        notes.append(why)
    ctx.emit("linked", tables=kept, values=values, candidates=planned)
    return {"schema_sql": schema_sql, "tables": kept, "values": values, "candidates_planned": planned, "notes": notes}


def _filter_columns(tables: list[SchemaTable], hits: list[Any], joins: list[str], matches: dict[str, Any], limit: int) -> list[SchemaTable]:
    """Each table with only the columns `shown_columns` keeps; the search's matched columns come with its table hits."""
    searched = {h.metadata.get("table"): [c for c in str(h.metadata.get("columns") or "").split(",") if c] for h in hits}
    return [
        t.only(shown_columns(t.name, [c for c, _ in t.columns], t.primary_key, joins, matches, list(dict.fromkeys(searched.get(t.name, []))), limit))
        for t in tables
    ]


async def _prune(s: SqlState, ctx: Any, offered: list[SchemaTable], values: list[str], notes: list[str], speed: Speed) -> list[str]:
    """The tables the model keeps of `offered`; [] when it fails or would leave no time for a candidate."""
    names = [t.name for t in offered]
    try:
        answer = await ctx.llm.json(
            link_messages(offered, s.question, values),
            schema=link_json_schema(names),
            max_tokens=64,
            model=s.models.get("link"),
            # Cut where going on would leave no time for one candidate: the retrieved tables stand.
            reserve_s=_candidate_call_s(s, schema_ddl(offered), values, speed) + _TAIL_S,
        )
    except SloflowError as exc:
        notes.append(f"linking: the model's table choice failed ({exc.message[:80]}); kept the retrieved tables")
        return []
    return [t for t in answer.get("tables", []) if t in names]


candidate_cost = Cost(calls=1, prompt=700, output=50)


@text2sql.stage(cost=candidate_cost, fan_out=lambda s: list(range(s.candidates_planned or s.candidates_n)))
async def candidate(s: SqlState, ctx: Any, variant: int) -> dict[str, Any]:
    """One SQL candidate; variant 0 is greedy, the others add a nudge and sample."""
    request = GenerateRequest(
        messages=candidate_messages(s.schema_sql, s.question, variant, s.evidence, s.values),
        max_tokens=s.max_sql_tokens,
        temperature=0.0 if variant == 0 else 0.7,
        seed=variant,  # sampled candidates are reproducible, and differ from each other
    )
    try:
        out = await ctx.llm.generate(request, model=s.models.get("candidate"), reserve_s=_TAIL_S)
    except DeadlineExceeded as exc:  # the others may have made it: let selection decide
        note = f"candidate {variant} was cancelled: it was still running when the run had to answer"
        return {"drafts": [asdict(Candidate(None, variant=variant, error=exc.message))], "notes": [note]}
    draft = Candidate(extract_sql(out.text), variant=variant)
    return {"drafts": [asdict(draft)], "call_s": [out.total_s]}


def candidate_prompt_tokens(schema_sql: str, question: str, values: list[str], evidence: str = "") -> int:
    """The prompt tokens of a candidate call, estimated as the dispatcher does before any tokenizer."""
    return sum(approx_tokens(m.content) for m in candidate_messages(schema_sql, question, 0, evidence, values))


def _candidate_call_s(s: SqlState, schema_sql: str, values: list[str], speed: Speed) -> float:
    """Expected service time of one candidate call at `speed`: its prompt's prefill and a typical query's decode."""
    prompt = candidate_prompt_tokens(schema_sql, s.question, values, s.evidence)
    return speed.call_s(prompt, candidate_cost.output)


def _candidates_that_fit(
    s: SqlState, schema_sql: str, values: list[str], deadline: float | None, speed: Speed
) -> tuple[int, str | None]:
    """How many candidates to draft: as many as asked, fewer when the time left covers fewer calls
    (one at least: the run must answer with something), and why when fewer."""
    if deadline is None:
        return s.candidates_n, None
    per_call = _candidate_call_s(s, schema_sql, values, speed)
    left = deadline - time.time() - _TAIL_S
    # Counted as if the calls ran one after another: the workers are shared with other runs.
    fit = max(1, min(s.candidates_n, int(left // max(per_call, 0.01))))
    if fit == s.candidates_n:
        return fit, None
    return fit, f"drafting {fit} of {s.candidates_n} candidates: {max(left, 0):.1f} s left, a candidate takes about {per_call:.1f} s"


def _expected_call_s(s: SqlState) -> float:
    """What a revision is expected to take on its worker: the median call of this run so far.

    Service time, not time waited: the candidates queue behind each other on a busy worker, and
    only the first of them pays the cold prefill of the shared prompt that revisions reuse.
    """
    return statistics.median(s.call_s) if s.call_s else revise_cost.expected_s(text2sql.speed)


def _revisions_that_fit(s: SqlState, deadline: float | None) -> int | None:
    """How many revision calls the time left covers, keeping room to answer; None without a deadline."""
    if deadline is None:
        return None
    return int((deadline - time.time() - _TAIL_S) // max(_expected_call_s(s), 0.01))


async def _names_and_joins(ctx: Any, s: SqlState) -> tuple[dict[str, list[str]], list[str]]:
    """The database's table -> column names, and its join keys: what name repair and hints need."""
    db = await _database(ctx, s.db)
    return {t.name: [c.name for c in t.columns] for t in db.tables}, join_keys(db, s.join_keys)


def _run_error(c: Candidate) -> str | None:
    if c.sql is None:
        return "the answer held no SQL query"
    return None


def _query_time_s(deadline: float | None, anything_ran: bool) -> float | None:
    """How long one query may run inside the run's deadline (the database's own limit may be
    shorter); None when it must not run.

    Past the deadline a query still gets `_LAST_QUERY_S` when no candidate has run yet, so the run
    answers with a result rather than none.
    """
    if deadline is None:
        return math.inf
    left = deadline - time.time() - _TAIL_S
    if left > _LAST_QUERY_S:
        return left
    return None if anything_ran else _LAST_QUERY_S


@text2sql.stage(cost=Cost(seconds=0.2))
async def execute(s: SqlState, ctx: Any) -> dict[str, Any]:
    """Run every candidate not yet run through the guard, on a read-only connection.

    Names a small model misspelt unambiguously (case, underscores, a column taken from the wrong
    table of the query, a join condition on columns the tables lack when only one join key links
    them) are repaired first; the repaired query meets the guard like any other.
    """
    cands = [Candidate(**c) for c in (s.candidates or sorted(s.drafts, key=lambda d: d["variant"]))]
    schema, joins = await _names_and_joins(ctx, s)
    notes = []
    for c in cands:
        if c.rows is not None or c.error is not None:
            continue
        if (err := _run_error(c)) is not None:
            c.error = err
            continue
        c.sql, fixes = repair_names(c.sql, schema, joins)
        if fixes:
            notes.append(f"candidate {c.variant}: repaired {'; '.join(fixes)}")
        limit_s = _query_time_s(ctx.deadline, anything_ran=any(x.ran for x in cands))
        if limit_s is None:
            c.error = "not run: the run had to answer"
            notes.append(f"candidate {c.variant} was not run: the deadline passed first")
            continue
        try:
            result = await _tool(ctx, "sql")(s.db, c.sql, limit_s)
        except SloflowError as exc:
            c.error = exc.message
            continue
        c.rows, c.columns, c.truncated = result.to_dict()["rows"], list(result.columns), result.truncated
    update: dict[str, Any] = {"candidates": [asdict(c) for c in cands]}
    failing = [c for c in cands if c.needs_revision]
    if failing and s.revisions < s.max_revisions and _revisions_that_fit(s, ctx.deadline) == 0:
        left = ctx.deadline - time.time()
        update["can_revise"] = False
        notes.append(
            f"stopped revising: {max(left, 0):.1f} s left, a revision takes about {_expected_call_s(s) + _TAIL_S:.1f} s; "
            "answering with the best candidate so far"
        )
    if notes:
        update["notes"] = notes
    ctx.emit("executed", candidates=len(cands), ran=sum(c.ran for c in cands), errors=sum(not c.ran for c in cands), failing=len(failing))
    return update


def _wants_revision(s: SqlState) -> bool:
    return s.can_revise and s.revisions < s.max_revisions and any(Candidate(**c).needs_revision for c in s.candidates)


revise_cost = Cost(calls=1, prompt=780, output=50)


@text2sql.stage(cost=revise_cost)
async def revise(s: SqlState, ctx: Any) -> dict[str, Any]:
    """Revise each failing candidate with its error (identical failures once), in parallel."""
    cands = [Candidate(**c) for c in s.candidates]
    schema, joins = await _names_and_joins(ctx, s)
    failing: dict[tuple[str | None, str], list[Candidate]] = {}
    for c in cands:
        if c.needs_revision:
            why = c.error or "it ran but returned no rows; check the conditions against the stored values"
            hints = name_hints(c.sql, schema, joins)
            if hints:
                why += "\nNote: " + "; ".join(hints) + "."
            failing.setdefault((c.sql, why), []).append(c)

    # As many revisions as the time left covers, failures that did not run first.
    chosen = sorted(failing.items(), key=lambda kv: (kv[1][0].ran, kv[1][0].variant))
    room = _revisions_that_fit(s, ctx.deadline)
    if room is not None:
        chosen = chosen[: max(room, 1)]

    async def one(key: tuple[str | None, str], group: list[Candidate]) -> tuple[list[Candidate], str | None, float]:
        failed_sql, why = key
        request = GenerateRequest(
            messages=revision_messages(s.schema_sql, s.question, failed_sql or "(none)", why, s.evidence, s.values),
            max_tokens=s.max_sql_tokens,
            temperature=0.0,
        )
        # A revision still running when the run must answer is cancelled (its worker freed):
        # answering on time with the best candidate beats a better query that arrives late.
        try:
            out = await ctx.llm.generate(request, model=s.models.get("revise"), reserve_s=_TAIL_S)
        except DeadlineExceeded:
            return group, None, 0.0
        return group, out.text, out.total_s

    done = await asyncio.gather(*(one(k, g) for k, g in chosen))
    took, notes = [], []
    for group, text, seconds in done:
        if text is None:
            notes.append("a revision was not made: the deadline passed first")
            continue
        took.append(seconds)
        new_sql = extract_sql(text)
        for c in group:
            c.revisions += 1
            if c.ran and new_sql is not None and _same(new_sql, c.sql):
                c.settled = True  # it ran and returned nothing, and the model stands by it
                continue
            c.sql, c.rows, c.columns, c.error = new_sql, None, [], None
    update: dict[str, Any] = {"candidates": [asdict(c) for c in cands], "revisions": s.revisions + 1, "call_s": took}
    if notes:
        update["notes"], update["can_revise"] = notes, False
    return update


def _same(a: str, b: str | None) -> bool:
    return b is not None and " ".join(a.lower().split()) == " ".join(b.lower().split())


@text2sql.stage(cost=Cost(seconds=0.05))
async def select(s: SqlState, ctx: Any) -> dict[str, Any]:
    """The candidate in the largest group of agreeing results (ties: the cheapest query)."""
    cands = [Candidate(**c) for c in s.candidates]
    best, agreement = select_candidate(cands)
    if best is None:
        errors = "; ".join(dict.fromkeys(c.error or "" for c in cands))[:500]
        return {"sql": None, "agreement": 0, "notes": [f"no candidate ran: {errors}"]}
    return {
        "sql": best.sql,
        "columns": best.columns,
        "rows": best.rows or [],
        "truncated": best.truncated,
        "agreement": agreement,
    }


@text2sql.stage(cost=Cost(seconds=0.05))
async def answer(s: SqlState, ctx: Any) -> dict[str, Any]:
    """The final SQL, its rows (capped) and a one-sentence answer."""
    if s.sql is None:
        return {"answer": "No query could be written that runs on this database; see the notes."}
    rows = s.rows[:SHOWN_ROWS]
    truncated = s.truncated or len(s.rows) > SHOWN_ROWS
    return {"rows": rows, "truncated": truncated, "answer": answer_sentence(s.columns, s.rows, s.truncated)}


text2sql.then(link, candidate, execute, select, answer)
text2sql.then(revise, execute)
text2sql.loop(execute, back_to=revise, while_=_wants_revision, max_times=10, expected=1)
register(text2sql)
