"""Fixtures for workflow tests: a scripted LLM client and runtimes on real SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import pytest

from sloflow.llm.client import CallContext
from sloflow.llm.types import Chunk, Completion, GenerateRequest
from sloflow.workflows import MemoryRunStore, Registry, Runtime


class ScriptedLLM:
    """An `LLMClient` that answers `reply` (or blocks while `hold` is set) and records every call."""

    def __init__(self, reply: str = "ok") -> None:
        self.reply = reply
        self.finish_reason: Literal["stop", "length"] = "stop"
        self.calls: list[tuple[GenerateRequest, CallContext]] = []
        self.hold = False
        self.withdrawn = 0
        self.entered = asyncio.Event()

    async def generate(self, request: GenerateRequest, ctx: CallContext) -> Completion:
        self.calls.append((request, ctx))
        self.entered.set()
        if self.hold:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.withdrawn += 1
                raise
        return Completion(
            text=self.reply, prompt_tokens=3, completion_tokens=1, ttft_s=0.0, total_s=0.0, finish_reason=self.finish_reason
        )

    async def stream(self, request: GenerateRequest, ctx: CallContext) -> AsyncIterator[Chunk]:
        self.calls.append((request, ctx))
        for piece in self.reply.split():
            yield Chunk(text=piece + " ")
        yield Chunk(completion=Completion(text=self.reply, prompt_tokens=3, completion_tokens=1, ttft_s=0.0, total_s=0.0))


@pytest.fixture
def llm() -> ScriptedLLM:
    return ScriptedLLM()


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def memory_runtime(registry: Registry, llm: ScriptedLLM) -> Runtime:
    return Runtime(MemoryRunStore(), None, client=llm, registry=registry)


@pytest.fixture
async def durable_runtime(tmp_path: Path, registry: Registry, llm: ScriptedLLM) -> AsyncIterator[Runtime]:
    async with Runtime.open(tmp_path, client=llm, registry=registry) as runtime:
        yield runtime
