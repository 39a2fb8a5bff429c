"""stream_rag without a model: trigger policies, cancel rules, reuse, revisions, idle turns, the workflow on a scripted LLM."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from sloflow.errors import Conflict
from sloflow.workflows import Runtime
from sloflow.workflows.builtin.stream_rag.prompts import answer_messages
from sloflow.workflows.builtin.stream_rag.speculation import Result, Speculation, in_layout, top_k
from sloflow.workflows.builtin.stream_rag.triggers import FixedInterval, complete_words, read_query, typed
from sloflow.workflows.builtin.stream_rag.turn import Revision, Turn, TurnIdle, turns
from sloflow.workflows.builtin.stream_rag.workflow import stream_rag
from sloflow.workflows.records import RunStatus


def fired_at(texts: list[str]) -> list[int]:
    policy = FixedInterval()
    return [i for i, t in enumerate(texts) if policy.block(t)]


def test_fixed_interval_fires_after_five_words_then_every_three():
    texts = typed("one two three four five six seven eight nine ten eleven twelve thirteen")
    assert [complete_words(t) for t in texts[:3]] == [1, 2, 3]
    assert fired_at(texts) == [4, 7, 10]  # 5, 8 and 11 words


def test_fixed_interval_fires_at_a_sentence_end_and_not_on_a_word_still_being_typed():
    assert complete_words("What is the capi") == 3
    policy = FixedInterval()
    assert not policy.block("one two three four fiv")  # the fifth word is not complete yet
    assert policy.block("one two three four five ")
    assert not policy.block("one two three four five six ")
    assert policy.block("one two three four five six.")  # a sentence end, before 3 new words
    assert not policy.block("one two three four five six. ")  # no new word since
    policy.reset()
    assert policy.block("one two three four five ")


def test_model_trigger_reads_no_query_or_a_query():
    assert read_query("NO_QUERY") is None and read_query("  no query\n") is None and read_query("") is None
    assert read_query('Query: "capital of France"\nmore') == "capital of France"


def hits(*ids: str) -> list[dict[str, Any]]:
    return [{"chunk_id": f"{i}:0", "doc_id": i, "text": f"about {i}"} for i in ids]


async def test_a_new_speculative_retrieval_cancels_the_one_in_flight_and_reuse_needs_an_identical_top_k():
    spec = Speculation()
    slow = asyncio.Event()

    async def blocked() -> Result:
        await slow.wait()
        return Result("q1", hits("a", "b"), 0.0)

    async def quick() -> Result:
        return Result("q2", hits("a", "b"), 0.0)

    spec.fire(blocked, "q1")
    first = spec.inflight
    await asyncio.sleep(0)
    spec.fire(quick, "q2")
    await asyncio.sleep(0.01)
    assert first is not None and first.cancelled()
    assert spec.counts == {"speculation_fired": 2, "speculation_cancelled": 1}
    assert [r.query for r in spec.results] == ["q2"]
    assert spec.reusable(("a:0", "b:0")) is spec.results[0]
    assert spec.reusable(("b:0", "a:0")) is None  # the same passages in another order is another prompt
    assert spec.reusable(("a:0",)) is None


async def test_an_edit_that_is_not_an_append_cancels_all_speculative_work():
    started: list[str] = []
    hold = asyncio.Event()

    async def prefill(h: list[dict[str, Any]], question: str) -> None:
        started.append(question)
        await hold.wait()

    spec = Speculation(start_prefill=prefill, prefill_system=lambda h: answer_messages(h, "")[0].content)

    async def found() -> Result:
        return Result("q", hits("a"), 0.0)

    async def blocked() -> Result:
        await hold.wait()
        return Result("q", hits("z"), 0.0)

    spec.fire(found, "Which river")
    await asyncio.sleep(0.01)
    assert started == ["Which river"] and spec.prefill is not None
    prefill_task = spec.prefill.task
    spec.fire(blocked, "Which river flows")
    inflight = spec.inflight
    spec.edited()
    await asyncio.sleep(0.01)
    assert inflight is not None and inflight.cancelled() and prefill_task.cancelled()
    assert spec.results == [] and spec.prefill is None
    assert spec.counts["prefill_cancelled"] == 1 and spec.counts["speculation_cancelled"] == 1


async def test_a_changed_guess_cancels_its_prefill_and_a_stable_one_waits_for_agreement():
    hold = asyncio.Event()
    prefills: list[str] = []

    async def prefill(h: list[dict[str, Any]], question: str) -> None:
        prefills.append(h[0]["doc_id"])
        await hold.wait()

    spec = Speculation(stable_after=2, start_prefill=prefill, prefill_system=lambda h: answer_messages(h, "")[0].content)
    for doc in ("a", "b", "b", "c", "c"):
        async def search(doc: str = doc) -> Result:
            return Result(doc, hits(doc), 0.0)

        spec.fire(search, doc)
        await asyncio.sleep(0.01)
    assert prefills == ["b", "c"]  # each after two agreeing results; "c" cancelled "b"'s
    assert spec.counts["prefill_started"] == 2 and spec.counts["prefill_cancelled"] == 1
    assert not await spec.settle(answer_messages(hits("d"), "")[0].content, 1.0)  # another prompt: cancelled, no hit
    assert spec.counts["prefill_cancelled"] == 2


def test_a_prompt_lists_the_passages_it_shares_with_the_last_prefill_first_in_its_order():
    assert top_k(in_layout(hits("c", "a", "b"))) == ("c:0", "a:0", "b:0")  # no layout: rank order
    assert top_k(in_layout(hits("x", "a", "c", "d"), ("d:0", "b:0", "c:0", "a:0"))) == ("d:0", "c:0", "a:0", "x:0")


async def test_each_new_guess_is_prefilled_in_the_layout_of_the_last():
    prefilled: list[tuple[str, ...]] = []

    async def prefill(h: list[dict[str, Any]], question: str) -> None:
        prefilled.append(top_k(h))

    spec = Speculation(start_prefill=prefill, prefill_system=lambda h: answer_messages(h, "")[0].content)
    for guess in (("c", "b", "a"), ("d", "c", "b"), ("e", "b", "a")):
        async def search(guess: tuple[str, ...] = guess) -> Result:
            return Result("q", hits(*guess), 0.0)

        spec.fire(search, "q")
        await asyncio.sleep(0.01)
    assert prefilled == [("c:0", "b:0", "a:0"), ("c:0", "b:0", "d:0"), ("b:0", "e:0", "a:0")]
    assert spec.layout.order == prefilled[-1]
    spec.edited()
    assert spec.layout.order == ()


def test_revisions_out_of_order_duplicate_after_final_or_empty_final_are_refused():
    turn = Turn("r1")
    turn.submit(Revision(revision=0, text="What"))
    turn.submit(Revision(revision=2, text="What is"))  # gaps are fine
    with pytest.raises(Conflict, match="duplicate"):
        turn.submit(Revision(revision=2, text="What is"))
    with pytest.raises(Conflict, match="out of order"):
        turn.submit(Revision(revision=1, text="What"))
    with pytest.raises(Conflict, match="empty"):
        turn.submit(Revision(revision=3, text="  ", is_final=True))
    turn.submit(Revision(revision=3, text="What is it?", is_final=True))
    with pytest.raises(Conflict, match="final input"):
        turn.submit(Revision(revision=4, text="What is it?!"))


async def test_an_abandoned_turn_ends_by_itself():
    with pytest.raises(TurnIdle, match="no input for 0.05 s"):
        await Turn("r2").next(0.05)


# --- the workflow on a scripted LLM and a scripted index ------------------------------------------


class Index:
    """A scripted retriever: the passages of the questions' last capitalised words, or 'misc'."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    async def retrieve(self, index: str, query: str, k: int = 4) -> list[Any]:
        self.queries.append(query)
        names = [w.strip("?.,") for w in query.split() if w[:1].isupper()][1:] or ["misc"]
        return [_Hit(f"{n}:0", n, f"{n} is a place.") for n in names[:k]]


