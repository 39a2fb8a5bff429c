"""Worker profiles and the cost model t(call, worker): measured at worker start, or from GPU tables.

A profile says how fast a worker prefills and decodes, how many calls it runs at once (slots),
how much context one call may use and how many KV-cache tokens all running calls may share. The
cost model is linear in tokens, except that each decoded token also costs a little per token
already in context (attention reads the whole KV cache: on a 1-thread CPU SmolLM2-135M decodes
about 20% slower at 300 tokens of context than at 20); running calls share the worker by
processor sharing, each slowed by `decode_slowdown` per extra running call (measured by running
`slots` calls at once).
"""

from __future__ import annotations

import ast
import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sloflow.errors import ConfigError
from sloflow.llm.backend import Backend
from sloflow.llm.types import GenerateRequest, Speed
from sloflow.scheduler.policies.call import Call


@dataclass(frozen=True, slots=True)
class WorkerProfile:
    """How fast one worker is and how much it can hold; `source` says where the numbers came from."""

    name: str
    prefill_s_per_token: float
    decode_s_per_token: float
    overhead_s: float = 0.0
    decode_slowdown: float = 0.0  # fractional slowdown of every running call per extra running call
    slots: int = 1
    context_tokens: int = 4096  # longest prompt + output one call may have
    kv_tokens: int = 0  # KV-cache tokens shared by all running calls; 0 means slots * context_tokens
    source: str = "declared"
    decode_s_per_context_token: float = 0.0  # extra decode seconds per output token per token in context

    @property
    def kv_capacity(self) -> int:
        return self.kv_tokens or self.slots * self.context_tokens

    def solo_s(self, prompt_tokens: int, output_tokens: int, cached_tokens: int = 0) -> float:
        """Seconds for a call running alone; `cached_tokens` of the prompt need no prefill."""
        fresh = max(prompt_tokens - cached_tokens, 1)
        # Each output token attends to the prompt and the output so far: on average prompt + output / 2.
        per_token = self.decode_s_per_token + self.decode_s_per_context_token * (prompt_tokens + output_tokens / 2)
        return self.overhead_s + fresh * self.prefill_s_per_token + output_tokens * per_token

    def slowdown(self, running: int) -> float:
        """Factor by which each call slows when `running` calls share the worker."""
        return 1.0 + self.decode_slowdown * max(running - 1, 0)

    def throughput(self, running: int) -> float:
        """Solo-seconds of work completed per second with `running` calls in flight."""
        return max(running, 1) / self.slowdown(running)

    def cost(self, call: Call, cached_tokens: int = 0, running: int = 1) -> float:
        """t(call, worker): expected seconds for `call` with `running` calls in flight (itself included)."""
        return self.solo_s(call.prompt_tokens, call.output_tokens, cached_tokens) * self.slowdown(running)

    def fits(self, call: Call) -> bool:
        """Whether one call of this size can ever run here."""
        return call.kv_tokens <= min(self.context_tokens, self.kv_capacity)


# --- GPU tables (HEXGEN-Text2SQL's measured vLLM latencies of Llama-3.1-70B) -----------------------

# The tables hold single-call latencies only; what a card holds at once is derived from its memory:
# 4-bit weights of a 70B model (~37 GB with activations) leave 90% of memory minus that for a 4-bit
# KV cache of 80 KiB per token (80 layers x 8 KV heads x 128 dims x 2 x 0.5 bytes), the w4/kv4 set-up
# of the authors' simulator. The fitted decode speeds (39 ms/token on A100, 56-60 ms on the 48 GB
# cards) agree with 4-bit weights on one card.
GPU_MEMORY_GB = {"A100": 80.0, "A6000": 48.0, "L40S": 48.0}
_WEIGHTS_GB = 37.0
_KV_BYTES_PER_TOKEN = 80 * 8 * 128 * 2 // 2
# Batched decode of long contexts also reads every sequence's KV cache each step: about 5% per extra
# sequence at ~11k tokens on these cards (an assumption; the tables do not measure batching).
GPU_DECODE_SLOWDOWN = 0.05
GPU_SLOTS = 16


def _least_squares(rows: Sequence[Sequence[float]], ys: Sequence[float]) -> list[float]:
    import numpy as np

    coef, *_ = np.linalg.lstsq(np.asarray(rows, dtype=float), np.asarray(ys, dtype=float), rcond=None)
    return [float(c) for c in coef]


def fit_linear(points: Sequence[tuple[int, int, float]]) -> tuple[float, float, float]:
    """Fit seconds = overhead + a * prompt + b * output; drop the intercept if it comes out negative."""
    overhead, a, b = _least_squares([(1, p, o) for p, o, _ in points], [s for _, _, s in points])
    if overhead < 0:
        overhead = 0.0
        a, b = _least_squares([(p, o) for p, o, _ in points], [s for _, _, s in points])
    return overhead, max(a, 1e-9), max(b, 1e-9)


