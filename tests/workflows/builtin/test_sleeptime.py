"""The sleep-time workflows and the learn queue on a real durable runtime (SQLite, LangGraph), with a
scripted LLM: background learn calls, questions with and without a learned context, invalidation,
the queue's order and restarts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from sloflow.errors import NotFound, QuotaExceeded
from sloflow.llm.client import CallContext
from sloflow.llm.types import Completion, GenerateRequest
from sloflow.workflows import Registry, Runtime
from sloflow.workflows.builtin.sleeptime.answer import STEP_BY_STEP_TOKENS, sleeptime
from sloflow.workflows.builtin.sleeptime.learn import learn
from sloflow.workflows.builtin.sleeptime.prompts import MATCH, MATCH_TOKENS, PROGRAM_START, VALUES, answer_request, program_request
from sloflow.workflows.builtin.sleeptime.queue import MIN_HOLD_S, LearnQueue
from sloflow.workflows.contexts import Context, ContextStore, TenantContexts
from sloflow.workflows.records import RunStatus
from sloflow.workflows.run_store import RUNS_FILE
from tests.workflows.conftest import ScriptedLLM

LEARN_REPLY = "SUMMARY: Ann's apples.\nFACTS:\n- apples = 3 * 4 = 12\nQ: How many apples does Ann have?\nA: 3 bags * 4 = 12"
TENANT = "team-a"


@asynccontextmanager
async def served(home: Path, llm: ScriptedLLM, *, queue: bool = True) -> AsyncIterator[tuple[Runtime, ContextStore, LearnQueue]]:
    """A runtime and context store in `home`, with the learn queue started (after resuming runs), as `serve` does."""
    store = ContextStore(home / RUNS_FILE)
    registry = Registry()
    registry.add(learn)
    registry.add(sleeptime)
    async with Runtime.open(home, client=llm, registry=registry, tools_of=lambda t: {"contexts": TenantContexts(store, t or "local")}) as runtime:
        await runtime.resume_unfinished()
        learner = LearnQueue(runtime, store, learn_input={"max_tokens": 48})
        if queue:
            await learner.start()
        try:
            yield runtime, store, learner
        finally:
            await learner.close()
    store.close()


async def learned(store: ContextStore, context_id: str, version: int = 1, timeout_s: float = 20.0, tenant: str = TENANT) -> Context:
    """The context once the pass of `version` has ended (ready or failed)."""
    start = time.monotonic()
    while True:
        c = store.get(context_id, tenant)
        if c.learned is not None and c.learned.version == version and c.learned.status in ("ready", "failed"):
            return c
        assert time.monotonic() - start < timeout_s, c.learned
        await asyncio.sleep(0.02)


async def ask(runtime: Runtime, context_id: str, question: str = "How many apples?", **options: object) -> dict:
    record = await runtime.run("sleeptime", {"context_id": context_id, "question": question, **options}, tenant=TENANT)
    assert record.status is RunStatus.succeeded, record.error
    return record.output


class Matching(ScriptedLLM):
    """Learns as scripted; asked which solved question a question asks the same as, replies `choice`."""

    def __init__(self, reply: str, choice: str = "1") -> None:
        super().__init__(reply)
        self.choice = choice

    async def generate(self, request: GenerateRequest, ctx: CallContext) -> Completion:
        if request.messages[0].content != MATCH:
            return await super().generate(request, ctx)
        self.calls.append((request, ctx))
        return Completion(text=self.choice, prompt_tokens=40, completion_tokens=1, ttft_s=0.0, total_s=0.0)


ANNS = "Ann has 3 bags. Each bag holds 4 apples."
SOLVED = "How many apples does Ann have?"  # the question LEARN_REPLY anticipates; every solve sample ends in 12


async def test_questions_with_and_without_a_learned_context(tmp_path: Path) -> None:
    llm = Matching(LEARN_REPLY)
    async with served(tmp_path, llm, queue=False) as (runtime, store, learner):
        c = store.create(TENANT, ANNS)
        before = await ask(runtime, c.id, SOLVED)
        assert before["used_learned"] is False and before["learned"] is None and "queued" in before["notes"][0]
        request, call = llm.calls[-1]
        assert request.max_tokens == STEP_BY_STEP_TOKENS and "step by step" in request.messages[0].content
        assert call.deadline is not None  # the question is interactive

        await learner.start()
        done = await learned(store, c.id)
        assert done.learned is not None and done.learned.status == "ready"
        content = done.learned.content
        assert content is not None and content.summary and content.facts and content.questions
        learn_calls = [ctx for _, ctx in llm.calls if ctx.workflow == "sleeptime.learn"]
        assert [ctx.stage for ctx in learn_calls] == ["derive", "values", "anticipate", "solve", "solve", "solve"]  # 3 samples by default
        assert all(ctx.deadline is None for ctx in learn_calls)  # background: idle capacity only
        assert all(r.max_tokens == 48 for r, ctx in llm.calls if ctx.workflow == "sleeptime.learn" and ctx.stage != "solve")
        assert content.questions[0] == {"question": SOLVED, "answer": LEARN_REPLY, "result": 12, "agreement": 1.0}

        # The question the learn pass solved: its result, for one short choice call (a deadline call too).
        after = await ask(runtime, c.id, SOLVED)
        assert after["used_learned"] is True and after["reused"] == SOLVED and after["context_version"] == 1
        assert after["answer"].endswith("Answer: 12") and after["output_tokens"] == 1
        request, call = llm.calls[-1]
        assert request.messages[0].content == MATCH and SOLVED in request.messages[1].content
        assert request.max_tokens == MATCH_TOKENS and call.deadline is not None
        baseline = await ask(runtime, c.id, SOLVED, use_learned=False)
        assert baseline["used_learned"] is False and baseline.get("reused") is None and "use_learned=false" in baseline["notes"][0]

        now = store.get(c.id, TENANT)
        assert now.questions == 3 and now.learn_tokens == done.learn_tokens > 0


class Computing(Matching):
    """Learns as scripted, writes `VALUES_REPLY` when asked for a program's first lines, and `arithmetic` to continue one."""

    def __init__(self, arithmetic: str) -> None:
        super().__init__(LEARN_REPLY, choice="0")
        self.arithmetic = arithmetic

    async def generate(self, request: GenerateRequest, ctx: CallContext) -> Completion:
        program = request.answer_prefix.startswith(PROGRAM_START)
        text = VALUES_REPLY if program and request.messages[-1].content == VALUES else self.arithmetic if program else None
        if text is None:
            return await super().generate(request, ctx)
        self.calls.append((request, ctx))
        return Completion(text=text, prompt_tokens=40, completion_tokens=7, ttft_s=0.0, total_s=0.0)


