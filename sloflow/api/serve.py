"""What `sloflow serve` runs: Ray, the scheduler and its LLM workers, the workflow runtime, the API.

Data path: API -> runtime (workflows) -> `SchedulerClient` -> dispatcher actor -> worker actors ->
backends. The chat endpoint and every stage's `ctx.llm` go through the same scheduler.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from sloflow.api.app import create_app
from sloflow.config import Settings
from sloflow.errors import StorageError
from sloflow.llm.models import model_path
from sloflow.ray_start import start_ray
from sloflow.tenancy import KeyStore, Quotas, local_key

log = logging.getLogger(__name__)

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on uvloop's event loop when installed (the loop Ray runs its actors on), else asyncio's.

    Each call through the API wakes the server's loop several times (HTTP in and out, the
    dispatcher's answer from a Ray thread); uvloop's wake-ups and timers cost less than the
    selector loop's, whose timers round up to the next millisecond.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def worker_specs(settings: Settings, model: str) -> dict:
    """One spec per LLM worker: embedded llama.cpp sharing the cores, or an OpenAI-compatible server."""
    from sloflow.scheduler.live.worker import WorkerSpec

    if settings.backend == "openai":
        spec = WorkerSpec(
            "openai", settings.openai_model, base_url=settings.openai_base_url, api_key=settings.openai_api_key, num_cpus=0
        )
    else:
        threads = max(1, settings.threads // settings.workers)
        spec = WorkerSpec(
            "embedded",
            model,
            threads=threads,
            context_tokens=settings.context_tokens,
            models_dir=str(settings.home / "models"),
            num_cpus=0,  # the threads are the real budget; Ray's CPU count must not block start-up
            lend_idle_cores=settings.lend_idle_cores,
        )
    return {f"worker-{i}": spec for i in range(settings.workers)}


def _context_limit(specs: dict) -> int | None:
    """The most context any worker holds, when all run llama.cpp here; a remote server knows its own."""
    if all(s.kind == "embedded" for s in specs.values()):
        return max(s.context_tokens for s in specs.values())
    return None


def check_home_writable(home: Path) -> None:
    """Refuse a read-only home at start, naming it: the server keeps keys, quotas and plan memory there, not only runs."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        writable = os.access(home, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        raise StorageError(
            f"SLOFLOW_HOME {home} is read-only, and `sloflow serve` writes its API keys, quotas, plan memory and runs "
            "there; remount it read-write or point SLOFLOW_HOME at a writable folder",
            details={"path": str(home), "cause": "read_only"},
        )


def key_store(settings: Settings) -> KeyStore:
    """The server's API keys and quotas, in `home/tenants.sqlite`, with the settings' default quotas."""
    defaults = Quotas(
        concurrent_runs=settings.quota_concurrent_runs,
        requests_per_min=settings.quota_requests_per_min,
        tokens_per_min=settings.quota_tokens_per_min,
    )
    return KeyStore(settings.home / "tenants.sqlite", defaults)


def gating(settings: Settings, client: Any, dispatcher: Any) -> tuple[Any, Any]:
    """The gatekeeper and the started bank filler when some route group is gated, else (None, None)."""
    if not any(p.mode != "off" for p in settings.gates.values()):
        return None, None
    from sloflow.api.gate_tokens import TokenSigner
    from sloflow.api.gatekeeper import DispatcherLoad, Gatekeeper
    from sloflow.workflows.builtin.gates.bank import BANK_FILE, GateBank, server_secret
    from sloflow.workflows.builtin.gates.filler import GateFiller

    secret = server_secret(settings.home)
    bank = GateBank(settings.home / BANK_FILE, secret)
    filler = GateFiller(client, bank, low_water=settings.gate_bank_low, high_water=settings.gate_bank_high)
    filler.start()
    keeper = Gatekeeper(bank, TokenSigner(secret), settings.gates, load=DispatcherLoad(dispatcher), on_issue=filler.wake)
    return keeper, filler


