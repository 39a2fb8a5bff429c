"""Reasoning gates (PAPERS.md section 5): the cost asymmetry of our gates, and throttling on loopback.

Usage: sloflow bench gates [--model NAME] [--gates N] [--reserve N] [--solve-tokens N] [--endpoint URL]
                           [--endpoint-model M] [--seconds S] [--fill-seconds S] [--rate R] [--threads T]
                           [--predictions FILE]

1. Bank: `gates.fill` (the very workflow the server runs, through `GateFiller`) makes `--gates`
   gates with the embedded `--model`, one llama.cpp instance in process (no attempt begins after
   `--fill-seconds`); every attempt's writer and checker output tokens count as generation cost,
   rejected attempts included.
2. Asymmetry: each gate but `--reserve` (the hardest first) is issued to a key and solved with the
   embedded model (the client's procedure: as many replies voted over as the gate's difficulty
   asks for, `--solve-tokens` output tokens each at most), and, alternately, by `--endpoint` (any
   OpenAI-compatible server) when given; the bank verifies each answer. `token_asymmetry` = solve
   output tokens / generation tokens per banked gate, at the default difficulty (1; over every
   gate when none is at 1); `seconds_asymmetry` = solve seconds / (generation seconds per banked
   gate + issue and verify); `issue_verify_ms` = CPU time of issuing and verifying a gate and
   signing and checking its token, over 200 gates in a timing bank.
3. Load: the API on loopback with `/v1/models` gated adaptively at `--rate` requests/s per key. A
   scripted agent (`sloflow.client.GatedClient`, its solver the server's own chat route) requests
   it back to back for `--seconds`, solving the gates it meets (the `--reserve` gates left in the
   bank); an exempt client reads it every 50 ms. The same run with gating off is the baseline:
   `exempt_latency_ratio` = the exempt client's P50 gated / ungated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sloflow.bench.progress import say
from sloflow.bench.text2sql import percentile
from sloflow.config import get_settings

KEY = "bench-agent"
DEFAULT_DIFFICULTY = 1
# Attempts allowed per gate asked for: a dropped attempt stocks its checked clues, so later ones finish gates.
ATTEMPTS_PER_GATE = 8


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sloflow bench gates")
    p.add_argument("--model", default=None, help="embedded model that makes and solves gates (default: SLOFLOW_MODEL)")
    p.add_argument("--gates", type=int, default=None, help="gates to bank (default 12; --quick 3)")
    p.add_argument("--reserve", type=int, default=None, help="banked gates kept for the load run's agent (default 4; --quick 1)")
    p.add_argument("--solve-tokens", type=int, default=768, help="output tokens a solver may use")
    p.add_argument("--endpoint", default=None, help="an OpenAI-compatible /v1 URL: a second solver")
    p.add_argument("--endpoint-model", default=None, help="the model name to ask --endpoint for")
    p.add_argument("--seconds", type=float, default=None, help="length of each load run (default 60; --quick 15)")
    p.add_argument("--fill-seconds", type=float, default=None, help="no fill attempt begins after this (default none; --quick 75)")
    p.add_argument("--rate", type=float, default=2.0, help="requests/s per key past which the gated route asks for a gate")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--predictions", type=Path, default=None, help="write each solve (gate id, difficulty, tokens, seconds, right) as JSON lines")
    return p


async def _bank(filler: Any, gates: int, seconds: float | None) -> tuple[list[str], float]:
    """Fill until `gates` are banked (at most `ATTEMPTS_PER_GATE` attempts per gate, none begun after `seconds`); the ids and the seconds it took."""
    ids: list[str] = []
    start = time.perf_counter()
    while len(ids) < gates and filler.runs < ATTEMPTS_PER_GATE * gates and (seconds is None or time.perf_counter() - start < seconds):
        gate_id = await filler.fill_once()
        totals = filler.bank.totals()
        why = f" ({'; '.join(filler.notes)})" if gate_id is None and filler.notes else ""
        say(f"fill attempt {filler.runs}: {'banked' if gate_id else 'dropped'}{why}; {totals.saved} banked, {len(filler.stock)} checked clues stocked, {totals.generation_tokens} generation tokens so far")
        if gate_id is not None:
            ids.append(gate_id)
    return ids, time.perf_counter() - start


async def _solve_embedded(backend: Any, gate: Any, max_tokens: int) -> tuple[str, int, float]:
    """The client's procedure (`solve_by_vote`) with the embedded model: the answer, output tokens and seconds."""
    from sloflow.llm.types import GenerateRequest
    from sloflow.planners.gates.prompts import solve_by_vote

    async def reply(messages: list[Any], settings: dict[str, Any]) -> tuple[str, int]:
        out = await backend.generate(GenerateRequest(messages=messages, max_tokens=max_tokens, **settings))
        return out.text, out.completion_tokens

    start = time.perf_counter()
    answer, tokens = await solve_by_vote(reply, [(c.domain, c.text) for c in gate.clues], gate.difficulty)
    return answer, tokens, time.perf_counter() - start