@dataclasses.dataclass
class _Hit:
    chunk_id: str
    doc_id: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@pytest.fixture
def index(memory_runtime: Runtime, registry) -> Index:
    registry.add(stream_rag)
    found = Index()
    memory_runtime.tools = {"retrieve": found.retrieve}
    return found


async def type_turn(runtime: Runtime, input: dict[str, Any], sentence: str, pause_s: float = 0.02) -> Any:
    record = await runtime.start("stream_rag", {"index": "docs", **input})
    texts = typed(sentence)
    for i, text in enumerate(texts):
        turns.open(record.id).submit(Revision(revision=i, text=text, is_final=i == len(texts) - 1))
        await asyncio.sleep(pause_s)
    return await runtime.wait(record.id)


async def test_the_workflow_reuses_an_identical_speculative_result_and_hits_its_prefill(memory_runtime: Runtime, index: Index, llm):
    done = await type_turn(memory_runtime, {}, "Is Paris bigger than the city of Lyon today?")
    assert done.status is RunStatus.succeeded, done.error
    out = done.output
    assert out["reused"] is True and out["prefill_hit"] is True and out["answer"] == "ok"
    assert out["speculation"]["speculation_fired"] >= 2 and out["speculation"]["prefill_started"] >= 1
    assert [h["doc_id"] for h in out["retrieved"]] == ["Paris", "Lyon"]
    (prefill, pctx), (final, fctx) = llm.calls[-2], llm.calls[-1]
    assert pctx.deadline is None and fctx.deadline is not None  # the prefill is background work
    assert prefill.max_tokens == 1 and pctx.prefix_key == fctx.prefix_key  # the final call keys the same worker
    assert prefill.messages[0] == final.messages[0]
    events = memory_runtime.store.events(done.id, 0)
    kinds = [(e.kind, e.stage) for e in events]
    first_token = kinds.index(("token", "answer"))
    assert ("stage_finished", "listen") in kinds[:first_token]  # tokens only after the input was final
    assert all(k != "token" for k, _ in kinds[:first_token])
    assert out["ttft_s"] is not None and out["ttft_s"] >= 0


