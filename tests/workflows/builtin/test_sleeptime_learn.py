"""The learn pass's solve stage with scripted LLMs: the majority vote and its tie rule, the baseline's
request reused, samples issued concurrently, and learn tokens counted over every call."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sloflow.llm.client import CallContext
from sloflow.llm.types import Completion, GenerateRequest
from sloflow.workflows.builtin.sleeptime.learn import SAMPLE_TEMPERATURE, majority, solved
from sloflow.workflows.builtin.sleeptime.prompts import STEP_BY_STEP_TOKENS, answer_messages
from sloflow.workflows.records import RunStatus
from tests.workflows.builtin.test_sleeptime import TENANT, served
from tests.workflows.conftest import ScriptedLLM

CONTEXT = "Ann has 3 bags. Each bag holds 4 apples. She gives 2 apples to Bob."
ASKED = "How many apples does Ann have left?"
TOKENS = {"derive": 30, "values": 40, "anticipate": 20, "solve": 100}


class StagedLLM(ScriptedLLM):
    """Answers each learn stage in its own words and token count; solve samples by seed (None: the greedy one)."""

    def __init__(self, solutions: dict[int | None, str], *, concurrent: int | None = None) -> None:
        super().__init__()
        self.solutions = solutions
        self.concurrent = concurrent  # solve calls hold until this many are in flight at once
        self.in_flight = 0
        self.peak = 0
        self.all_in = asyncio.Event()

    async def generate(self, request: GenerateRequest, ctx: CallContext) -> Completion:
        self.calls.append((request, ctx))
        text = {
            "derive": "SUMMARY: Ann's apples.\nFACTS:\n- apples = 3 * 4 = 12",
            "values": "bags = 3\napples = bags * 4  # apples\nleft = apples - given\nanswer = apples",  # `given` is never assigned
            "anticipate": f"Q: {ASKED}\nQ: How many apples does Bob get?\nQ: How many bags",  # the last one cut off
            "answer": "Answer: 10",
        }.get(ctx.stage or "", "")
        if ctx.stage == "solve":
            text = self.solutions[request.seed]
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            if self.concurrent is not None:
                if self.in_flight == self.concurrent:
                    self.all_in.set()
                await asyncio.wait_for(self.all_in.wait(), 5)  # times out if the samples were issued one by one
            self.in_flight -= 1
        tokens = TOKENS.get(ctx.stage or "", 1)
        return Completion(text=text, prompt_tokens=3, completion_tokens=tokens, ttft_s=0.0, total_s=0.0, finish_reason="stop")


async def _learn(tmp_path: Path, llm: StagedLLM, **options: object) -> dict:
    async with served(tmp_path, llm, queue=False) as (runtime, store, _):
        c = store.create(TENANT, CONTEXT)
        record = await runtime.run("sleeptime.learn", {"context_id": c.id, "version": 1, **options}, tenant=TENANT)
        assert record.status is RunStatus.succeeded, record.error
        assert record.output["saved"]
        stored = store.get(c.id, TENANT)
        assert stored.learn_tokens == record.output["learn_tokens"]  # what the amortised cost is measured from
        return record.output


def test_the_majority_final_number_wins_and_ties_go_to_the_greedy_sample() -> None:
    assert majority([10.0, 12.0, 12.0]) == (1, 2 / 3)  # the first sample that agrees with the majority
    assert majority([10.0, 11.0, 12.0]) == (0, 1 / 3)  # all differ: the greedy sample's
    assert majority([None, 11.0, 12.0]) == (1, 1 / 3)  # the greedy sample gave no number: the first that did
    assert majority([10.0, 12.0, 12.0, 10.0]) == (0, 0.5)  # 2 against 2: the greedy sample's side
    assert majority([12.0, 12.0000001, 10.0]) == (0, 2 / 3)  # equal numbers, whatever their rounding
    assert majority([None, None]) is None and majority([7.0]) == (0, 1.0)


def test_a_solved_question_keeps_the_working_of_an_agreeing_sample() -> None:
    answers = ["3 * 4 = 12\n12 - 1 = 11\nAnswer: 11", "3 * 4 = 12\n12 - 2 = 10\nAnswer: 10", "12 - 2 = 10\nAnswer: $10"]
    assert solved(ASKED, answers) == {"question": ASKED, "answer": "3 * 4 = 12\n12 - 2 = 10", "result": 10.0, "agreement": 0.667}
    assert solved(ASKED, ["I cannot tell.", "Nor can I."]) == {"question": ASKED}  # no number: kept as a likely question


async def test_solve_asks_the_baseline_request_greedy_first_then_seeded_samples(tmp_path: Path) -> None:
    llm = StagedLLM({None: "12 - 2 = 10\nAnswer: 10", 1: "12 - 1 = 11\nAnswer: 11", 2: "Answer: 10"})
    out = await _learn(tmp_path, llm)
    solve = [r for r, ctx in llm.calls if ctx.stage == "solve"]
    assert len(solve) == 3 and all(r.messages == answer_messages(CONTEXT, ASKED) for r in solve)  # the likeliest question only
    assert all(r.max_tokens == STEP_BY_STEP_TOKENS for r in solve)
    assert [(r.temperature, r.seed) for r in solve] == [(0.0, None), (SAMPLE_TEMPERATURE, 1), (SAMPLE_TEMPERATURE, 2)]
    first, second = out["questions"]
    assert first == {"question": ASKED, "answer": "12 - 2 = 10", "result": 10.0, "agreement": 0.667}
    assert second == {"question": "How many apples does Bob get?"}  # anticipated, not solved (solve_n = 1)

    # The greedy sample is the very call the `sleeptime` workflow makes without a learned context.
    async with served(tmp_path / "baseline", llm, queue=False) as (runtime, store, _):
        c = store.create(TENANT, CONTEXT)
        await runtime.run("sleeptime", {"context_id": c.id, "question": ASKED, "use_learned": False}, tenant=TENANT)
    baseline, ctx = llm.calls[-1]
    assert ctx.workflow == "sleeptime" and baseline == solve[0]


async def test_the_samples_of_every_solved_question_are_in_flight_together(tmp_path: Path) -> None:
    solutions = {None: "Answer: 10", 1: "Answer: 10", 2: "Answer: 9", 3: "Answer: 9"}
    llm = StagedLLM(solutions, concurrent=8)  # 2 questions x 4 samples
    out = await _learn(tmp_path, llm, solve_n=2, samples=4)
    assert llm.peak == 8
    assert [q["result"] for q in out["questions"]] == [10.0, 10.0]  # 2 against 2: the greedy sample's side


async def test_learn_tokens_add_up_over_every_call_and_every_sample(tmp_path: Path) -> None:
    llm = StagedLLM({None: "Answer: 10", 1: "Answer: 10", 2: "Answer: 10", 3: "Answer: 10", 4: "Answer: 10"})
    out = await _learn(tmp_path, llm, solve_n=2, samples=5)
    assert sum(ctx.stage == "solve" for _, ctx in llm.calls) == 10
    assert out["learn_tokens"] == TOKENS["derive"] + TOKENS["values"] + TOKENS["anticipate"] + 10 * TOKENS["solve"]
    assert out["quantities"] == "bags = 3\napples = bags * 4  # apples"  # only the lines that evaluate; no guessed answer
    none = await _learn(tmp_path / "none", StagedLLM({}), solve_n=0)
    assert none["learn_tokens"] == TOKENS["derive"] + TOKENS["values"] + TOKENS["anticipate"]
    assert all("result" not in q for q in none["questions"])
