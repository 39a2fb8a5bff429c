"""Measured profiles and the emulated backend they are checked against (in process, no Ray)."""

from __future__ import annotations

import pytest

from sloflow.llm.emulated import EmulatedBackend
from sloflow.llm.types import GenerateRequest
from sloflow.scheduler.policies.call import Call
from sloflow.scheduler.policies.profile import WorkerProfile, measure_profile, typical_speed


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


def test_decode_cost_grows_with_the_context_it_attends_to() -> None:
    from sloflow.scheduler.policies.profile import WorkerProfile

    flat = WorkerProfile("flat", 0.001, 0.01)
    attending = WorkerProfile("attending", 0.001, 0.01, decode_s_per_context_token=1e-5)
    assert flat.solo_s(100, 20) == pytest.approx(100 * 0.001 + 20 * 0.01)
    # 20 output tokens decoded at a mean context of 100 + 20 / 2 tokens.
    assert attending.solo_s(100, 20) == pytest.approx(100 * 0.001 + 20 * (0.01 + 1e-5 * 110))
    assert attending.solo_s(100, 20, cached_tokens=60) < attending.solo_s(100, 20)


async def test_ignore_eos_decodes_exactly_max_tokens(small_llm) -> None:  # type: ignore[no-untyped-def]
    # A prompt after which the model would normally end at once.
    request = GenerateRequest(prompt="Reply with one word. Question: is water wet? Answer: yes.", max_tokens=40, ignore_eos=True)
    out = await small_llm.generate(request)
    assert out.completion_tokens == 40 and out.finish_reason == "length"


def test_workflows_size_work_to_the_median_worker_the_slower_of_two() -> None:
    fast = WorkerProfile("fast", prefill_s_per_token=0.001, decode_s_per_token=0.01)
    slow = WorkerProfile("slow", prefill_s_per_token=0.004, decode_s_per_token=0.05)
    assert typical_speed([]) is None
    two = typical_speed([fast, slow])
    assert two is not None and (two.prefill_tok_s, two.decode_tok_s) == pytest.approx((250.0, 20.0))
    three = typical_speed([fast, slow, fast])
    assert three is not None and (three.prefill_tok_s, three.decode_tok_s) == pytest.approx((1000.0, 100.0))
