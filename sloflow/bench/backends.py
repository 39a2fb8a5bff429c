"""Prefill and decode speed of each installed embedded model at 1 and 2 threads.

Prefill tok/s = prompt tokens / time to first token, on a prompt the model has not cached.
Decode tok/s = (completion tokens - 1) / (total time - time to first token).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

from sloflow.bench.progress import say
from sloflow.config import get_settings
from sloflow.llm.embedded import EmbeddedBackend
from sloflow.llm.models import EMBEDDED_MODELS, is_available
from sloflow.llm.types import GenerateRequest

_WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november".split()


def _prompt(tokens_wanted: int, salt: int) -> str:
    # A salted prefix defeats llama.cpp's prefix cache, so every repetition prefills from scratch.
    words = [f"{salt}:"] + [_WORDS[(i * 7 + salt) % len(_WORDS)] for i in range(tokens_wanted)]
    return " ".join(words) + "\nRepeat the list above."


async def _measure(backend: EmbeddedBackend, reps: int, prompt_tokens: int, decode_tokens: int) -> tuple[float, float]:
    prefill, decode = [], []
    for rep in range(reps):
        out = await backend.generate(GenerateRequest(prompt=_prompt(prompt_tokens, rep + 100), max_tokens=1))
        prefill.append(out.prompt_tokens / out.ttft_s)
        out = await backend.generate(
            GenerateRequest(prompt="Count from 1 to 500, separated by commas: 1, 2, 3,", max_tokens=decode_tokens)
        )
        if out.completion_tokens > 1:
            decode.append((out.completion_tokens - 1) / (out.total_s - out.ttft_s))
    return statistics.median(prefill), statistics.median(decode)


def main(quick: bool = False, args: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="sloflow bench backends")
    parser.add_argument("--models", nargs="*", default=list(EMBEDDED_MODELS), help="embedded model names")
    opts = parser.parse_args(args or [])
    settings = get_settings()
    reps, prompt_tokens, decode_tokens = (1, 128, 32) if quick else (3, 512, 128)
    figures: dict = {"quick": quick, "prompt_tokens": prompt_tokens, "decode_tokens": decode_tokens}
    for name in opts.models:
        if not is_available(name):
            say(f"{name}: not installed, skipped (make models installs qwen2.5-coder-1.5b)")
            continue
        for threads in (1, 2):
            backend = EmbeddedBackend(name, models_dir=settings.home / "models", threads=threads, context_tokens=2048)
            pre, dec = asyncio.run(_measure(backend, reps, prompt_tokens, decode_tokens))
            asyncio.run(backend.close())
            say(f"{name} threads={threads}: prefill {pre:.0f} tok/s, decode {dec:.1f} tok/s")
            suffix = "" if threads == 2 else "_1t"
            figures[f"{name}_prefill_tok_s{suffix}"] = round(pre, 1)
            figures[f"{name}_decode_tok_s{suffix}"] = round(dec, 1)
    return figures
