"""A scheduler worker whose backend is a real OpenAI-compatible server on loopback.

The server is llama-cpp-python's (`python -m llama_cpp.server`) over the small test model: it
serves `/v1/completions` as well as chat, and the profiling pass sends raw prompts.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sloflow.llm.types import GenerateRequest, Message
from sloflow.scheduler.live.client import SchedulerClient
from sloflow.scheduler.live.worker import WorkerSpec
from tests.conftest import free_port
from tests.scheduler.live.test_live import cluster, ctx
from tests.serving import serving

pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.model]


@pytest.fixture(scope="module")
def endpoint(test_model_path: Path) -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(test_model_path), "--model_alias", "small",
           "--host", "127.0.0.1", "--port", str(port), "--n_threads", "1", "--n_ctx", "1024", "--verbose", "false"]
    with serving(cmd, f"http://127.0.0.1:{port}/v1/models", timeout_s=60):  # stops the server on exit
        yield f"http://127.0.0.1:{port}/v1"


async def test_openai_worker_is_profiled_and_serves_through_the_scheduler(endpoint: str) -> None:
    spec = WorkerSpec("openai", "small", base_url=endpoint, context_tokens=1024, num_cpus=0, probe_words=(8, 40, 80))
    dispatcher, _ = await cluster(spec)
    (worker,) = await dispatcher.workers.remote()
    p = worker["profile"]
    assert worker["model"] == "small" and p.source == "measured" and p.slots == 1
    # Both fitted from real timings over HTTP: decode from the streamed first-token time.
    assert 0 < p.prefill_s_per_token < 0.1 and 0 < p.decode_s_per_token < 0.5

    client = SchedulerClient(dispatcher)
    ask = [Message(role="user", content="Name a fruit.")]
    out = await client.generate(GenerateRequest(messages=ask, max_tokens=12, temperature=0), ctx())
    assert out.text.strip() and out.model == "small" and out.completion_tokens >= 1
    chunks = [c async for c in client.stream(GenerateRequest(prompt="1, 2, 3,", max_tokens=6, temperature=0), ctx())]
    assert len(chunks) > 2 and chunks[-1].completion is not None
    assert "".join(c.text for c in chunks[:-1]) == chunks[-1].completion.text and chunks[-1].completion.text.strip()
