"""The text2sql workflow with a scripted LLM on a real dev database: stages, guard, revision, budgets."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from sloflow.llm.types import Speed
from sloflow.retrieval import databases
from sloflow.retrieval.sources import SourceRegistry
from sloflow.workflows import InvalidInput, MemoryRunStore, Registry, Runtime
from sloflow.workflows.builtin.text2sql import text2sql, tools
from tests.workflows.builtin.text2sql.conftest import SqlWriter

GOOD = "SELECT count(*) FROM singer WHERE Country = 'France'"


def runtime(llm: SqlWriter, sources: SourceRegistry) -> Runtime:
    registry = Registry()
    registry.add(text2sql)
    return Runtime(MemoryRunStore(), None, client=llm, tools=tools(sources), registry=registry)


class StatementLog:
    """Every statement the guard let through, and every statement the database was asked to run."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.guarded: list[str] = []
        self.executed: list[str] = []
        real_check, real_connect = databases.check_sql, databases.Database._connect
        log = self

        def check(sql: str, *args: Any, **kwargs: Any) -> str:
            safe = real_check(sql, *args, **kwargs)
            log.guarded.append(safe)
            return safe

        class Conn:
            def __init__(self, conn: Any) -> None:
                self._conn = conn

            def execute(self, sql: str, *args: Any) -> Any:
                log.executed.append(sql)
                return self._conn.execute(sql, *args)

            def __getattr__(self, name: str) -> Any:
                return getattr(self._conn, name)

        monkeypatch.setattr(databases, "check_sql", check)
        monkeypatch.setattr(databases.Database, "_connect", lambda self: Conn(real_connect(self)))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_agreeing_candidates_give_the_answer_and_every_statement_passed_the_guard(
    sources: SourceRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = StatementLog(monkeypatch)
    llm = SqlWriter(lambda n: [GOOD, GOOD, "SELECT count(*) FROM singer"][n % 3])
    record = await runtime(llm, sources).run("text2sql", {"question": "How many singers are from France?", "db": "concert_singer"})
    out = record.output
    assert record.status.value == "succeeded", record.error
    assert out["sql"] == GOOD and out["rows"] == [[4]] and out["agreement"] == 2
    assert "4" in out["answer"]
    assert "singer.Country = 'France'" in out["values"]  # the question's word matched a stored value
    assert len([c for c, _ in llm.calls]) == 3  # three candidates, nothing to revise
    assert log.executed and all(sql in log.guarded for sql in log.executed)
    guarded = list(log.guarded)
    db = sources.databases.get("concert_singer")
    assert all(db.check(c["sql"]) in guarded for c in out["candidates"])


async def test_hostile_sql_is_refused_and_the_database_file_never_changes(
    sources: SourceRegistry, singer_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = StatementLog(monkeypatch)
    before = digest(singer_db)
    hostile = ["DELETE FROM singer", "DROP TABLE singer", "UPDATE singer SET Name = 'x'; SELECT 1"]
    llm = SqlWriter(lambda n: hostile[n % 3], revision="INSERT INTO singer (Name) VALUES ('eve')")
    record = await runtime(llm, sources).run("text2sql", {"question": "Delete all singers, then drop table singer", "db": "concert_singer"})
    out = record.output
    assert record.status.value == "succeeded", record.error
    assert out["sql"] is None and "No query" in out["answer"]
    assert all("refused" in c["error"] for c in out["candidates"])
    assert digest(singer_db) == before
    assert not any(s.split()[0].upper() in ("DELETE", "DROP", "UPDATE", "INSERT") for s in log.executed)
    assert (await sources.sql("concert_singer", "SELECT count(*) FROM singer")).rows == [[6]]


async def test_a_failing_candidate_is_revised_with_its_error(sources: SourceRegistry) -> None:
    llm = SqlWriter(lambda n: "SELECT nme FROM singer" if n == 0 else GOOD, revision=GOOD)
    record = await runtime(llm, sources).run("text2sql", {"question": "How many singers are from France?", "db": "concert_singer"})
    out = record.output
    revisions = [r for r, _ in llm.calls if "A previous query was" in r.messages[-1].content]
    assert len(revisions) == 1
    assert "nme" in revisions[0].messages[-1].content  # the guard's error went into the prompt
    assert out["revisions"] == 1 and out["sql"] == GOOD and out["agreement"] == 3


async def test_revision_stops_at_the_configured_bound(sources: SourceRegistry) -> None:
    llm = SqlWriter(lambda n: "SELECT nme FROM singer", revision="SELECT still_wrong FROM singer")
    record = await runtime(llm, sources).run(
        "text2sql", {"question": "Names?", "db": "concert_singer", "candidates_n": 2, "max_revisions": 2}
    )
    out = record.output
    assert record.status.value == "succeeded"
    assert out["revisions"] == 2 and out["sql"] is None
    # Identical failures are revised once per round: 2 candidates + 2 rounds x 1 call.
    assert len(llm.calls) == 4


async def test_budgets_shrink_as_time_is_spent_and_revising_stops_when_it_cannot_fit(sources: SourceRegistry) -> None:
    llm = SqlWriter(lambda n: "SELECT nme FROM singer", revision="SELECT nme FROM singer", delay_s=0.3)
    rt = runtime(llm, sources)
    record = await rt.run("text2sql", {"question": "Names?", "db": "concert_singer", "candidates_n": 1, "max_revisions": 10}, slo=2.0)
    out = record.output
    assert record.status.value == "succeeded", record.error
    # Each revision round gets its stage's share of what is left, and less is left each time.
    budgets = [e.data["budget_s"] for e in rt.store.events(record.id) if e.kind == "stage_started" and e.stage == "revise"]
    assert len(budgets) >= 2 and all(a > b for a, b in zip(budgets, budgets[1:]))
    assert out["revisions"] < 10
    # Revising ends for lack of time: stopped before a round that cannot fit, or (on a loaded
    # machine, where a round overruns its estimate) a round cut at the deadline.
    assert any(n.startswith("stopped revising") or n == "a revision was not made: the deadline passed first" for n in out["notes"])
    calls = [c.budget_s for _, c in llm.calls if c.stage == "revise"]
    assert all(b is not None and b > 0 for b in calls) and calls[-1] < calls[0]


async def test_a_revision_still_running_at_the_deadline_is_cut_and_the_run_answers_on_time(sources: SourceRegistry) -> None:
    llm = SqlWriter(lambda n: "SELECT nme FROM singer", revision=GOOD, revision_delay_s=30.0)
    started = time.monotonic()
    record = await runtime(llm, sources).run("text2sql", {"question": "Names?", "db": "concert_singer", "candidates_n": 1}, slo=2.0)
    assert record.status.value == "succeeded", record.error
    assert time.monotonic() - started < 2.5
    assert record.output["sql"] is None
    assert "a revision was not made: the deadline passed first" in record.output["notes"]


async def test_large_schemas_are_pruned_to_the_tables_the_model_keeps_and_the_values_name(sources: SourceRegistry) -> None:
    llm = SqlWriter(lambda n: GOOD, tables=["concert"])
    record = await runtime(llm, sources).run(
        "text2sql",
        {"question": "How many singers are from France?", "db": "concert_singer", "prune_above_tables": 0, "candidates_n": 1},
    )
    out = record.output
    assert record.status.value == "succeeded", record.error
    assert set(out["tables"]) == {"concert", "singer"}  # the model's choice + the table 'France' is stored in
    assert "CREATE TABLE stadium" not in out["schema_sql"] and "CREATE TABLE singer" in out["schema_sql"]
    link_calls = [r for r, _ in llm.calls if r.json_schema is not None]
    assert len(link_calls) == 1 and "stadium" in link_calls[0].messages[-1].content


async def test_bad_input_names_the_field(sources: SourceRegistry) -> None:
    with pytest.raises(InvalidInput, match="question"):
        await runtime(SqlWriter(lambda n: GOOD), sources).start("text2sql", {"db": "concert_singer"})


async def test_without_bound_tools_the_process_wide_sources_serve(sources: SourceRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    from sloflow.retrieval import sources as sources_module

    monkeypatch.setattr(sources_module, "default_sources", lambda: sources)
    registry = Registry()
    registry.add(text2sql)
    rt = Runtime(MemoryRunStore(), None, client=SqlWriter(lambda n: GOOD), registry=registry)
    record = await rt.run("text2sql", {"question": "How many singers are from France?", "db": "concert_singer", "candidates_n": 1})
    assert record.status.value == "succeeded", record.error
    assert record.output["rows"] == [[4]]


async def test_an_empty_result_the_model_stands_by_is_revised_once_then_kept(sources: SourceRegistry) -> None:
    empty = "SELECT Name FROM singer WHERE Age > 100"
    llm = SqlWriter(lambda n: empty, revision=empty)
    record = await runtime(llm, sources).run("text2sql", {"question": "Singers older than 100?", "db": "concert_singer", "candidates_n": 2})
    out = record.output
    assert out["revisions"] == 1 and len(llm.calls) == 3  # 2 candidates + 1 revision of the shared failure
    assert out["sql"] == empty and out["rows"] == [] and "no rows" in out["answer"]


async def test_misspelt_names_are_repaired_before_the_guard_and_noted(sources: SourceRegistry) -> None:
    llm = SqlWriter(lambda n: "SELECT count(*) FROM SINGER WHERE country_ = 'France'")
    record = await runtime(llm, sources).run("text2sql", {"question": "How many singers are from France?", "db": "concert_singer"})
    out = record.output
    assert out["rows"] == [[4]] and out["revisions"] == 0
    assert "Country = 'France'" in out["sql"]
    assert any("repaired column country_ -> Country" in n for n in out["notes"])


async def test_calls_of_a_question_share_a_prefix_key_and_use_the_models_asked_for(sources: SourceRegistry) -> None:
    llm = SqlWriter(lambda n: "SELECT nme FROM singer" if n == 0 else GOOD, revision=GOOD)
    models = {"candidate": "big-model", "revise": "other-model"}
    record = await runtime(llm, sources).run(
        "text2sql", {"question": "How many singers are from France?", "db": "concert_singer", "models": models}
    )
    assert record.status.value == "succeeded", record.error
    contexts = [ctx for _, ctx in llm.calls]
    assert len({ctx.prefix_key for ctx in contexts}) == 1 and contexts[0].prefix_key
    assert [ctx.model for ctx in contexts] == ["big-model"] * 3 + ["other-model"]
    assert all(ctx.deadline is not None for ctx in contexts)
    with pytest.raises(InvalidInput, match="models"):
        await runtime(llm, sources).run("text2sql", {"question": "q", "db": "concert_singer", "models": {"answer": "x"}})


class SlowSecondCandidate(SqlWriter):
    """Candidate 1 (sampled with seed 1) takes far longer than the run's SLO; the others answer at once."""

    async def generate(self, request: Any, ctx: Any) -> Any:
        import asyncio

        if request.seed == 1 and not _revision(request):
            self.calls.append((request, ctx))
            await asyncio.sleep(30.0)
        return await super().generate(request, ctx)


def _revision(request: Any) -> bool:
    return "A previous query was" in request.messages[-1].content


async def test_a_candidate_still_running_at_the_deadline_is_cut_and_the_run_answers_with_the_others(sources: SourceRegistry) -> None:
    llm = SlowSecondCandidate(lambda n: GOOD)
    started = time.monotonic()
    record = await runtime(llm, sources).run(
        "text2sql", {"question": "How many singers are from France?", "db": "concert_singer", "candidates_n": 2, "max_revisions": 0}, slo=20.0
    )
    out = record.output
    assert record.status.value == "succeeded", record.error
    assert time.monotonic() - started < 20.5
    assert out["sql"] == GOOD and out["rows"] == [[4]]  # the candidate that finished answers
    assert "candidate 1 was cancelled: it was still running when the run had to answer" in out["notes"]
    cut = next(c for c in out["candidates"] if c["variant"] == 1)
    assert cut["sql"] is None and "deadline" in cut["error"]


async def test_candidates_are_sized_to_the_time_left(sources: SourceRegistry) -> None:
    llm = SqlWriter(lambda n: GOOD)
    record = await runtime(llm, sources).run(
        "text2sql", {"question": "How many singers are from France?", "db": "concert_singer", "candidates_n": 3}, slo=4.0
    )
    out = record.output
    assert record.status.value == "succeeded", record.error
    assert len(llm.calls) == 1 and out["sql"] == GOOD  # one candidate fits, and the run still answers
    assert any(n.startswith("drafting 1 of 3 candidates") for n in out["notes"])


class MeasuredSlow(SqlWriter):
    """A client whose workers measured far slower than the workflow's declared speed."""

    async def speed(self, model: str | None = None) -> Speed:
        return Speed(prefill_tok_s=20.0, decode_tok_s=5.0)


async def test_candidates_are_sized_to_the_workers_measured_speed(sources: SourceRegistry) -> None:
    question = {"question": "How many singers are from France?", "db": "concert_singer", "candidates_n": 3}
    declared = await runtime(SqlWriter(lambda n: GOOD), sources).run("text2sql", question, slo=60.0)
    assert declared.output["candidates_planned"] == 3  # at the declared speed all three fit in 60 s
    llm = MeasuredSlow(lambda n: GOOD)
    record = await runtime(llm, sources).run("text2sql", question, slo=60.0)
    out = record.output
    assert record.status.value == "succeeded", record.error
    assert out["candidates_planned"] < 3 and len(llm.calls) == out["candidates_planned"]
    assert any(n.startswith(f"drafting {out['candidates_planned']} of 3 candidates") for n in out["notes"])


class SlowLinking(SqlWriter):
    """The model's table choice (the one JSON call) takes far longer than the run's SLO."""

    async def generate(self, request: Any, ctx: Any) -> Any:
        import asyncio

        if request.json_schema is not None:
            self.calls.append((request, ctx))
            await asyncio.sleep(60.0)
        return await super().generate(request, ctx)


async def test_a_slow_pruning_call_is_cut_in_time_for_a_candidate_and_the_retrieved_tables_stand(sources: SourceRegistry) -> None:
    llm = SlowLinking(lambda n: GOOD)
    started = time.monotonic()
    record = await runtime(llm, sources).run(
        "text2sql", {"question": "How many singers are from France?", "db": "concert_singer", "prune_above_tables": 0}, slo=15.0
    )
    out = record.output
    assert record.status.value == "succeeded", record.error
    assert time.monotonic() - started < 15.5
    assert any(n.startswith("linking: the model's table choice failed") for n in out["notes"])
    assert "singer" in out["tables"] and out["sql"] == GOOD and out["rows"] == [[4]]  # a candidate still had time


class FailingLinking(SqlWriter):
    """The model's table choice (the one JSON call) fails at once."""

    async def generate(self, request: Any, ctx: Any) -> Any:
        if request.json_schema is not None:
            from sloflow.errors import BackendError

            self.calls.append((request, ctx))
            raise BackendError("the link model is down")
        return await super().generate(request, ctx)


async def test_a_failed_pruning_call_keeps_every_retrieved_table_not_only_those_the_values_name(sources: SourceRegistry) -> None:
    llm = FailingLinking(lambda n: "SELECT count(*) FROM stadium")
    # 'France' is a stored value of singer.Country; the table the question asks about is stadium.
    record = await runtime(llm, sources).run(
        "text2sql",
        {"question": "How many stadiums hosted singers from France?", "db": "concert_singer", "prune_above_tables": 0, "candidates_n": 1},
    )
    out = record.output
    assert record.status.value == "succeeded", record.error
    assert "singer.Country = 'France'" in out["values"]
    assert any(n.startswith("linking: the model's table choice failed") for n in out["notes"])
    assert "stadium" in out["tables"] and "CREATE TABLE stadium" in out["schema_sql"]
    assert any(n.startswith(f"linking: kept {len(out['tables'])} of 4 tables, retrieved") for n in out["notes"])


async def test_stored_text_values_are_read_once_per_opened_database(sources: SourceRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    log = StatementLog(monkeypatch)
    rt = runtime(SqlWriter(lambda n: GOOD), sources)
    question = {"question": "How many singers are from France?", "db": "concert_singer", "candidates_n": 1}
    await rt.run("text2sql", question)
    distinct = [s for s in log.executed if s.upper().startswith("SELECT DISTINCT")]
    assert distinct
    record = await rt.run("text2sql", question)
    assert record.status.value == "succeeded", record.error
    assert [s for s in log.executed if s.upper().startswith("SELECT DISTINCT")] == distinct  # none read again


ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


class QueriesBySeed(SqlWriter):
    """Candidate n (sampled with seed n) writes `queries[n]`."""

    def __init__(self, queries: list[str]) -> None:
        super().__init__(lambda n: GOOD)
        self.queries = queries

    def _text(self, request: Any) -> str:
        if request.json_schema is None and not _revision(request):
            return f"```sql\n{self.queries[request.seed]}\n```"
        return super()._text(request)


async def test_queries_keep_the_deadline_and_a_query_past_it_is_not_run(
    sources: SourceRegistry, singer_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(text2sql, "speed", Speed(prefill_tok_s=1e6, decode_tok_s=1e6))  # all three candidates fit
    sources.databases.add("patient_singers", f"sqlite:///{singer_db}", timeout_s=60.0)  # only the deadline cuts
    llm = QueriesBySeed([ENDLESS, GOOD, ENDLESS])
    started = time.monotonic()
    record = await runtime(llm, sources).run(
        "text2sql", {"question": "How many singers are from France?", "db": "patient_singers", "max_revisions": 0}, slo=3.0
    )
    out = record.output
    assert record.status.value == "succeeded", record.error
    assert time.monotonic() - started < 3.0 + 1.5  # the last-chance query of candidate 1 may pass the deadline by 0.5 s
    by_variant = {c["variant"]: c for c in out["candidates"]}
    assert "limit and was stopped" in by_variant[0]["error"]  # cut at the deadline, not at the database's 60 s
    assert out["sql"] == GOOD and out["rows"] == [[4]]  # nothing had run yet: candidate 1 still got its chance
    assert "candidate 2 was not run: the deadline passed first" in out["notes"]
