"""Load and overhead of the REST API: N concurrent clients, and the scheduler path's added latency.

Load: `--clients` clients on loopback, each alternating a run of the short workflow `bench-short`
(`?wait=true`) and a chat completion, for `--duration` seconds: errors, lost runs (started but
never finished), P50/P95 latency per kind and overall, achieved requests/s.

Overhead: one client alternates a 1-token chat completion through the API and the scheduler with
the same backend called directly in this process (same model or the same emulated speeds); the
difference of the P50s is what the API + dispatcher + worker actor path adds. The benchmark runs on
the event loop the worker actors run on (uvloop when installed, as Ray picks it): the emulated
backend sleeps, and asyncio's default loop rounds each sleep up to the next millisecond (a 1-token
call: 4.6 ms there, 3.5 ms in a worker actor), which would credit the API path with the gap.

Without `--url` the benchmark starts its own server (`sloflow serve --workers FILE --load
sloflow.bench.api_flow`, auth off, a throwaway home): `--backend emulated` (the default; filler
answers, labelled, scheduler-bound) or `embedded` (llama.cpp workers of `--model`). With `--url`
it measures a running server, e.g. `make run`'s, which must have loaded `sloflow.bench.api_flow`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from sloflow.api.serve import run
from sloflow.bench.progress import say
from sloflow.llm.backend import Backend
from sloflow.llm.types import GenerateRequest, Message
from sloflow.processes import free_port, stop, wait_ready

WORKFLOW = "bench-short"
# The emulated workers' speeds: about a GPU server's, so the scheduler path is what is measured.
EMULATED = {"prefill_s_per_token": 0.0001, "decode_s_per_token": 0.002, "overhead_s": 0.001}
QUESTIONS = ["Why is the sky blue?", "What is a B-tree?", "Who wrote Hamlet?", "How do vaccines work?"]


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _workers_file(folder: Path, backend: str, model: str) -> Path:
    if backend == "emulated":
        workers = [{"id": f"emu-{i}", "backend": "emulated", "model": "bench", "slots": 8, "emulated": EMULATED} for i in range(2)]
    else:
        workers = [{"id": f"cpu-{i}", "backend": "embedded", "model": model, "threads": 1} for i in range(2)]
    path = folder / "workers.json"
    path.write_text(json.dumps({"workers": workers}))
    return path


@contextmanager
def own_server(backend: str, model: str) -> Iterator[tuple[str, str]]:
    """`sloflow serve` on a free loopback port with a throwaway home; yields its URL and served model."""
    from sloflow.config import get_settings

    home = Path(tempfile.mkdtemp(prefix="sloflow-bench-api-"))
    port = free_port()
    env = {
        **os.environ,
        "SLOFLOW_HOME": str(home),
        "SLOFLOW_AUTH": "false",
        "SLOFLOW_RAY_DASHBOARD": "false",
        "SLOFLOW_QUOTA_CONCURRENT_RUNS": "100000",
        "SLOFLOW_QUOTA_REQUESTS_PER_MIN": "10000000",
        "SLOFLOW_QUOTA_TOKENS_PER_MIN": "1000000000",
        "SLOFLOW_LOG_LEVEL": "WARNING",
    }
    # The embedded model is assembled once in the user's home; the throwaway one would copy it.
    (home / "models").symlink_to(get_settings().home / "models", target_is_directory=True)
    cmd = [sys.executable, "-m", "sloflow.cli", "serve", "--port", str(port), "--workers", str(_workers_file(home, backend, model)),
           "--load", "sloflow.bench.api_flow"]
    log = (home / "server.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(
            proc,
            lambda: httpx.get(f"{url}/v1/ready", timeout=2).json().get("status") == "ready",
            timeout_s=300,
            output=lambda: (home / "server.log").read_text(errors="replace"),
        )
        ready = httpx.get(f"{url}/v1/ready", timeout=10).json()
        say(f"server ready at {url} with {backend} workers ({ready['models']})")
        yield url, ready["models"][0]
    finally:
        stop(proc, timeout_s=60)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


class Tally:
    """What the load phase saw: latencies per kind, errors by reason, the runs it started."""

    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = {"run": [], "chat": []}
        self.errors: dict[str, int] = {}
        self.runs: set[str] = set()
        self.unanswered: list[str] = []  # idempotency keys of runs whose request got no answer

    def error(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1


async def _client(http: httpx.AsyncClient, index: int, until: float, tally: Tally, model: str) -> None:
    turn = index  # half the clients start with a run, half with a chat
    while time.monotonic() < until:
        question = QUESTIONS[turn % len(QUESTIONS)]
        t0 = time.monotonic()
        if turn % 2 == 0:
            key = uuid.uuid4().hex
            try:
                resp = await http.post(f"/v1/workflows/{WORKFLOW}/runs", params={"wait": "true"},
                                       json={"input": {"question": question}}, headers={"Idempotency-Key": key})
            except httpx.HTTPError as exc:
                tally.error(f"run: {type(exc).__name__}")
                tally.unanswered.append(key)
            else:
                if resp.status_code != 200:
                    tally.error(f"run: HTTP {resp.status_code}")
                else:
                    body = resp.json()
                    tally.runs.add(body["id"])
                    if body["status"] != "succeeded":
                        tally.error(f"run: {body['status']}")
                    else:
                        tally.latency["run"].append(time.monotonic() - t0)
        else:
            try:
                resp = await http.post("/v1/chat/completions", json={
                    "model": model, "messages": [{"role": "user", "content": question}], "max_tokens": 8, "temperature": 0,
                })
            except httpx.HTTPError as exc:
                tally.error(f"chat: {type(exc).__name__}")
            else:
                if resp.status_code != 200:
                    tally.error(f"chat: HTTP {resp.status_code}")
                else:
                    tally.latency["chat"].append(time.monotonic() - t0)
        turn += 1


async def _lost_runs(http: httpx.AsyncClient, tally: Tally, grace_s: float) -> int:
    """Runs started but not finished `grace_s` after the load stopped (unanswered ones looked up by key)."""
    for key in tally.unanswered:  # the same key returns the run the lost request started, if any
        try:
            resp = await http.post(f"/v1/workflows/{WORKFLOW}/runs", json={"input": {"question": "?"}}, headers={"Idempotency-Key": key})
            if resp.status_code in (200, 202):
                tally.runs.add(resp.json()["id"])
        except httpx.HTTPError:
            pass
    end = time.monotonic() + grace_s
    pending = set(tally.runs)
    while pending and time.monotonic() < end:
        for run_id in list(pending):
            resp = await http.get(f"/v1/runs/{run_id}")
            if resp.status_code == 200 and resp.json()["status"] in ("succeeded", "failed", "cancelled"):
                pending.discard(run_id)
        if pending:
            await asyncio.sleep(1)
    return len(pending)


def _direct_backend(kind: str, model: str) -> Backend:
    from sloflow.config import get_settings

    if kind == "emulated":
        from sloflow.llm.emulated import EmulatedBackend

        return EmulatedBackend("bench", **EMULATED)
    from sloflow.llm.embedded import EmbeddedBackend

    return EmbeddedBackend(model, models_dir=get_settings().home / "models", threads=1, context_tokens=2048)


async def _overhead(http: httpx.AsyncClient, direct: Backend, model: str, reps: int) -> tuple[list[float], list[float]]:
    """Alternate a 1-token answer through the API and from the backend directly (same prompt)."""
    messages = [{"role": "user", "content": "Say yes."}]
    request = GenerateRequest(messages=[Message(**m) for m in messages], max_tokens=1, temperature=0)
    via_api, direct_s = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        resp = await http.post("/v1/chat/completions", json={"model": model, "messages": messages, "max_tokens": 1, "temperature": 0})
        resp.raise_for_status()
        via_api.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        await direct.generate(request)
        direct_s.append(time.perf_counter() - t0)
    return via_api, direct_s


async def _measure(url: str, model: str, kind: str, clients: int, duration_s: float, reps: int, key: str | None) -> dict:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    limits = httpx.Limits(max_connections=clients + 8, max_keepalive_connections=clients + 8)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=120) as http:
        say(f"load: {clients} clients for {duration_s:.0f} s (runs of {WORKFLOW} and chat completions)")
        tally = Tally()
        started = time.monotonic()
        await asyncio.gather(*(_client(http, i, started + duration_s, tally, model) for i in range(clients)))
        elapsed = time.monotonic() - started
        lost = await _lost_runs(http, tally, grace_s=60)
        say(f"overhead: {reps} x 1-token chat through the API vs the {kind} backend directly")
        direct = _direct_backend(kind, model)
        try:
            await _overhead(http, direct, model, 3)  # warm both paths
            via_api, direct_s = await _overhead(http, direct, model, reps)
        finally:
            await direct.close()
    every = tally.latency["run"] + tally.latency["chat"]
    errors = sum(tally.errors.values())
    added_ms = (statistics.median(via_api) - statistics.median(direct_s)) * 1000
    figures = {
        "backend": kind if kind != "emulated" else "emulated (scheduler-bound; filler answers)",
        "model": model,
        "clients": clients,
        "duration_s": round(elapsed, 1),
        "requests": len(every) + errors,
        "runs": len(tally.latency["run"]),
        "chats": len(tally.latency["chat"]),
        "errors": errors,
        "error_kinds": tally.errors,
        "lost_runs": lost,
        "rate_per_s": round(len(every) / elapsed, 2),
        "p50_s": round(_pct(every, 0.5) or 0, 4),
        "p95_s": round(_pct(every, 0.95) or 0, 4),
        "run_p50_s": round(_pct(tally.latency["run"], 0.5) or 0, 4),
        "run_p95_s": round(_pct(tally.latency["run"], 0.95) or 0, 4),
        "chat_p50_s": round(_pct(tally.latency["chat"], 0.5) or 0, 4),
        "chat_p95_s": round(_pct(tally.latency["chat"], 0.95) or 0, 4),
        "api_1token_p50_ms": round(statistics.median(via_api) * 1000, 2),
        "direct_1token_p50_ms": round(statistics.median(direct_s) * 1000, 2),
        "added_latency_p50_ms": round(added_ms, 2),
    }
    say(f"{figures['requests']} requests, {errors} errors, {lost} lost runs, {figures['rate_per_s']}/s, "
        f"P50 {figures['p50_s']} s, P95 {figures['p95_s']} s; added latency P50 {added_ms:.2f} ms")
    return figures


def main(quick: bool = False, args: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="sloflow bench api", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (at least 50 for the recorded figure)")
    parser.add_argument("--duration", type=float, default=None, help="seconds of load (default 60; --quick 10)")
    parser.add_argument("--reps", type=int, default=None, help="1-token requests per path for the overhead (default 200; --quick 30)")
    parser.add_argument("--backend", choices=("emulated", "embedded"), default="emulated", help="the workers of the server it starts")
    parser.add_argument("--model", default="smollm2-135m", help="embedded model, with --backend embedded")
    parser.add_argument("--url", default=None, help="measure this running server instead of starting one")
    parser.add_argument("--key", default=None, help="its API key (default: SLOFLOW_HOME/local.key if present)")
    opts = parser.parse_args(args or [])
    duration = opts.duration or (10.0 if quick else 60.0)
    reps = opts.reps or (30 if quick else 200)
    if opts.url:
        from sloflow.config import get_settings

        key_file = get_settings().home / "local.key"
        key = opts.key or (key_file.read_text().strip() if key_file.exists() else None)
        models = httpx.get(f"{opts.url}/v1/ready", timeout=10).json()["models"]
        kind = "emulated" if models[0].startswith("emulated:") else "embedded"
        return run(_measure(opts.url, models[0], kind, opts.clients, duration, reps, key))
    with own_server(opts.backend, opts.model) as (url, model):
        return run(_measure(url, model, opts.backend, opts.clients, duration, reps, None))
