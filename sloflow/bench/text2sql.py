"""Execution accuracy of the `text2sql` workflow and of a single-call baseline, on the same questions.

Usage: sloflow bench text2sql --data DIR [--limit N] [--model NAME] [--seed S] [--only baseline|workflow]
                              [--merge] [--predictions FILE] [--link-report]
Reads a Spider-like folder (see spider_eval.py). The baseline is one prompt and one SQL per
question over the whole schema: no linking, no revision, no selection; a prompt that does not fit
the model's context is counted wrong and reported. Both see the join keys of `tables.json` (the
rebuilt SQLite files lost their foreign keys). `--merge` asks every question of one database built
from all of them (spider_merge.py); `--link-report` measures linking alone at growing schema
sizes, without a model (text2sql_link.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

from sloflow.bench.progress import say
from sloflow.bench.spider_eval import DevSet, Question, has_order_by, load_devset, results_match, run_readonly, sample_questions
from sloflow.bench.spider_merge import merge_devset
from sloflow.config import get_settings
from sloflow.errors import SloflowError
from sloflow.llm.client import DirectClient
from sloflow.llm.types import GenerateRequest, Speed
from sloflow.planners.sql.extract import extract_sql
from sloflow.planners.sql.prompts import SchemaTable, candidate_messages, schema_ddl
from sloflow.retrieval.databases import Database

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "text2sql" / "spider19-dev"
MAX_ROWS = 100_000  # so that no result is cut before it is compared


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; 0 for no values."""
    if not values:
        return 0.0
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def wall_seconds(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of intervals (the parallel instances of a fan-out count once)."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


class Databases:
    """The dev set's databases, opened once each, with their schema text."""

    def __init__(self, dev: DevSet) -> None:
        self.dev = dev
        self._open: dict[str, Database] = {}

    def get(self, db_id: str) -> Database:
        if db_id not in self._open:
            self._open[db_id] = Database(db_id, f"sqlite:///{self.dev.db_path(db_id)}", timeout_s=10.0, max_rows=MAX_ROWS)
        return self._open[db_id]

    def schema(self, db_id: str) -> str:
        tables = [SchemaTable.from_table(t) for t in self.get(db_id).tables]
        return schema_ddl(tables, self.dev.foreign_keys.get(db_id, []))


def gold_rows(dev: DevSet, q: Question) -> list[tuple] | None:
    """Rows of the gold query, or None when it cannot run here (such questions are skipped)."""
    try:
        return run_readonly(dev.db_path(q.db_id), q.gold_sql, timeout_s=30.0, max_rows=MAX_ROWS)
    except SloflowError:
        return None


def judge(db: Database, sql: str | None, gold: list[tuple], ordered: bool) -> tuple[bool, str | None]:
    """(correct, why it failed) for predicted SQL run through the guard on a read-only connection."""
    if not sql:
        return False, "no SQL in the answer"
    try:
        result = db.run(sql)
    except SloflowError as exc:
        return False, exc.message
    return results_match(gold, result.rows, ordered), None


def _gold_nodes(sql: str, kind: type[exp.Expression]) -> list[Any]:
    """The `kind` nodes of a gold query; none when sqlglot cannot parse it."""
    try:
        return list(sqlglot.parse_one(sql, read="sqlite").find_all(kind))
    except sqlglot.errors.ParseError:
        return []


def gold_tables(sql: str) -> set[str]:
    """Lower-case names of the tables a gold query reads (what linking must keep)."""
    return {t.name.lower() for t in _gold_nodes(sql, exp.Table)}


def gold_columns(sql: str) -> set[str]:
    """Lower-case names of the columns a gold query names (`*` aside).

    A double-quoted word is left out: Spider's gold queries write text that way (`Country = "USA"`),
    which SQLite reads as a string when no column has that name.
    """
    return {
        c.name.lower() for c in _gold_nodes(sql, exp.Column) if c.name and c.name != "*" and not (isinstance(c.this, exp.Identifier) and c.this.quoted)
    }


def _record(save: Path | None, row: dict[str, Any]) -> None:
    if save is not None:
        with save.open("a") as f:
            f.write(json.dumps(row, default=str) + "\n")


async def run_baseline(
    backend: Any, dbs: Databases, questions: list[Question], golds: dict[str, list[tuple]], save: Path | None = None
) -> dict:
    """One greedy call per question over the whole schema."""
    correct, failed, over, latencies, tokens = 0, 0, 0, [], []
    for n, q in enumerate(questions, 1):
        started = time.perf_counter()
        messages = candidate_messages(dbs.schema(q.db_id), q.question, variant=0)
        request = GenerateRequest(messages=messages, max_tokens=256, temperature=0.0)
        prompt = len(backend.prompt_tokens(request))
        if prompt + request.max_tokens > backend.context_tokens:
            over += 1
            failed += 1
            _record(save, {"side": "baseline", "id": q.id, "question": q.question, "ok": False, "why": "over the context"})
            say(f"baseline {n}/{len(questions)} {q.db_id}: BAD the full schema ({prompt} tokens) does not fit the {backend.context_tokens}-token context")
            continue
        out = await backend.generate(request)
        sql = extract_sql(out.text)
        ok, why = judge(dbs.get(q.db_id), sql, golds[q.id], has_order_by(q.gold_sql))
        latencies.append(time.perf_counter() - started)
        tokens.append(out.prompt_tokens + out.completion_tokens)
        correct += ok
        failed += why is not None
        _record(save, {"side": "baseline", "id": q.id, "question": q.question, "gold": q.gold_sql, "sql": sql, "ok": ok, "why": why})
        say(f"baseline {n}/{len(questions)} {q.db_id}: {'ok ' if ok else 'BAD'} acc {correct / n:.3f} "
            f"{latencies[-1]:.1f}s {out.prompt_tokens}+{out.completion_tokens} tok{'  ' + why[:80] if why else ''}")  # fmt: skip
    count = len(questions) or 1
    return {
        "baseline_execution_accuracy": round(correct / count, 4),
        "baseline_failed_share": round(failed / count, 4),
        "baseline_p50_s": round(percentile(latencies, 50), 2),
        "baseline_p95_s": round(percentile(latencies, 95), 2),
        "baseline_tokens_per_question": round(statistics.fmean(tokens), 1) if tokens else 0,
        # Questions whose full-schema prompt did not fit the context: counted wrong, never sent.
        "baseline_over_context": over,
    }


class CountingClient(DirectClient):
    """A direct client over one backend that counts calls and tokens per run."""

    def __init__(self, backend: Any, measured: Speed | None = None) -> None:
        super().__init__(backend, measured)
        self.calls: dict[str, int] = {}
        self.tokens: dict[str, int] = {}
        self.prompt_tokens: dict[str, int] = {}

    async def generate(self, request: GenerateRequest, ctx: Any) -> Any:
        out = await super().generate(request, ctx)
        self.calls[ctx.run_id] = self.calls.get(ctx.run_id, 0) + 1
        self.tokens[ctx.run_id] = self.tokens.get(ctx.run_id, 0) + out.prompt_tokens + out.completion_tokens
        self.prompt_tokens[ctx.run_id] = self.prompt_tokens.get(ctx.run_id, 0) + out.prompt_tokens
        return out


async def run_workflow(
    backend: Any,
    dbs: Databases,
    questions: list[Question],
    golds: dict[str, list[tuple]],
    home: Path,
    slo: float | None,
    save: Path | None = None,
    predictions: Path | None = None,
    speed: Speed | None = None,
    columns_per_table: int | None = None,
) -> dict:
    """The `text2sql` workflow per question, through the runtime, under its SLO; candidates are
    sized to `speed` (the backend's measured one), else to the workflow's declared one."""
    from sloflow.planners.sql.linking import SHOWN_WHOLE_TABLES
    from sloflow.retrieval.databases import DatabaseRegistry
    from sloflow.retrieval.document_index import IndexRegistry
    from sloflow.retrieval.sources import SourceRegistry
    from sloflow.workflows import MemoryRunStore, Registry, Runtime
    from sloflow.workflows.builtin.text2sql import text2sql, tools

    sources = SourceRegistry(IndexRegistry(home / "indexes"), DatabaseRegistry(home / "databases.json"))
    warm_started = time.perf_counter()
    for db_id in sorted({q.db_id for q in questions}):
        sources.databases.add(db_id, f"sqlite:///{dbs.dev.db_path(db_id)}", timeout_s=10.0, max_rows=1000, replace=True)
        # As the API does at registration: the first question does not build what linking reads.
        sources.warm(db_id, index_above_tables=SHOWN_WHOLE_TABLES)
    warm_s = time.perf_counter() - warm_started
    registry = Registry()
    registry.add(text2sql)
    client = CountingClient(backend, speed)
    runtime = Runtime(MemoryRunStore(), None, client=client, tools=tools(sources), registry=registry)
    slo = text2sql.slo if slo is None else slo
    correct, met, n_cands, n_errors, failed_runs = 0, 0, 0, 0, 0
    latencies: list[float] = []
    stage_s: dict[str, list[float]] = {}
    revised, stopped, linked = 0, 0, 0
    for n, q in enumerate(questions, 1):
        started = time.perf_counter()
        record = await runtime.run(
            "text2sql",
            {"question": q.question, "db": q.db_id, "join_keys": dbs.dev.foreign_keys.get(q.db_id, []), "columns_per_table": columns_per_table},
            slo=slo,
        )
        latencies.append(time.perf_counter() - started)
        out = record.output or {}
        ok, why = judge(dbs.get(q.db_id), out.get("sql"), golds[q.id], has_order_by(q.gold_sql)) if out else (False, "run failed")
        correct += ok
        linked += gold_tables(q.gold_sql) <= {t.lower() for t in out.get("tables", [])}
        _record(predictions, {"id": q.id, "db": q.db_id, "sql": out.get("sql")})
        met += bool(record.deadline_met)
        failed_runs += record.status.value != "succeeded"
        revised += bool(out.get("revisions"))
        stopped += any("stopped revising" in note for note in out.get("notes", []))
        spans: dict[str, list[tuple[float, float]]] = {}
        first_execute = True
        for event in runtime.store.events(record.id):
            if event.kind == "stage_finished" and event.stage:
                t0 = event.data.get("started_at", 0.0)
                spans.setdefault(event.stage, []).append((t0, t0 + event.data.get("duration_s", 0.0)))
            if event.kind == "progress" and event.data.get("message") == "executed" and first_execute:
                first_execute = False
                n_cands += event.data.get("candidates", 0)
                n_errors += event.data.get("errors", 0)
        for stage, intervals in spans.items():
            stage_s.setdefault(stage, []).append(wall_seconds(intervals))
        _record(save, {
            "side": "workflow", "id": q.id, "question": q.question, "gold": q.gold_sql, "ok": ok, "why": why,
            "seconds": latencies[-1], "error": record.error,
            **{k: out.get(k) for k in ("sql", "tables", "values", "candidates", "revisions", "notes", "agreement")},
        })  # fmt: skip
        say(f"workflow {n}/{len(questions)} {q.db_id}: {'ok ' if ok else 'BAD'} acc {correct / n:.3f} "
            f"{latencies[-1]:.1f}s calls {client.calls.get(record.id, 0)} rev {out.get('revisions', 0)}"
            f"{'  ' + why[:80] if why else ''}{'  ' + str(record.error)[:120] if record.error else ''}")  # fmt: skip
    count = len(questions) or 1
    runs = runtime.store.runs(limit=100_000)
    calls = [client.calls.get(r.id, 0) for r in runs]
    tokens = [client.tokens.get(r.id, 0) for r in runs]
    prompts = [client.prompt_tokens.get(r.id, 0) for r in runs]
    return {
        "execution_accuracy": round(correct / count, 4),
        "refused_or_failed_share": round(n_errors / n_cands, 4) if n_cands else 0.0,
        "llm_calls_per_question": round(statistics.fmean(calls), 2) if calls else 0.0,
        "tokens_per_question": round(statistics.fmean(tokens), 1) if tokens else 0.0,
        "prompt_tokens_per_question": round(statistics.fmean(prompts), 1) if prompts else 0.0,
        "link_recall": round(linked / count, 4),  # questions whose gold tables were all linked
        "measured_prefill_tok_s": round(speed.prefill_tok_s, 1) if speed else None,  # what candidates were sized to
        "measured_decode_tok_s": round(speed.decode_tok_s, 1) if speed else None,
        "prepare_s": round(warm_s, 2),  # stored values and schema indexes read at registration, before the first question
        "p50_s": round(percentile(latencies, 50), 2),
        "p95_s": round(percentile(latencies, 95), 2),
        "slo_s": slo,
        "slo_attainment": round(met / count, 4),
        "failed_runs": failed_runs,
        "revised_share": round(revised / count, 4),
        "stopped_revising_share": round(stopped / count, 4),
        "stage_p50_s": {k: round(percentile(v, 50), 2) for k, v in stage_s.items()},
        "stage_p95_s": {k: round(percentile(v, 95), 2) for k, v in stage_s.items()},
    }


def main(quick: bool = False, args: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="sloflow bench text2sql")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a Spider-like folder")
    parser.add_argument("--limit", type=int, default=None, help="questions, sampled across databases")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --limit sample")
    parser.add_argument("--model", default=None, help="embedded model name (default: settings.model)")
    # One thread: on a shared, oversubscribed CPU two llama.cpp threads stall at their barriers
    # (measured here: 1 thread decoded ~8x faster than 2 while other processes ran).
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--slo", type=float, default=None, help="seconds per question (default: the workflow's)")
    parser.add_argument("--save", type=Path, default=None, help="append one JSON line per question and side here")
    parser.add_argument("--only", choices=("baseline", "workflow"), default=None, help="run one side only")
    parser.add_argument("--merge", action="store_true", help="ask every question of one database merged from all of --data")
    parser.add_argument("--predictions", type=Path, default=None, help='write {"id", "db", "sql"} per question of the workflow here')
    parser.add_argument("--link-report", action="store_true", help="link time, prompt tokens and recall at 10, 40, 100+ tables; no model")
    parser.add_argument("--columns-per-table", type=int, default=None, help="filter the columns of searched schemas (the workflow's columns_per_table)")
    parser.add_argument(
        "--baseline-context",
        type=int,
        default=None,
        help="context tokens of the baseline's model (default: settings.context_tokens, as the workers are served); larger lets a merged schema fit",
    )
    opts = parser.parse_args(args or [])
    if quick and opts.limit is None:
        opts.limit = 10
    settings = get_settings()
    model = opts.model or settings.model
    dev = load_devset(opts.data)
    questions = sample_questions(dev.questions, opts.limit, opts.seed)
    if opts.link_report:
        from sloflow.bench.text2sql_link import link_report

        return link_report(dev, questions, opts.columns_per_table)
    figures: dict[str, Any] = {"questions": len(questions), "model": model, "seed": opts.seed, "columns_per_table": opts.columns_per_table}
    merged_home = tempfile.TemporaryDirectory(prefix="sloflow-merge-")
    if opts.merge:  # the same questions as without --merge, asked of the merged database
        merged = merge_devset(dev, Path(merged_home.name))
        by_id = {q.id: q for q in merged.dev.questions}
        dev, questions = merged.dev, [by_id[q.id] for q in questions]
        figures["merge"] = merged.summary()
        say(f"merged {figures['merge']['databases']} databases into one of {merged.tables} tables; "
            f"{len(merged.renamed)} renamed, {merged.gold_rewritten} gold queries rewritten")  # fmt: skip
    if opts.predictions is not None:
        opts.predictions.unlink(missing_ok=True)
    golds = {q.id: rows for q in questions if (rows := gold_rows(dev, q)) is not None}
    skipped = len(questions) - len(golds)
    questions = [q for q in questions if q.id in golds]
    say(f"{len(questions)} questions over {len({q.db_id for q in questions})} databases"
        f"{f' ({skipped} skipped: gold SQL fails here)' if skipped else ''}; model {model}")  # fmt: skip

    from sloflow.llm.embedded import EmbeddedBackend
    from sloflow.scheduler.policies.profile import measure_profile, typical_speed

    backend = EmbeddedBackend(model, models_dir=settings.home / "models", threads=opts.threads, context_tokens=settings.context_tokens)
    dbs = Databases(dev)
    figures["questions"] = len(questions)
    try:
        if opts.only in (None, "workflow"):
            # As a scheduler's worker does at start: the workflow sizes its candidates to this speed.
            speed = typical_speed([asyncio.run(measure_profile(backend, model))])
            with tempfile.TemporaryDirectory(prefix="sloflow-bench-") as home:
                figures.update(asyncio.run(run_workflow(backend, dbs, questions, golds, Path(home), opts.slo, opts.save, opts.predictions, speed, opts.columns_per_table)))
        if opts.only in (None, "baseline"):
            if opts.baseline_context not in (None, backend.context_tokens):  # the same model, with room for the whole schema
                asyncio.run(backend.close())
                backend = EmbeddedBackend(model, models_dir=settings.home / "models", threads=opts.threads, context_tokens=opts.baseline_context)
            figures["baseline_context_tokens"] = backend.context_tokens
            figures.update(asyncio.run(run_baseline(backend, dbs, questions, golds, opts.save)))
        if "execution_accuracy" in figures and "baseline_execution_accuracy" in figures:
            figures["gain_points"] = round(100 * (figures["execution_accuracy"] - figures["baseline_execution_accuracy"]), 1)
    finally:
        asyncio.run(backend.close())
        merged_home.cleanup()
    return figures