def typical_speed(profiles: Sequence[WorkerProfile]) -> Speed | None:
    """The median worker's prefill and decode speed, the slower one of an even count (None without
    workers): what a workflow sizing its calls to the time left should expect of whichever worker
    takes them, erring towards the slower."""
    if not profiles:
        return None
    prefill = sorted(p.prefill_s_per_token for p in profiles)[len(profiles) // 2]
    decode = sorted(p.decode_s_per_token for p in profiles)[len(profiles) // 2]
    return Speed(prefill_tok_s=1.0 / max(prefill, 1e-9), decode_tok_s=1.0 / max(decode, 1e-9))


def gpu_table_profile(gpu: str, data_dir: Path) -> WorkerProfile:
    """A profile fitted to the measured table of `gpu` (A100, A6000 or L40S) in traces/gpu_latency."""
    if gpu not in GPU_MEMORY_GB:
        raise ConfigError(f"unknown GPU {gpu!r}; the tables cover {sorted(GPU_MEMORY_GB)}")
    pairs_file, results_file = data_dir / "requests.txt", data_dir / f"results_{gpu}.txt"
    if not results_file.exists():
        raise ConfigError(f"GPU table {results_file} is missing")
    pairs = [ast.literal_eval(line) for line in pairs_file.read_text().splitlines() if line.strip()]
    # The files hold throughput (calls per second); latency is its inverse.
    latency = [1.0 / float(line) for line in results_file.read_text().splitlines() if line.strip()]
    overhead, a, b = fit_linear([(p, o, s) for (p, o), s in zip(pairs, latency, strict=True)])
    kv = int((0.9 * GPU_MEMORY_GB[gpu] - _WEIGHTS_GB) * 1e9 / _KV_BYTES_PER_TOKEN)
    return WorkerProfile(
        name=gpu,
        prefill_s_per_token=a,
        decode_s_per_token=b,
        overhead_s=overhead,
        decode_slowdown=GPU_DECODE_SLOWDOWN,
        slots=GPU_SLOTS,
        context_tokens=32768,
        kv_tokens=kv,
        source=f"table:{gpu}",
    )


# --- measured profiling pass ------------------------------------------------------------------------

_WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november".split()


def _filler(words: int, salt: int) -> str:
    # A salted start defeats the prompt cache, so every probe prefills from scratch.
    return f"{salt}: " + " ".join(_WORDS[(i * 7 + salt) % len(_WORDS)] for i in range(words))


async def measure_profile(
    backend: Backend,
    name: str,
    *,
    slots: int = 1,
    context_tokens: int = 2048,
    prompt_words: Sequence[int] = (16, 96, 192),
    decode_tokens: int = 24,
) -> WorkerProfile:
    """Fit a profile by timing `backend`: prefill at a few prompt sizes, decode alone at a short and a
    long context (the per-context-token decode cost) and with all slots busy.

    Every probe decodes exactly its `max_tokens` (end-of-sequence ignored) and is run twice, the
    faster run counting: on shared cores a probe is only ever slowed down by others.
    """
    salt = int(time.time() * 1000) % 100000
    await backend.generate(GenerateRequest(prompt=_filler(8, salt), max_tokens=2))  # warm-up: first-call costs
    points: list[tuple[int, int, float]] = []
    for i, words in enumerate(prompt_words):
        # The faster of two runs: on shared cores a probe is only ever slowed down by others.
        runs = [await backend.generate(GenerateRequest(prompt=_filler(words, salt + 10 * i + r), max_tokens=1)) for r in (1, 2)]
        best = min(runs, key=lambda o: o.ttft_s)
        points.append((best.prompt_tokens, 0, best.ttft_s))
    overhead, prefill = _least_squares([(1, p) for p, _, _ in points], [s for _, _, s in points])
    if overhead < 0:  # noise can tilt the line below the origin: refit through it
        overhead, prefill = 0.0, sum(s for *_, s in points) / sum(p for p, *_ in points)

    def decode_request(i: int, context_words: int = 0) -> GenerateRequest:
        lead = _filler(context_words, salt + 70 + i) + "\n" if context_words else ""
        return GenerateRequest(
            prompt=f"{lead}{salt + 50 + i}. Count from 1 to 500, separated by commas: 1, 2, 3,", max_tokens=decode_tokens, ignore_eos=True
        )

    async def per_token(i: int, context_words: int = 0) -> tuple[float, float]:
        """Seconds per decoded token, and the mean context (tokens) it was decoded at."""
        out = await backend.generate(decode_request(i, context_words))
        return (out.total_s - out.ttft_s) / max(out.completion_tokens - 1, 1), out.prompt_tokens + out.completion_tokens / 2

    short = min([await per_token(0), await per_token(1)])
    long = min([await per_token(2, max(prompt_words)), await per_token(3, max(prompt_words))])
    per_context = max((long[0] - short[0]) / max(long[1] - short[1], 1.0), 0.0)
    alone = max(short[0] - per_context * short[1], 1e-9)  # decode seconds per token at an empty context
    slowdown = 0.0
    if slots > 1:
        together = await asyncio.gather(*(per_token(i + 4) for i in range(slots)))
        slowdown = max(sum(t for t, _ in together) / len(together) / short[0] - 1.0, 0.0) / (slots - 1)
    return WorkerProfile(
        name=name,
        prefill_s_per_token=max(prefill, 1e-9),
        decode_s_per_token=alone,
        decode_s_per_context_token=per_context,
        overhead_s=overhead,
        decode_slowdown=slowdown,
        slots=slots,
        context_tokens=context_tokens,
        source="measured",
    )