# As the model continues the opened code block: a line that does not evaluate and a guessed answer (both dropped), a derived quantity.
VALUES_REPLY = "bags = 3  # bags\napples_per_bag = 4  # apples\nweight = bags * grams\napples = bags * apples_per_bag\nanswer = apples"
EATS = "If Ann eats 5 apples, how many are left?"


async def test_an_unsolved_question_is_computed_by_a_program_continuing_the_learned_values(tmp_path: Path) -> None:
    llm = Computing("left = apples - 5\nanswer = left\n```")
    async with served(tmp_path, llm) as (runtime, store, _):
        c = store.create(TENANT, ANNS)
        content = (await learned(store, c.id)).learned.content  # type: ignore[union-attr]
        assert content is not None and content.quantities == "bags = 3  # bags\napples_per_bag = 4  # apples\napples = bags * apples_per_bag"
        before = len(llm.calls)
        out = await ask(runtime, c.id, EATS, compute=True)
        (request, call), = llm.calls[before:]  # one short call: no choice (the question brings a value), no step by step
        assert request == program_request(ANNS, content.quantities, EATS)  # the learned lines already written
        assert request.answer_prefix.endswith("apples = bags * apples_per_bag\n")
        assert call.deadline is not None
        assert out["computed"] is True and out["used_learned"] is True and out.get("reused") is None
        assert out["answer"] == f"{content.quantities}\nleft = apples - 5\nanswer = left\nAnswer: 7" and out["output_tokens"] == 7
        await ask(runtime, c.id, EATS, max_tokens=16, compute=True)
        assert llm.calls[-1][0].max_tokens == 16  # the caller's bound, below PROGRAM_TOKENS
        stepwise = await ask(runtime, c.id, EATS)  # compute is opt-in
        assert llm.calls[-1][0] == answer_request(ANNS, EATS) and stepwise["computed"] is False


