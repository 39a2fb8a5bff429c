"""Measured profiles and the emulated backend they are checked against (in process, no Ray)."""

from __future__ import annotations

import pytest

from sloflow.llm.emulated import EmulatedBackend
from sloflow.llm.types import GenerateRequest
from sloflow.scheduler.call import Call
from sloflow.scheduler.profile import measure_profile


async def test_profiling_pass_recovers_the_speed_of_an_emulated_worker() -> None:
    backend = EmulatedBackend("probe", prefill_s_per_token=0.002, decode_s_per_token=0.02, overhead_s=0.01, slots=2)
    profile = await measure_profile(backend, "probe", slots=2, decode_tokens=16)
    assert profile.source == "measured" and profile.slots == 2
    assert profile.prefill_s_per_token == pytest.approx(0.002, rel=0.35)
    assert profile.decode_s_per_token == pytest.approx(0.02, rel=0.35)
    # Emulated slots do not slow each other down, and the profile says so.
    assert profile.decode_slowdown < 0.2
    call = Call("c", prompt_tokens=400, output_tokens=20, release=0.0)
    assert profile.cost(call) == pytest.approx(0.01 + 400 * 0.002 + 20 * 0.02, rel=0.35)


async def test_emulated_backend_is_labelled_and_reuses_a_cached_prefix() -> None:
    backend = EmulatedBackend("cache", prefill_s_per_token=0.001, decode_s_per_token=0.001)
    shared = "system prompt and evidence " * 60
    cold = await backend.generate(GenerateRequest(prompt=shared + "first question", max_tokens=5))
    warm = await backend.generate(GenerateRequest(prompt=shared + "second question", max_tokens=5))
    assert cold.model == "emulated:cache" and cold.completion_tokens == 5
    assert warm.ttft_s < cold.ttft_s / 3