async def serve(
    settings: Settings,
    model: str,
    host: str,
    port: int,
    announce: Callable[[str], None],
    announce_key: Callable[[str | None, Path], None],
    workers_file: Path | None = None,
) -> None:
    """Start everything, serve until Ctrl-C, then stop it; unfinished runs resume at the next start.

    `workers_file` (YAML or JSON, see `worker_file`) replaces the settings' identical workers with
    heterogeneous ones, each placed by Ray on a node with its resources.

    With auth on, the local tenant's admin key is made on first start and kept in `home/local.key`;
    `announce_key` gets it (the key itself only when it was just made) and its file.
    """
    import ray

    from sloflow.api.quotas import Meter, MeteredClient
    from sloflow.demo import register_demo_db
    from sloflow.demo.retail import register_retail_demo
    from sloflow.planners.plans.memory import PlanMemory
    from sloflow.retrieval.sources import default_sources
    from sloflow.scheduler.live.client import SchedulerClient
    from sloflow.scheduler.live.dispatcher import start_scheduler
    from sloflow.retrieval.tenant_sources import TenantSources
    from sloflow.workflows.builtin import load_builtins
    from sloflow.workflows.builtin.sleeptime.queue import LearnQueue
    from sloflow.workflows.builtin.tools import TenantTools
    from sloflow.workflows.contexts import ContextStore
    from sloflow.workflows.run_store import RUNS_FILE
    from sloflow.workflows.runtime import Runtime

    check_home_writable(settings.home)
    if workers_file is not None:
        from sloflow.scheduler.live.worker_file import load_worker_specs

        specs = load_worker_specs(workers_file, settings.home / "models")
    else:
        specs = worker_specs(settings, model)
    for spec in specs.values():
        if spec.kind == "embedded":
            model_path(spec.model, settings.home / "models")  # a clear error now rather than in a worker
    keys = key_store(settings)
    if settings.auth:
        key, path, made = local_key(keys, settings.home)
        announce_key(key if made else None, path)
    meter = Meter(keys)
    start_ray(settings, dashboard=settings.ray_dashboard)
    try:
        kinds = ", ".join(sorted({f"{s.kind} {s.model}" for s in specs.values()}))
        announce(f"starting {len(specs)} LLM worker(s): {kinds} (each measures its speed first)")
        if any(s.kind == "emulated" for s in specs.values()):
            announce("emulated workers answer with filler text: for scheduler-bound load tests only")
        dispatcher = await asyncio.to_thread(start_scheduler, specs)
        running = await dispatcher.workers.remote()
        profiles = [w["profile"] for w in running]
        models = sorted({w["model"] for w in running})  # what the backends call themselves
        client = MeteredClient(SchedulerClient(dispatcher), meter)  # tokens and priority held to each tenant's quotas
        metrics_url = f"http://127.0.0.1:{ray.nodes()[0]['MetricsExportPort']}/metrics"
        load_builtins()
        sources = default_sources()
        register_demo_db(sources.databases, settings.home)
        register_retail_demo(sources, settings.home)
        memory = PlanMemory(path=settings.home / "plan_memory.sqlite")
        tenant_sources = TenantSources(sources)  # the demo data belong to the local tenant
        contexts = ContextStore(settings.home / RUNS_FILE)  # beside the runs, so they survive restarts together
        tools_of = TenantTools(tenant_sources, memory, contexts)
        async with Runtime.open(settings.home, checkpoints=settings.checkpoints, client=client, tools_of=tools_of) as runtime:
            resumed = await runtime.resume_unfinished()
            if resumed:
                announce(f"resumed {len(resumed)} unfinished run(s)")
            learn_queue = LearnQueue(runtime, contexts)
            await learn_queue.start()
            gatekeeper, filler = gating(settings, client, dispatcher)
            app = create_app(
                client,
                models,
                keys=keys,
                open_access=not settings.auth,
                meter=meter,
                runtime=runtime,
                sources=tenant_sources,
                contexts=contexts,
                learn_queue=learn_queue,
                database_roots=[str(settings.home / "databases")],
                metrics_url=metrics_url,
                dispatcher=dispatcher,
                profiles=profiles,
                gatekeeper=gatekeeper,
                context_tokens=_context_limit(specs),
                max_body_bytes=settings.max_body_bytes,
                max_json_depth=settings.max_json_depth,
            )
            server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
            announce(f"sloflow serving {', '.join(models)} at http://{host}:{port}  (Ctrl-C to stop)")
            try:
                await server.serve()
            finally:
                await learn_queue.close()
                if filler is not None:
                    await filler.close()
                if gatekeeper is not None:
                    gatekeeper.bank.close()
        contexts.close()
    finally:
        ray.shutdown()
        keys.close()