async def _solves(bank: Any, backend: Any, opts: argparse.Namespace, count: int) -> list[dict[str, Any]]:
    """Issue `count` banked gates and solve each (alternately by --endpoint when given); the bank verifies."""
    from sloflow.client import GateSolver
    from sloflow.errors import WrongAnswer
    from sloflow.planners.gates.puzzle import MAX_DIFFICULTY

    endpoint = GateSolver(opts.endpoint, opts.endpoint_model, max_tokens=opts.solve_tokens) if opts.endpoint else None
    records = []
    for i in range(count):
        gate = bank.issue(KEY, "models", MAX_DIFFICULTY, ttl_s=3600)  # the hardest first: the agent's reserve is left at the default
        by_endpoint = endpoint is not None and i % 2 == 1
        if by_endpoint:
            attempt = await endpoint.solve(gate.to_dict())  # type: ignore[union-attr]
            answer, tokens, seconds = attempt.answer, attempt.completion_tokens, attempt.seconds
        else:
            answer, tokens, seconds = await _solve_embedded(backend, gate, opts.solve_tokens)
        try:
            bank.answer(gate.id, KEY, answer or "?")
            right = True
        except WrongAnswer:
            right = False
        records.append({"gate": gate.id, "difficulty": gate.difficulty, "letters": gate.letters, "solver": "endpoint" if by_endpoint else "embedded",
                        "tokens": tokens, "seconds": round(seconds, 3), "right": right})
        say(f"solve {i + 1}/{count} ({records[-1]['solver']}): difficulty {gate.difficulty}, {tokens} tokens, {seconds:.1f} s, {'right' if right else 'wrong'}")
    if endpoint is not None:
        await endpoint.aclose()
    return records


def _issue_verify_ms(home: Path, secret: bytes) -> tuple[float, float]:
    """CPU and wall milliseconds to issue a gate, verify its answer, and sign and check the token it earns
    (a timing bank of 200 five-letter gates with clues of a written clue's length: the cost is the same)."""
    from sloflow.api.gate_tokens import TokenSigner
    from sloflow.planners.gates.puzzle import hidden_words
    from sloflow.workflows.builtin.gates.bank import Clue, GateBank

    clues = [Clue("music", "A stringed instrument of the Italian baroque, played with a bow held underhand")] * 5
    timing = GateBank(home / "timing.sqlite", secret)
    signer = TokenSigner(secret)
    words = [w for w in hidden_words() if len(w) == len(clues)]
    ids = {timing.add(clues, words[i % len(words)], 1, 100): words[i % len(words)] for i in range(200)}
    start, wall = time.process_time(), time.perf_counter()
    for n in range(len(ids)):
        key = f"k{n}"
        gate = timing.issue(key, "models", 1, ttl_s=60)
        timing.answer(gate.id, key, ids[gate.id])
        token, _ = signer.issue(key, "models", time.time() + 60, 1)
        signer.verify(token, key, "models", time.time())
    spent, spent_wall = time.process_time() - start, time.perf_counter() - wall
    timing.close()
    return spent / len(ids) * 1000, spent_wall / len(ids) * 1000


