"""A whole app as `sloflow serve` builds it (keys, quotas, tenants' sources, a durable runtime,
the real small model), minus Ray: two tenants and an admin, each with a real key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, Field

from sloflow.api.app import create_app
from sloflow.api.gate_tokens import TokenSigner
from sloflow.api.gatekeeper import Gatekeeper
from sloflow.api.quotas import Meter, MeteredClient
from sloflow.llm.client import DirectClient
from sloflow.llm.embedded import EmbeddedBackend
from sloflow.retrieval.databases import DatabaseRegistry
from sloflow.retrieval.document_index import IndexRegistry
from sloflow.retrieval.embedder import Embedder, get_embedder
from sloflow.retrieval.sources import SourceRegistry
from sloflow.retrieval.tenant_sources import TenantSources
from sloflow.scheduler.policies.profile import WorkerProfile, measure_profile
from sloflow.tenancy import KeyStore
from sloflow.workflows import Registry, Runtime, Workflow
from sloflow.workflows.builtin.gates.bank import BANK_FILE, GateBank, server_secret
from sloflow.workflows.builtin.reaper import reaper
from sloflow.workflows.builtin.sleeptime.answer import sleeptime
from sloflow.workflows.builtin.sleeptime.learn import learn
from sloflow.workflows.builtin.sleeptime.queue import LearnQueue
from sloflow.workflows.builtin.stream_rag.workflow import stream_rag
from sloflow.workflows.builtin.text2sql import text2sql
from sloflow.workflows.builtin.tools import TenantTools
from sloflow.workflows.contexts import ContextStore
from sloflow.workflows.run_store import RUNS_FILE
from tests.retrieval.conftest import make_shop_db


class Ask(BaseModel):
    question: str = Field(min_length=1, max_length=2000)
    hold: bool = Field(False, description="wait in the stage until the test opens the gate")
    answer: str = ""


def ask_workflow(gate: asyncio.Event) -> Workflow:
    """One stage that may wait for the test, then makes one short real LLM call."""
    wf = Workflow("ask", state=Ask, slo=60.0, description="a short answer from the model")

    @wf.stage
    async def reply(s, ctx):
        if s.hold:
            await gate.wait()
        return {"answer": await ctx.llm.text(s.question, max_tokens=2)}

    return wf


@dataclass
class Deployment:
    """The app and what a test inspects behind it."""

    app: FastAPI
    keys: KeyStore
    runtime: Runtime
    sources: TenantSources
    contexts: ContextStore
    gate: asyncio.Event
    databases: Path  # the folder databases may be registered from
    headers: dict[str, dict[str, str]]  # tenant a, tenant b, admin -> Authorization header

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://test", timeout=120)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return get_embedder()


@pytest.fixture(scope="session")
async def small_profile(small_llm: EmbeddedBackend) -> WorkerProfile:
    """The test model's measured speed, as a worker's profiling pass finds it."""
    return await measure_profile(small_llm, small_llm.name, context_tokens=2048)


@pytest.fixture
async def deployment(tmp_path: Path, small_llm: EmbeddedBackend, small_profile: WorkerProfile, embedder: Embedder) -> AsyncIterator[Deployment]:
    keys = KeyStore(tmp_path / "tenants.sqlite")
    meter = Meter(keys)
    client = MeteredClient(DirectClient(small_llm), meter)
    folder = tmp_path / "databases"
    folder.mkdir()
    make_shop_db(folder / "shop.sqlite")
    make_shop_db(folder / "other.sqlite")
    base = SourceRegistry(IndexRegistry(tmp_path / "indexes", embedder), DatabaseRegistry(tmp_path / "databases.json"))
    sources = TenantSources(base)
    registry = Registry()
    gate = asyncio.Event()
    registry.add(ask_workflow(gate))
    registry.add(text2sql)
    registry.add(reaper)
    registry.add(learn)
    registry.add(sleeptime)
    registry.add(stream_rag)
    contexts = ContextStore(tmp_path / RUNS_FILE)
    headers = {}
    for name, tenant, role in (("a", "team-a", "member"), ("b", "team-b", "member"), ("admin", "ops", "admin")):
        _, key = keys.create(tenant, role)  # type: ignore[arg-type]
        headers[name] = {"Authorization": f"Bearer {key}"}
    async with Runtime.open(tmp_path, client=client, registry=registry, tools_of=TenantTools(sources, contexts=contexts)) as runtime:
        learn_queue = LearnQueue(runtime, contexts, learn_input={"max_tokens": 16, "solve_tokens": 16})  # short passes: tests check properties
        await learn_queue.start()
        secret = server_secret(tmp_path)
        bank = GateBank(tmp_path / BANK_FILE, secret)
        gatekeeper = Gatekeeper(bank, TokenSigner(secret), {})  # the gate routes are served; no group is gated (test_gates.py gates some)
        app = create_app(
            client, [small_llm.name], keys=keys, meter=meter, runtime=runtime, sources=sources, contexts=contexts, learn_queue=learn_queue,
            database_roots=[str(folder)], context_tokens=2048, profiles=[small_profile], max_body_bytes=1 << 20, gatekeeper=gatekeeper,
        )
        yield Deployment(app, keys, runtime, sources, contexts, gate, folder, headers)
        gate.set()
        await learn_queue.close()
        bank.close()
    contexts.close()
    keys.close()