@pytest.mark.parametrize("arithmetic", ["answer = pears - 5", "import os\nanswer = os.getcwd()", "apples - 5", "answer = 9 ** 9 ** 9"])
async def test_arithmetic_that_does_not_evaluate_falls_back_to_step_by_step(tmp_path: Path, arithmetic: str) -> None:
    llm = Computing(arithmetic)
    async with served(tmp_path, llm) as (runtime, store, _):
        c = store.create(TENANT, ANNS)
        await learned(store, c.id)
        before = len(llm.calls)
        out = await ask(runtime, c.id, EATS, compute=True)
        asked = [r for r, _ in llm.calls[before:]]
        assert len(asked) == 2 and asked[-1] == answer_request(ANNS, EATS)
        assert out["computed"] is False and out["output_tokens"] == 7 + 1  # the compute call's tokens count too
        assert any("no number that evaluates" in n for n in out["notes"])
        await ask(runtime, c.id, EATS, max_tokens=16, compute=True)
        assert llm.calls[-1][0].max_tokens == 16 - 7  # a bound the caller set covers the compute call


@pytest.mark.parametrize(
    ("question", "choice", "asked_to_choose", "why"),
    [
        ("If Ann eats 5 apples, how many are left?", "1", False, "brings values of its own"),  # 5 is not the context's
        ("What colour are Ann's bags?", "1", False, "similarity at most"),
        (SOLVED, "0", True, "judged none"),  # similar, but the model says it is not the same
    ],
)
async def test_a_question_the_learn_pass_did_not_solve_gets_the_baselines_very_call(
    tmp_path: Path, question: str, choice: str, asked_to_choose: bool, why: str
) -> None:
    llm = Matching(LEARN_REPLY, choice)
    async with served(tmp_path, llm) as (runtime, store, _):
        c = store.create(TENANT, ANNS)
        await learned(store, c.id)
        before = len(llm.calls)
        out = await ask(runtime, c.id, question)
        asked = [r for r, ctx in llm.calls[before:]]
        assert [r.messages[0].content == MATCH for r in asked] == [*([True] if asked_to_choose else []), False]
        assert asked[-1] == answer_request(ANNS, question)  # exactly the step-by-step request of use_learned=false
        assert out["used_learned"] is True and out.get("reused") is None and any(why in n for n in out["notes"])
        assert out["output_tokens"] == len(asked)  # the choice's token counts too
        await ask(runtime, c.id, question, max_tokens=16)
        assert llm.calls[-1][0].max_tokens == 16 - asked_to_choose  # a bound the caller set covers the choice


async def test_a_change_during_a_pass_cancels_it_and_only_the_new_version_is_learned(tmp_path: Path) -> None:
    llm = ScriptedLLM(LEARN_REPLY)
    llm.hold = True  # the first pass's call waits in flight
    async with served(tmp_path, llm) as (runtime, store, learner):
        c = store.create(TENANT, "Ann has 3 bags of 4 apples.")
        await asyncio.wait_for(llm.entered.wait(), 10)
        first_run = store.get(c.id, TENANT).learned.run_id  # type: ignore[union-attr]
        llm.hold = False
        changed, overtaken = store.replace(c.id, TENANT, "Ann has 5 bags of 4 apples.")
        assert overtaken == first_run
        await learner.overtaken(overtaken)
        done = await learned(store, c.id, version=2)
        assert done.learned is not None and done.learned.status == "ready" and done.learned.run_id != first_run
        assert (await runtime.wait(first_run)).status is RunStatus.cancelled  # type: ignore[arg-type]
        assert all("5 bags" in " ".join(m.content for m in r.messages) for r, ctx in llm.calls[1:] if ctx.workflow == "sleeptime.learn")
        out = await ask(runtime, c.id)
        assert out["used_learned"] is True and out["context_version"] == 2


async def test_a_late_pass_of_an_old_version_is_never_used(tmp_path: Path) -> None:
    llm = ScriptedLLM(LEARN_REPLY)
    async with served(tmp_path, llm, queue=False) as (runtime, store, _):
        c = store.create(TENANT, "version one")
        store.replace(c.id, TENANT, "version two")
        # a learn run of version 1 started by hand, after the change: it reads, sees the change, saves nothing
        record = await runtime.run("sleeptime.learn", {"context_id": c.id, "version": 1}, tenant=TENANT)
        assert record.output["superseded"] and not record.output["saved"]
        out = await ask(runtime, c.id)
        assert out["used_learned"] is False and out["context_version"] == 2