@contextlib.asynccontextmanager
async def _serving(app: Any) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a free loopback port; yields its base URL."""
    import socket

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _load_run(base: str, exempt_key: str, agent_key: str, seconds: float, solve_tokens: int) -> dict[str, Any]:
    """The agent requesting /v1/models back to back (solving the gates it meets) beside an exempt client, for `seconds`."""
    import httpx

    from sloflow.client import GatedClient, GateSolver

    solver = GateSolver(f"{base}/v1", api_key=exempt_key, max_tokens=solve_tokens)
    stop_at = time.monotonic() + seconds
    statuses: dict[int, int] = {}
    latencies: list[float] = []

    async def agent(client: GatedClient) -> None:
        while time.monotonic() < stop_at:
            r = await client.request("GET", "/v1/models")
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    async def exempt(http: httpx.AsyncClient) -> None:
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            r = await http.get("/v1/models")
            if r.status_code == 200:
                latencies.append(time.perf_counter() - t0)
            await asyncio.sleep(0.05)

    started = time.monotonic()
    async with GatedClient(base, agent_key, solver, max_gates=1) as client, httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {exempt_key}"}, timeout=60
    ) as http:
        await asyncio.gather(agent(client), exempt(http))
        tally = client.tally
    await solver.aclose()
    return {"statuses": statuses, "elapsed_s": time.monotonic() - started, "exempt_p50_s": percentile(latencies, 50),
            "exempt_samples": len(latencies), "gates_met": tally.seen, "gates_solved": tally.solved, "agent_solve_tokens": tally.tokens}


async def _load(bank: Any, backend: Any, secret: bytes, home: Path, opts: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ungated baseline, then the gated run (same agent, same exempt client)."""
    from sloflow.api.app import create_app
    from sloflow.api.gate_tokens import TokenSigner
    from sloflow.api.gatekeeper import Gatekeeper
    from sloflow.gating import GatePolicy
    from sloflow.llm.client import DirectClient
    from sloflow.tenancy import KeyStore, Quotas

    keys = KeyStore(home / "tenants.sqlite", Quotas(requests_per_min=10**9, tokens_per_min=10**9))
    _, agent_key = keys.create("agents")
    _, exempt_key = keys.create("trusted", gate_exempt=True)
    runs = {}
    for name, mode in (("ungated", "off"), ("gated", "adaptive")):
        policy = GatePolicy(mode=mode, rate_per_s=opts.rate, window_s=min(10.0, opts.seconds / 2), token_uses=1)  # type: ignore[arg-type]
        keeper = Gatekeeper(bank, TokenSigner(secret), {"models": policy})
        app = create_app(DirectClient(backend), [backend.name], keys=keys, gatekeeper=keeper)
        async with _serving(app) as base:
            say(f"load run ({name}): the agent requests /v1/models for {opts.seconds:.0f} s")
            runs[name] = await _load_run(base, exempt_key, agent_key, opts.seconds, opts.solve_tokens)
            say(f"  {runs[name]}")
    keys.close()
    return runs["ungated"], runs["gated"]


def _by_difficulty(records: list[dict[str, Any]], field: str, how: Any) -> dict[str, float]:
    levels = sorted({r["difficulty"] for r in records})
    return {str(d): round(how([r[field] for r in records if r["difficulty"] == d]), 3) for d in levels}


def main(quick: bool = False, args: list[str] | None = None) -> dict[str, Any]:
    opts = _parser().parse_args(args or [])
    opts.model = opts.model or get_settings().model
    opts.gates = opts.gates if opts.gates is not None else (3 if quick else 12)
    opts.reserve = opts.reserve if opts.reserve is not None else (1 if quick else 4)
    opts.seconds = opts.seconds if opts.seconds is not None else (15.0 if quick else 60.0)
    if quick:
        opts.solve_tokens = min(opts.solve_tokens, 384)
        opts.fill_seconds = opts.fill_seconds if opts.fill_seconds is not None else 75.0  # keeps --quick under 3 minutes
    return asyncio.run(_main(opts))


async def _main(opts: argparse.Namespace) -> dict[str, Any]:
    from sloflow.llm.client import DirectClient
    from sloflow.llm.embedded import EmbeddedBackend
    from sloflow.workflows.builtin.gates.bank import GateBank, server_secret
    from sloflow.workflows.builtin.gates.filler import GateFiller

    settings = get_settings()
    backend = EmbeddedBackend(opts.model, models_dir=settings.home / "models", threads=opts.threads, context_tokens=2048)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        secret = server_secret(home)
        bank = GateBank(home / "gates.sqlite", secret)
        shapes = ((4, "plain"), (5, "plain"), (4, "obscure"), (5, "obscure"))
        filler = GateFiller(DirectClient(backend), bank, low_water=0, high_water=0, shapes=shapes, fill_input={"solve_tokens": opts.solve_tokens})
        ids, fill_s = await _bank(filler, opts.gates, opts.fill_seconds)
        totals, banked_by_difficulty = bank.totals(), bank.available()
        records = await _solves(bank, backend, opts, max(len(ids) - opts.reserve, 0))
        issue_verify_ms, issue_verify_wall_ms = _issue_verify_ms(home, secret)
        ungated, gated = await _load(bank, backend, secret, home, opts)
        bank.close()
    await backend.close()
    if opts.predictions is not None:
        opts.predictions.write_text("".join(json.dumps(r) + "\n" for r in records))
    figures = _figures(opts, totals, len(ids), fill_s, records, issue_verify_ms, ungated, gated)
    return {**figures, "banked_by_difficulty": {str(d): n for d, n in sorted(banked_by_difficulty.items())}, "issue_verify_wall_ms": round(issue_verify_wall_ms, 4)}


