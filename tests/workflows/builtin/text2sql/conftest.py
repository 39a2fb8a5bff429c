"""Text-to-SQL fixtures: a scripted LLM that writes given SQL, spider dev databases copied per test."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from sloflow.llm.client import CallContext
from sloflow.llm.types import Chunk, Completion, GenerateRequest
from sloflow.retrieval.databases import DatabaseRegistry
from sloflow.retrieval.document_index import IndexRegistry
from sloflow.retrieval.sources import SourceRegistry
from tests.conftest import SHARED_DATA

SPIDER = SHARED_DATA / "text2sql" / "spider19-dev"


def _is_revision(request: GenerateRequest) -> bool:
    return bool(request.messages) and "A previous query was" in request.messages[-1].content


class SqlWriter:
    """An `LLMClient` that answers candidates, revisions and linking from scripts; records every call."""

    def __init__(
        self,
        candidate: Callable[[int], str],
        revision: str = "SELECT 1",
        tables: list[str] | None = None,
        delay_s: float = 0.0,
        revision_delay_s: float | None = None,
    ) -> None:
        self.candidate = candidate
        self.revision = revision
        self.tables = tables
        self.delay_s = delay_s
        self.revision_delay_s = delay_s if revision_delay_s is None else revision_delay_s
        self.calls: list[tuple[GenerateRequest, CallContext]] = []

    def _text(self, request: GenerateRequest) -> str:
        prompt = request.messages[-1].content if request.messages else request.prompt or ""
        if request.json_schema is not None:
            names = request.json_schema["properties"]["tables"]["items"]["enum"]
            return json.dumps({"tables": self.tables if self.tables is not None else names[:1]})
        if _is_revision(request):
            return f"```sql\n{self.revision}\n```"
        n = sum(1 for r, _ in self.calls if r.json_schema is None) - 1
        return f"Here it is:\n```sql\n{self.candidate(n)}\n```"

    async def generate(self, request: GenerateRequest, ctx: CallContext) -> Completion:
        import asyncio

        self.calls.append((request, ctx))
        text = self._text(request)
        delay = self.revision_delay_s if _is_revision(request) else self.delay_s
        if delay:
            await asyncio.sleep(delay)
        return Completion(text=text, prompt_tokens=100, completion_tokens=20, ttft_s=0.0, total_s=delay)

    async def stream(self, request: GenerateRequest, ctx: CallContext) -> AsyncIterator[Chunk]:
        completion = await self.generate(request, ctx)
        yield Chunk(text=completion.text)
        yield Chunk(completion=completion)


def spider_db(name: str) -> Path:
    path = SPIDER / "db" / f"{name}.sqlite"
    if not path.exists():
        pytest.skip(f"shared data missing: {path} (see ../shared/data/README.md)")
    return path


@pytest.fixture
def singer_db(tmp_path: Path) -> Path:
    """A private copy of concert_singer, so a test can check the file never changes."""
    target = tmp_path / "concert_singer.sqlite"
    shutil.copyfile(spider_db("concert_singer"), target)
    return target


@pytest.fixture
def sources(tmp_path: Path, singer_db: Path) -> SourceRegistry:
    registry = SourceRegistry(IndexRegistry(tmp_path / "indexes"), DatabaseRegistry(tmp_path / "databases.json"))
    registry.databases.add("concert_singer", f"sqlite:///{singer_db}")
    return registry
