"""The in-process client: a stream closed early closes the backend's stream at once."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sloflow.llm.client import CallContext, DirectClient
from sloflow.llm.types import Chunk, GenerateRequest, Message


class Pieces:
    """A backend whose stream records when its own `finally` ran (where a real one stops decoding)."""

    def __init__(self) -> None:
        self.closed = False

    async def stream(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        try:
            for n in range(10):
                yield Chunk(text=str(n))
        finally:
            self.closed = True


async def test_a_stream_closed_early_closes_the_backend_stream_before_returning() -> None:
    backend = Pieces()
    stream = DirectClient(backend).stream(  # type: ignore[arg-type]
        GenerateRequest(messages=[Message(role="user", content="hi")], max_tokens=8), CallContext(run_id="r", workflow="w", stage="s")
    )
    async for _ in stream:
        break
    await stream.aclose()
    # Left to the garbage collector, the backend's generator would close a loop turn later; an
    # embedded backend closed in that gap (a benchmark's last plan cut short) crashed the process.
    assert backend.closed