def _figures(opts: argparse.Namespace, totals: Any, banked: int, fill_s: float, records: list[dict[str, Any]], issue_verify_ms: float,
             ungated: dict[str, Any], gated: dict[str, Any]) -> dict[str, Any]:
    embedded = [r for r in records if r["solver"] == "embedded"]
    default = [r for r in embedded if r["difficulty"] == DEFAULT_DIFFICULTY] or embedded
    gen_per_gate = totals.generation_tokens / banked if banked else None
    gen_s_per_gate = fill_s / banked if banked else None
    solve_tokens = statistics.fmean(r["tokens"] for r in default) if default else None
    solve_s = statistics.fmean(r["seconds"] for r in default) if default else None
    admitted = gated["statuses"].get(200, 0) / gated["elapsed_s"]
    endpoint = [r for r in records if r["solver"] == "endpoint"]
    return {
        "model": opts.model,
        "gates": banked,
        "token_asymmetry": round(solve_tokens / gen_per_gate, 3) if solve_tokens is not None and gen_per_gate else None,
        "seconds_asymmetry": round(solve_s / (gen_s_per_gate + issue_verify_ms / 1000), 3) if solve_s is not None and gen_s_per_gate else None,
        "issue_verify_ms": round(issue_verify_ms, 4),
        "solve_rate": round(sum(r["right"] for r in embedded) / len(embedded), 3) if embedded else None,
        "solve_rate_by_difficulty": _by_difficulty(embedded, "right", statistics.fmean),
        "agent_admitted_rate": round(admitted, 3),
        "configured_rate": opts.rate,
        "exempt_latency_ratio": round(gated["exempt_p50_s"] / ungated["exempt_p50_s"], 3) if ungated["exempt_p50_s"] else None,
        "asymmetry_difficulty": DEFAULT_DIFFICULTY if any(r["difficulty"] == DEFAULT_DIFFICULTY for r in embedded) else "all",
        "fill_attempts": totals.attempts,
        "generation_tokens_per_gate": round(gen_per_gate, 1) if gen_per_gate else None,
        "label_tokens_per_gate": round(totals.label_tokens / banked, 1) if banked else None,
        "generation_seconds_per_gate": round(gen_s_per_gate, 2) if gen_s_per_gate else None,
        "solve_tokens_by_difficulty": _by_difficulty(embedded, "tokens", statistics.fmean),
        "solve_seconds_by_difficulty": _by_difficulty(embedded, "seconds", statistics.fmean),
        "solves": len(embedded),
        "endpoint": opts.endpoint,
        "endpoint_solves": len(endpoint),
        "endpoint_solve_rate": round(sum(r["right"] for r in endpoint) / len(endpoint), 3) if endpoint else None,
        "endpoint_tokens_mean": round(statistics.fmean(r["tokens"] for r in endpoint), 1) if endpoint else None,
        "agent_requests": sum(gated["statuses"].values()),
        "agent_statuses": {str(k): v for k, v in sorted(gated["statuses"].items())},
        "agent_gates_met": gated["gates_met"],
        "agent_gates_solved": gated["gates_solved"],
        "agent_admitted_rate_ungated": round(ungated["statuses"].get(200, 0) / ungated["elapsed_s"], 1),
        "exempt_p50_gated_ms": round(gated["exempt_p50_s"] * 1000, 2),
        "exempt_p50_ungated_ms": round(ungated["exempt_p50_s"] * 1000, 2),
        "load_seconds": opts.seconds,
        "fill_seconds_max": opts.fill_seconds,
        "solve_tokens_max": opts.solve_tokens,
    }
