"""`gates.fill` and the bank filler on a real SQLite bank: with a scripted client that knows every
clue's answer (the workflow's logic), and with the real small model (properties only)."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from sloflow.llm.client import CallContext, DirectClient
from sloflow.llm.embedded import EmbeddedBackend
from sloflow.llm.types import Completion, GenerateRequest
from sloflow.planners.gates.puzzle import MAX_DIFFICULTY, SOLVE_SAMPLES, Term, domains
from sloflow.workflows.builtin.gates.bank import BANK_FILE, GateBank, server_secret
from sloflow.workflows.builtin.gates.fill import FILL_WORKFLOW
from sloflow.workflows.builtin.gates.filler import GateFiller, fill_runtime
from sloflow.workflows.builtin.gates.stock import CheckedClue, ClueStock
from sloflow.workflows.records import RunStatus


def shift(word: str, by: int) -> str:
    return "".join(chr((ord(c) - 97 + by) % 26 + 97) for c in word)


class Puzzler:
    """Writes each clue as the term shifted one letter on, resolves such clues, and solves gates of them.

    The checker guesses the term second; with `check_ok=False` only fourth, too late. `solves` records each solver answer.
    """

    def __init__(self, check_ok: bool = True, passes: int | None = None, misread_first: bool = False, misread_greedy: bool = False) -> None:
        self.check_ok = check_ok
        self.passes = passes  # checks that pass before every later one fails (None: no limit)
        self.misread_first = misread_first  # the solver does not answer the first clue
        self.misread_greedy = misread_greedy  # ... in its greedy reply only
        self.requests: list[GenerateRequest] = []
        self.writes: list[str] = []
        self.contexts: list[CallContext] = []
        self.solves: list[str] = []

    async def generate(self, request: GenerateRequest, ctx: CallContext) -> Completion:
        self.contexts.append(ctx)
        self.requests.append(request)
        system, user = request.messages[0].content, request.messages[-1].content
        if "write crossword clues" in system:
            term = re.search(r"Answer: (\w+)\.", user).group(1)
            self.writes.append(term)
            text = f"Shifted by one, it reads {shift(term, 1)}"
        elif "solve crossword clues" in system:
            term = shift(re.search(r"reads (\w+)", user).group(1), -1)
            ok = self.check_ok and (self.passes is None or self.passes > 0)
            self.passes = None if self.passes is None else self.passes - 1
            text = f"Decoy, {term.title()}, other" if ok else f"decoy, other, another, {term}"  # only 3 guesses count
        else:
            answers = [shift(r, -1) for r in re.findall(r"reads (\w+)", user)]
            if self.misread_first or (self.misread_greedy and request.temperature == 0):
                answers[0] = "?"  # no answer to the first clue
            word = "".join(a[0] for a in answers)
            self.solves.append(word)
            text = "\n".join(f"{i}. {a}" for i, a in enumerate(answers, 1)) + f"\nWORD: {word}"
        return Completion(text=text, prompt_tokens=20, completion_tokens=len(text.split()) * 2, ttft_s=0.0, total_s=0.0)

    async def stream(self, request, ctx):  # pragma: no cover - gates.fill never streams
        raise NotImplementedError


def solver_requests(llm: Puzzler) -> list[GenerateRequest]:
    return [r for r in llm.requests if "hidden English word" in r.messages[-1].content]


@pytest.fixture
def bank(tmp_path: Path) -> GateBank:
    b = GateBank(tmp_path / BANK_FILE, server_secret(tmp_path))
    yield b
    b.close()


async def test_a_fill_run_banks_a_checked_solved_labelled_gate_and_keeps_no_secret(bank: GateBank) -> None:
    llm = Puzzler()
    runtime = fill_runtime(llm, bank)
    done = await runtime.run(FILL_WORKFLOW, {"letters": 5, "obscurity": "obscure"})
    assert done.status is RunStatus.succeeded, done.error
    out = done.output
    assert out["gate_id"] and out["word"] == "" and out["terms"] == []  # the run keeps no secret
    assert all(c.deadline is None for c in llm.contexts)  # background calls only: idle capacity
    assert len(llm.contexts) == 5 * 2 + 1  # a writer and a checker call per letter, one solver call
    totals = bank.totals()
    assert (totals.attempts, totals.saved) == (1, 1) and totals.generation_tokens == out["generation_tokens"] > 0
    assert out["difficulty"] == 1 and bank.available() == {1: 1}  # the greedy reply solved it
    gate = bank.issue("k1", "chat", 1, ttl_s=60)
    assert gate.id == out["gate_id"] and gate.letters == 5 and len({c.domain for c in gate.clues}) == 5
    assert bank.answer(gate.id, "k1", llm.solves[0]).id == gate.id  # the solver's answer is the gate's


async def test_a_clue_that_fails_its_check_is_retried_then_the_gate_is_dropped(bank: GateBank) -> None:
    llm = Puzzler(check_ok=False)
    done = await fill_runtime(llm, bank).run(FILL_WORKFLOW, {"letters": 4})
    assert done.status is RunStatus.succeeded and done.output["gate_id"] is None
    assert "passed its check" in " ".join(done.output["notes"])
    assert len(llm.contexts) == 4  # letter 1: writer + checker, then another term: writer + checker
    totals = bank.totals()
    assert (totals.attempts, totals.saved) == (1, 0) and totals.generation_tokens > 0  # a dropped gate's tokens still count
    assert bank.available() == {}


async def test_a_dropped_gate_stocks_its_checked_clues_and_a_later_gate_is_built_around_them(bank: GateBank) -> None:
    stock = ClueStock()
    first = await fill_runtime(Puzzler(passes=2), bank, stock).run(FILL_WORKFLOW, {"letters": 5})
    assert first.output["gate_id"] is None and "2 checked clues stocked" in " ".join(first.output["notes"])
    assert len(stock) == 2 and first.output["terms"] == [] and first.output["clues"] == []  # kept in the stock only
    llm = Puzzler()
    second = await fill_runtime(llm, bank, stock).run(FILL_WORKFLOW, {"letters": 5})
    assert second.output["gate_id"] is not None and second.output["stocked"] >= 1
    assert len(llm.writes) == 5 - second.output["stocked"]  # only the letters the stock did not cover were written
    assert len(stock) == 2 - second.output["stocked"]  # a clue a gate took is never shown again


async def test_clues_the_labelling_solver_got_wrong_leave_the_stock_with_the_dropped_gate(bank: GateBank) -> None:
    stock = ClueStock()
    done = await fill_runtime(Puzzler(misread_first=True), bank, stock).run(FILL_WORKFLOW, {"letters": 4})
    assert done.output["gate_id"] is None and not done.output["solved"]
    assert len(stock) == 3  # the three clues it answered right, for later gates
    assert bank.totals().label_tokens == done.output["label_tokens"] > 0


async def test_a_gate_only_a_vote_of_sampled_replies_solves_is_banked_a_level_up(bank: GateBank) -> None:
    llm = Puzzler(misread_greedy=True)
    done = await fill_runtime(llm, bank).run(FILL_WORKFLOW, {"letters": 4})
    assert done.output["gate_id"] is not None and done.output["difficulty"] == 2 and bank.available() == {2: 1}
    solves = solver_requests(llm)
    assert len(solves) == SOLVE_SAMPLES[1]  # the greedy reply, then samples until the level-2 vote
    assert solves[0].temperature == 0 and all(r.temperature > 0 for r in solves[1:]) and len({r.seed for r in solves[1:]}) == len(solves) - 1
    assert bank.totals().label_tokens == done.output["label_tokens"]  # every reply counts


async def test_the_ladder_stops_at_the_budget_or_once_a_clue_has_no_right_answer_in_three_replies(bank: GateBank) -> None:
    hopeless = Puzzler(misread_first=True)  # no reply answers clue 1
    done = await fill_runtime(hopeless, bank).run(FILL_WORKFLOW, {"letters": 4})
    assert done.output["gate_id"] is None and "3 replies" in " ".join(done.output["notes"])
    assert len(solver_requests(hopeless)) == SOLVE_SAMPLES[1]  # not the whole ladder
    poor = Puzzler(misread_first=True)
    done = await fill_runtime(poor, bank).run(FILL_WORKFLOW, {"letters": 4, "solve_tokens": 32})
    assert done.output["gate_id"] is None and len(solver_requests(poor)) == 2  # each reply is ~20 tokens: the budget ends the second


def test_the_stock_gives_each_letter_a_clue_or_a_term_from_distinct_domains_and_gives_a_clue_once() -> None:
    import random

    by_domain = domains()
    name = next(iter(by_domain))
    term = Term(name, by_domain[name][0])
    stock = ClueStock()
    clue = CheckedClue(term, "a checked clue (5)", "plain")
    stock.put([clue, clue])
    assert len(stock) == 1 and stock.covered("word" + term.word[0], "plain") == 1 and stock.covered("word", "obscure") == 0
    word = term.word[0] + "ast"
    chosen = stock.take(word, "plain", random.Random(0))
    assert chosen is not None and chosen[0] == clue and len(stock) == 0
    picked = [c.term if isinstance(c, CheckedClue) else c for c in chosen]
    assert [t.word[0] for t in picked] == list(word) and len({t.domain for t in picked}) == len(word)


async def test_the_filler_tops_the_bank_up_when_it_runs_low(bank: GateBank) -> None:
    filler = GateFiller(Puzzler(), bank, low_water=2, high_water=4, recheck_s=30)
    filler.start()
    try:
        await until(lambda: filler.left() == 4)
        await until(lambda: filler.runs >= 4)  # the fill pass has ended: issuing gates now cannot extend it
        for i in range(2):
            bank.issue(f"key{i}", "chat", 1, ttl_s=60)
        await asyncio.sleep(0.2)
        assert filler.left() == 2  # not below the low mark: no refill yet
        bank.issue("key9", "chat", 1, ttl_s=60)
        filler.wake()
        await until(lambda: filler.left() == 4)
        await until(lambda: filler.runs >= 7)  # a run is counted once it returns, after its gate is in the bank
        assert filler.saved == 7 and filler.runs == 7 and filler.left() == 4
    finally:
        await filler.close()


async def until(condition, timeout_s: float = 20.0) -> None:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout_s
        await asyncio.sleep(0.02)


@pytest.mark.model
async def test_a_fill_run_with_the_small_model_ends_and_counts_its_tokens(bank: GateBank, small_llm: EmbeddedBackend) -> None:
    done = await fill_runtime(DirectClient(small_llm), bank).run(FILL_WORKFLOW, {"letters": 4, "solve_tokens": 64})
    assert done.status is RunStatus.succeeded, done.error
    assert done.output["word"] == "" and done.output["terms"] == []
    totals = bank.totals()
    assert totals.attempts == 1 and totals.generation_tokens > 0
    if done.output["gate_id"] is not None:  # the small model rarely passes its own checks
        assert 1 <= done.output["difficulty"] <= MAX_DIFFICULTY and totals.saved == 1