async def test_the_queue_learns_the_likeliest_asked_context_first(tmp_path: Path) -> None:
    llm = ScriptedLLM(LEARN_REPLY)
    async with served(tmp_path, llm, queue=False) as (runtime, store, learner):
        plain = store.create(TENANT, "plain")
        asked = store.create(TENANT, "asked twice")
        urgent = store.create(TENANT, "urgent", priority=5)
        for _ in range(2):
            await ask(runtime, asked.id)
        await learner.start()
        for c in (plain, asked, urgent):
            await learned(store, c.id)
    learn_order = [r.messages[-1].content.split("\n", 1)[1] for r, ctx in llm.calls if ctx.workflow == "sleeptime.learn" and ctx.stage == "derive"]
    assert learn_order == ["urgent", "asked twice", "plain"]


async def test_one_tenants_many_contexts_do_not_starve_another_tenants(tmp_path: Path) -> None:
    llm = ScriptedLLM(LEARN_REPLY)
    async with served(tmp_path, llm, queue=False) as (runtime, store, learner):
        busy = [store.create("busy", f"busy {i}", priority=9) for i in range(3)]
        quiet = store.create(TENANT, "quiet")
        await learner.start()
        for c in busy:
            await learned(store, c.id, tenant="busy")
        await learned(store, quiet.id)
    order = [r.messages[-1].content.split("\n", 1)[1] for r, ctx in llm.calls if ctx.workflow == "sleeptime.learn" and ctx.stage == "derive"]
    assert order[0].startswith("busy") and order[1] == "quiet"  # its turn comes second, not after every likelier context of "busy"


class QuotaLLM(ScriptedLLM):
    """Refuses the first learn call of tenant `over` as its token quota would, then answers."""

    def __init__(self, reply: str, over: str, retry_after_s: float) -> None:
        super().__init__(reply)
        self.over, self.retry_after_s = over, retry_after_s
        self.refused_at: float | None = None
        self.served_at: dict[str, float] = {}  # tenant -> when its first learn call was served

    async def generate(self, request: GenerateRequest, ctx: CallContext) -> Completion:
        if ctx.tenant == self.over and self.refused_at is None:
            self.refused_at = time.monotonic()
            raise QuotaExceeded(f"tenant {ctx.tenant!r} has used its LLM tokens per minute", retry_after_s=self.retry_after_s)
        self.served_at.setdefault(ctx.tenant or "", time.monotonic())
        return await super().generate(request, ctx)


async def test_a_pass_over_its_tenants_token_quota_waits_and_retries_while_other_tenants_go_on(tmp_path: Path) -> None:
    llm = QuotaLLM(LEARN_REPLY, over="busy", retry_after_s=0.0)  # the queue still waits MIN_HOLD_S: no busy loop
    async with served(tmp_path, llm, queue=False) as (runtime, store, learner):
        busy = store.create("busy", "busy", priority=9)
        quiet = store.create(TENANT, "quiet")
        await learner.start()
        done = await learned(store, busy.id, tenant="busy")
        assert done.learned is not None and done.learned.status == "ready"  # retried, not failed
        await learned(store, quiet.id)
    assert llm.refused_at is not None
    assert llm.served_at[TENANT] < llm.served_at["busy"]  # the other tenant did not wait for it
    assert llm.served_at["busy"] - llm.refused_at >= MIN_HOLD_S * 0.95
    assert sum(ctx.tenant == "busy" for _, ctx in llm.calls) == 6  # derive, values, anticipate and 3 solve samples once each, after the wait


async def test_queued_and_running_passes_survive_a_restart(tmp_path: Path) -> None:
    waiting = ScriptedLLM(LEARN_REPLY)
    waiting.hold = True
    async with served(tmp_path, waiting) as (runtime, store, _):
        running = store.create(TENANT, "running when the process stops")
        await asyncio.wait_for(waiting.entered.wait(), 10)
        queued = store.create(TENANT, "still queued when the process stops")
        assert store.get(queued.id, TENANT).learned.status == "queued"  # type: ignore[union-attr]
    async with served(tmp_path, ScriptedLLM(LEARN_REPLY)) as (runtime, store, _):
        for c in (running, queued):
            done = await learned(store, c.id)
            assert done.learned is not None and done.learned.status == "ready" and done.text == c.text


async def test_a_question_about_an_unknown_or_another_tenants_context_is_refused_at_submission(tmp_path: Path) -> None:
    async with served(tmp_path, ScriptedLLM(), queue=False) as (runtime, store, _):
        theirs = store.create("team-b", "not yours")
        for context_id in (theirs.id, "0" * 32):
            with pytest.raises(NotFound, match="no context"):
                await runtime.start("sleeptime", {"context_id": context_id, "question": "q"}, tenant=TENANT)
        assert store.get(theirs.id, "team-b").questions == 0
