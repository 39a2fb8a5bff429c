"""The embedded llama.cpp backend, on the real (small) test model."""

from __future__ import annotations

import asyncio
import json

import pytest

from sloflow.errors import InvalidRequest
from sloflow.llm import GenerateRequest, Message
from sloflow.llm.embedded import PREFILL_CHUNK, EmbeddedBackend

ASK = [Message(role="user", content="Name three colours of the rainbow.")]


async def test_generate_reports_text_tokens_and_timings(small_llm: EmbeddedBackend) -> None:
    out = await small_llm.generate(GenerateRequest(messages=ASK, max_tokens=24, temperature=0))
    assert out.text.strip()
    assert out.prompt_tokens > 5
    assert 0 < out.completion_tokens <= 24
    assert 0 < out.ttft_s <= out.total_s
    assert out.model == "smollm2-135m"


async def test_raw_prompt_and_length_limit(small_llm: EmbeddedBackend) -> None:
    out = await small_llm.generate(GenerateRequest(prompt="1, 2, 3, 4,", max_tokens=5, temperature=0))
    assert out.completion_tokens == 5
    assert out.finish_reason == "length"


async def test_json_schema_constrains_output(small_llm: EmbeddedBackend) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    out = await small_llm.generate(
        GenerateRequest(
            messages=[Message(role="user", content="Give a city and its population as JSON.")],
            max_tokens=64,
            temperature=0,
            json_schema=schema,
        )
    )
    assert out.text.lstrip().startswith("{")  # the grammar holds from the first token
    if out.finish_reason == "length":  # cut by max_tokens: said so, and nothing more to check
        assert out.completion_tokens == 64
        return
    doc = json.loads(out.text)
    assert set(doc) == {"city", "population"}
    assert isinstance(doc["city"], str) and isinstance(doc["population"], int)


async def test_stop_sequence_cuts_the_output(small_llm: EmbeddedBackend) -> None:
    # The grammar forces a comma after the first integer, whatever the model picks, so the stop
    # sequence must end the output there.
    schema = {"type": "array", "items": {"type": "integer"}, "minItems": 3}
    request = GenerateRequest(prompt="Three numbers: ", max_tokens=24, temperature=0, json_schema=schema, stop=[","])
    out = await small_llm.generate(request)
    assert out.finish_reason == "stop" and out.completion_tokens < 24
    assert "," not in out.text and out.text.lstrip().startswith("[")


async def test_stream_pieces_add_up_to_the_completion(small_llm: EmbeddedBackend) -> None:
    req = GenerateRequest(messages=ASK, max_tokens=32, temperature=0)
    pieces, final = [], None
    async for chunk in small_llm.stream(req):
        assert final is None, "the completion is the last chunk"
        if chunk.completion is not None:
            final = chunk.completion
        else:
            pieces.append(chunk.text)
    assert final is not None
    assert "".join(pieces) == final.text
    assert len(pieces) > 1 and 0 < final.completion_tokens <= 32
    assert final.finish_reason == "stop" or final.completion_tokens == 32


async def test_prompt_longer_than_context_is_a_clear_error(small_llm: EmbeddedBackend) -> None:
    with pytest.raises(InvalidRequest):
        await small_llm.generate(GenerateRequest(prompt="word " * 5000, max_tokens=4))
    # The backend keeps serving afterwards.
    out = await small_llm.generate(GenerateRequest(prompt="Hello", max_tokens=2))
    assert out.completion_tokens > 0


def test_request_needs_exactly_one_input() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        GenerateRequest(prompt="a", messages=ASK)
    with pytest.raises(ValueError, match="exactly one"):
        GenerateRequest()


async def test_qwen_serving_model_answers_sql(tmp_path) -> None:
    from sloflow.llm.models import is_available

    if not is_available("qwen2.5-coder-1.5b"):
        pytest.skip("qwen2.5-coder-1.5b is not installed; `make models` installs it")
    from sloflow.config import get_settings

    backend = EmbeddedBackend("qwen2.5-coder-1.5b", models_dir=get_settings().home / "models", threads=2, context_tokens=1024)
    try:
        out = await backend.generate(
            GenerateRequest(
                messages=[Message(role="user", content="Write one SQLite query counting the rows of table orders. Only SQL.")],
                max_tokens=40,
                temperature=0,
            )
        )
        assert "select" in out.text.lower() and out.completion_tokens > 0
    finally:
        await backend.close()


async def test_a_call_cancelled_twice_frees_its_instance_only_after_its_thread_stops(small_llm: EmbeddedBackend) -> None:
    # The client's hang-up and the deadline can both cancel one call; the second cancellation used
    # to hand the llama.cpp instance to the next call while the first still decoded on it (segfault).
    long = GenerateRequest(prompt="Count from one to one thousand: one, two,", max_tokens=400, ignore_eos=True)
    for _ in range(3):
        task = asyncio.create_task(small_llm.generate(long))
        await asyncio.sleep(0.3)
        task.cancel()
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        out = await small_llm.generate(GenerateRequest(prompt="Hello", max_tokens=4))
        assert out.completion_tokens > 0

    async def consume() -> None:
        async for _ in small_llm.stream(long):
            pass

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    consumer.cancel()
    await asyncio.sleep(0)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert (await small_llm.generate(GenerateRequest(prompt="Hi", max_tokens=4))).completion_tokens > 0


