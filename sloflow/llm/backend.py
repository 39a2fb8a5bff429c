"""The `Backend` protocol: everything in sloflow that needs an LLM talks to one of these."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from sloflow.llm.types import Chunk, Completion, GenerateRequest


@runtime_checkable
class Backend(Protocol):
    """An LLM that generates text; `name` is the model name reported to clients."""

    name: str

    async def generate(self, request: GenerateRequest, *, background: bool = False) -> Completion:
        """Generate the whole completion; `background` marks a preemptible call with no deadline.

        A backend that runs it apart from the other calls' KV caches says so in `Completion.apart`.
        """
        ...

    def stream(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        """Yield text pieces as they are generated; the last chunk carries the `Completion`."""
        ...

    async def close(self) -> None:
        """Release the model or connection."""
        ...
