"""Emulated backend: sleeps per a linear cost model and returns text of the asked length.

Only for scheduler benchmarks and scheduling tests: its name always starts with `emulated:` and
its text is filler, so it must never serve a workflow result. Like llama.cpp it has `slots`
instances taken first-free-first-used, each keeping its last prompt, and a new prompt reuses the
longest prefix it shares with the instance's (prefill is charged only for the rest).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator

from sloflow.llm.types import Chunk, Completion, GenerateRequest, approx_tokens


def _text(request: GenerateRequest) -> str:
    if request.prompt is not None:
        return request.prompt
    return "".join(f"<{m.role}>{m.content}" for m in request.messages or [])


class EmulatedBackend:
    """A fake LLM whose latency follows prefill/decode seconds per token (labelled `emulated:`)."""

    def __init__(
        self,
        label: str,
        *,
        prefill_s_per_token: float,
        decode_s_per_token: float,
        overhead_s: float = 0.0,
        slots: int = 1,
    ) -> None:
        self.name = f"emulated:{label}"
        self.prefill_s_per_token = prefill_s_per_token
        self.decode_s_per_token = decode_s_per_token
        self.overhead_s = overhead_s
        self._cache = [""] * slots  # each instance's last prompt
        self._free: asyncio.Queue[int] | None = None

    @property
    def slots(self) -> int:
        return len(self._cache)

    def cached_prefixes(self) -> list[str]:
        """The prompt each instance still holds (text, where llama.cpp holds tokens)."""
        return list(self._cache)

    def count_tokens(self, text: str) -> int:
        return approx_tokens(text)

    @contextlib.asynccontextmanager
    async def _instance(self) -> AsyncIterator[int]:
        if self._free is None:  # created lazily: it must belong to the running loop
            self._free = asyncio.Queue()
            for i in range(self.slots):
                self._free.put_nowait(i)
        i = await self._free.get()
        try:
            yield i
        finally:
            self._free.put_nowait(i)

    async def stream(self, request: GenerateRequest) -> AsyncIterator[Chunk]:
        async with self._instance() as i:
            start = time.perf_counter()
            text = _text(request)
            shared = len(os.path.commonprefix([text, self._cache[i]]))
            self._cache[i] = text
            prompt = approx_tokens(text)
            fresh = max(prompt - shared // 4, 1)
            await asyncio.sleep(self.overhead_s + fresh * self.prefill_s_per_token)
            ttft = time.perf_counter() - start
            step = max(request.max_tokens // 16, 1)  # a few pieces: one sleep per token would add up
            for done in range(0, request.max_tokens, step):
                n = min(step, request.max_tokens - done)
                await asyncio.sleep(n * self.decode_s_per_token)
                yield Chunk(text="tok " * n)
            total = time.perf_counter() - start
            yield Chunk(
                completion=Completion(
                    text="tok " * request.max_tokens,
                    prompt_tokens=prompt,
                    completion_tokens=request.max_tokens,
                    ttft_s=ttft,
                    total_s=total,
                    finish_reason="length",
                    model=self.name,
                )
            )

    async def generate(self, request: GenerateRequest, *, background: bool = False) -> Completion:
        async for chunk in self.stream(request):
            if chunk.completion is not None:
                return chunk.completion
        raise AssertionError("the emulated stream always ends with a completion")

    async def close(self) -> None:
        self._cache.clear()