async def test_speculation_never_changes_the_answer_prompt(memory_runtime: Runtime, index: Index, llm):
    sentence = "Is Paris bigger than the city of Lyon today?"  # Paris, then Lyon joins the guess
    typed_turn = await type_turn(memory_runtime, {}, sentence)
    assert typed_turn.output["prefill_hit"] is True, typed_turn.output
    prefill, final_typed = llm.calls[-2][0], llm.calls[-1][0]
    waiting = await type_turn(memory_runtime, {"speculate": False}, sentence)
    final_waiting = llm.calls[-1][0]
    assert final_waiting.messages == final_typed.messages and prefill.messages[0] == final_typed.messages[0]
    assert typed_turn.output["layout"] == waiting.output["layout"] == ["Paris:0", "Lyon:0"]


async def test_waiting_mode_speculates_nothing_and_a_different_top_k_is_never_reused(memory_runtime: Runtime, index: Index, llm):
    waiting = await type_turn(memory_runtime, {"speculate": False}, "Is Paris bigger than the city of Lyon today?")
    assert waiting.output["speculation"] == {} and waiting.output["reused"] is False
    # the final query, then the prefixes at which typing it would fire (only to lay out its prompt)
    assert index.queries == ["Is Paris bigger than the city of Lyon today?", "Is Paris bigger than the ", "Is Paris bigger than the city of Lyon "]
    edited = await type_turn(memory_runtime, {}, "Is Paris bigger than Lyon or Nice?")
    assert edited.output["reused"] is False  # the final top-k (Paris, Lyon, Nice) was never guessed
    assert any("no speculative" in n for n in edited.output["notes"])


async def test_the_model_triggered_policy_asks_the_llm_and_no_query_fires_no_retrieval(memory_runtime: Runtime, index: Index, llm):
    llm.reply = "NO_QUERY"
    done = await type_turn(memory_runtime, {"trigger": "model"}, "Is Paris bigger than the city of Lyon today?")
    question = done.output["question"]
    assert done.status is RunStatus.succeeded and index.queries[0] == question  # nothing searched before the final query
    assert all(question.startswith(q) for q in index.queries[1:])  # after it, only the layout's replay over its prefixes
    decisions = [r for r, c in llm.calls if c.stage == "listen"]
    assert decisions and "Previous query: (none)" in decisions[0].messages[-1].content


async def test_an_idle_run_ends_cancelled_with_a_clear_status(memory_runtime: Runtime, index: Index):
    record = await memory_runtime.start("stream_rag", {"index": "docs", "idle_s": 0.1})
    turns.open(record.id).submit(Revision(revision=0, text="Is Paris"))
    done = await asyncio.wait_for(memory_runtime.wait(record.id), 5)
    assert done.status is RunStatus.cancelled and done.error["code"] == "turn_idle"


async def test_a_cancelled_run_stops_waiting_for_input_and_its_speculative_work(memory_runtime: Runtime, index: Index, llm):
    llm.hold = True  # the prefill never finishes by itself
    record = await memory_runtime.start("stream_rag", {"index": "docs"})
    for i, text in enumerate(typed("Is Paris bigger than the city of Lyon today?")[:5]):
        turns.open(record.id).submit(Revision(revision=i, text=text))
    await asyncio.wait_for(llm.entered.wait(), 5)  # the guess "Paris" is being prefilled
    await memory_runtime.cancel(record.id)
    done = await asyncio.wait_for(memory_runtime.wait(record.id), 5)
    assert done.status is RunStatus.cancelled and done.error["code"] == "cancelled"
    assert llm.withdrawn == 1