async def test_a_call_cancelled_inside_a_long_prompt_stops_at_once_and_leaves_the_instance_sound(small_llm: EmbeddedBackend) -> None:
    """A preempted background call must not hold its instance until its whole prompt is evaluated."""
    short = GenerateRequest(messages=ASK, max_tokens=12, temperature=0)
    long = GenerateRequest(messages=[Message(role="user", content="plums and figs are fruit. " * 250)], max_tokens=4, temperature=0)
    call = asyncio.ensure_future(small_llm.generate(long))
    await asyncio.sleep(0.2)  # well inside the prompt's evaluation (seconds of it)
    start = asyncio.get_running_loop().time()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert asyncio.get_running_loop().time() - start < 0.5
    # The same instance still serves a whole call: its prompt read anew, tokens decoded, a finish reason.
    after = await small_llm.generate(short)
    assert after.prompt_tokens > 0 and 0 < after.completion_tokens <= 12 and after.finish_reason in ("stop", "length")


async def test_a_background_call_leaves_the_deadline_calls_cached_prefix_in_place(small_llm: EmbeddedBackend) -> None:
    """Background calls run on an instance of their own, so the next deadline call finds its prefix cached."""
    await small_llm.generate(GenerateRequest(messages=ASK, max_tokens=4, temperature=0))
    cached = small_llm.cached_prefixes()
    other = GenerateRequest(messages=[Message(role="user", content="Count the apples: one, two, three.")], max_tokens=4)
    out = await small_llm.generate(other, background=True)
    assert out.completion_tokens > 0
    assert small_llm.cached_prefixes() == cached
    # Two background calls at once: the second takes a regular instance rather than waiting.
    both = await asyncio.gather(*(small_llm.generate(other, background=True) for _ in range(2)))
    assert all(b.completion_tokens > 0 for b in both)


async def test_a_prefill_stopped_part_way_keeps_the_chunks_it_finished(small_llm: EmbeddedBackend) -> None:
    """A cancelled call leaves its finished prompt chunks cached, so the same prefix is not evaluated again."""
    await small_llm.generate(GenerateRequest(prompt="Hi", max_tokens=1))  # the cache holds a short unrelated prompt
    long = GenerateRequest(messages=[Message(role="user", content="pears and dates are fruit. " * 250)], max_tokens=4)
    tokens = small_llm.prompt_tokens(long)
    call = asyncio.ensure_future(small_llm.generate(long))
    loop = asyncio.get_running_loop()
    until = loop.time() + 60
    while len(small_llm.cached_prefixes()[0]) < 3 * PREFILL_CHUNK and loop.time() < until and not call.done():
        await asyncio.sleep(0.01)
    seen = len(small_llm.cached_prefixes()[0])
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    kept = small_llm.cached_prefixes()[0]
    assert len(kept) >= seen >= PREFILL_CHUNK
    assert kept == tokens[: len(kept)]


async def test_a_background_call_says_whether_it_ran_apart_from_the_shared_instances(small_llm: EmbeddedBackend) -> None:
    """The worker keeps a slot's cached-prefix claim only when a background call left that cache alone."""
    other = GenerateRequest(messages=[Message(role="user", content="Count the pears: one, two.")], max_tokens=4)
    assert (await small_llm.generate(other, background=True)).apart
    assert not (await small_llm.generate(other)).apart
    # The background instance serves one call at a time: the second of two at once took a shared one.
    both = await asyncio.gather(*(small_llm.generate(other, background=True) for _ in range(2)))
    assert sorted(b.apart for b in both) == [False, True]


async def test_the_background_instance_is_loaded_only_by_the_first_background_call(test_model_path, models_dir) -> None:
    from tests.conftest import TEST_MODEL

    backend = EmbeddedBackend(TEST_MODEL, models_dir=models_dir, threads=1, context_tokens=512)
    try:
        request = GenerateRequest(prompt="1, 2, 3,", max_tokens=2)
        assert not (await backend.generate(request)).apart and backend._background is None
        first, second = await asyncio.gather(backend.generate(request, background=True), backend.generate(request, background=True))
        assert sorted([first.apart, second.apart]) == [False, True] and backend._background is not None
    finally:
        await backend.close()


async def test_a_lending_backend_computes_on_an_idle_siblings_core_and_gives_it_back(test_model_path, models_dir) -> None:
    """Two one-thread backends that lend idle cores: a call alone ends on two threads, calls at once
    and streamed ones complete, and closing leaves the host's pool."""
    import llama_cpp

    from tests.conftest import TEST_MODEL
    from tests.llm.test_spare_cores import load_of

    a, b = (EmbeddedBackend(TEST_MODEL, models_dir=models_dir, threads=1, context_tokens=512, lend_idle_cores=True) for _ in range(2))
    for backend in (a, b):
        assert backend.spare_cores is not None
        backend.spare_cores._load = load_of(0.0)  # a quiet host, whatever else runs beside the test
        backend.spare_cores.cores = 2
    request = GenerateRequest(prompt="1, 2, 3,", max_tokens=6, ignore_eos=True)

    def last_batch_threads(backend: EmbeddedBackend) -> int:
        return llama_cpp.llama_n_threads(backend._instances[0]._ctx.ctx)

    try:
        alone = await a.generate(request)
        assert alone.completion_tokens == 6 and last_batch_threads(a) == 2
        both = await asyncio.gather(a.generate(request), b.generate(request))
        assert [c.completion_tokens for c in both] == [6, 6]
        pieces = [chunk async for chunk in a.stream(request)]
        assert pieces[-1].completion is not None and pieces[-1].completion.completion_tokens == 6
    finally:
        names = [backend.spare_cores.name for backend in (a, b) if backend.spare_cores]
        directory = a.spare_cores.directory if a.spare_cores else None
        await a.close()
        await b.close()
    assert directory is not None and not [p for n in names for p in directory.glob(f"{n}.*")]
