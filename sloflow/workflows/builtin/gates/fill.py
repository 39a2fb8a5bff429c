"""The `gates.fill` workflow: makes one reasoning gate for the bank, on idle capacity.

    pick (hidden word, one term per letter from distinct domains, stocked checked clues first)
    -> write (a clue per term still without one: one call)
    -> check (a second call must name the term among its guesses from the clue alone; a failed clue gets another term)
    -> label (the solver must solve the whole gate; the replies its vote needed set the difficulty) -> save

Every clue that passes its check is kept: a gate dropped for another letter's clue, or by the
labelling solver, leaves its checked clues in the `ClueStock` (those the solver answered right, in
the second case), and a later run picks a hidden word its stock already covers.

It has no deadline, so its calls are background calls that never delay a deadline call. The gate's
word and terms live only in the run's state: `save` keeps a keyed hash in the bank and clears them,
and `GateFiller` runs this workflow on an in-memory runtime with an in-memory stock, so no
checkpoint or file holds them either.
The word is drawn from the system's random source, never from the run's input.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from sloflow.llm.types import GenerateRequest
from sloflow.planners.gates.prompts import Obscurity, check_messages, clue_length, clue_messages, ranked_answers, read_clue, read_guesses, reply_settings, solve_messages, vote
from sloflow.planners.gates.puzzle import MAX_LETTERS, MIN_LETTERS, SOLVE_SAMPLES, Term, blank_out, gives_away, hidden_words, normalise, terms_starting, with_length
from sloflow.workflows.budget import Cost
from sloflow.workflows.builtin.gates.bank import Clue, GateBank
from sloflow.workflows.builtin.gates.stock import CheckedClue, ClueStock
from sloflow.workflows.context import bound_tool
from sloflow.workflows.dsl import Workflow

FILL_WORKFLOW = "gates.fill"
CLUE_TOKENS = 40
CHECK_TOKENS = 16
SOLVE_TOKENS = 768  # "enough tokens": the labelling solver's budget over all its replies


class FillState(BaseModel):
    """Input (the gate's shape and bounds) and what the stages fill in."""

    letters: int = Field(5, ge=MIN_LETTERS, le=MAX_LETTERS, description="letters of the hidden word")
    obscurity: Obscurity = Field("plain", description="plain clues, or obscure ones (harder gates)")
    solve_tokens: int = Field(SOLVE_TOKENS, ge=32, le=4096, description="the labelling solver's budget")

    word: str = ""  # secret: cleared by `save`
    terms: list[list[str]] = Field(default_factory=list)  # secret (domain, term) per letter: cleared by `save`
    clues: list[str] = Field(default_factory=list)  # per letter; "" until written (a stocked clue comes written)
    stocked: int = 0  # clues taken from the stock
    checked: bool = False
    generation_tokens: int = 0
    label_tokens: int = 0
    solved: bool = False
    difficulty: int | None = None
    gate_id: str | None = None
    notes: list[str] = Field(default_factory=list)


fill = Workflow(
    FILL_WORKFLOW,
    state=FillState,
    slo=None,
    description="one reasoning gate (clues written, checked, solved and labelled) into the gate bank, on idle capacity",
)


def bank_tool(tools: Mapping[str, Any]) -> GateBank:
    """The run tool `gates` (the `GateBank`)."""
    return bound_tool(tools, "gates", "this runtime binds no `gates` tool (a GateBank); run gates.fill through GateFiller")


def stock_tool(tools: Mapping[str, Any]) -> ClueStock:
    """The run tool `clues` (the `ClueStock`)."""
    return bound_tool(tools, "clues", "this runtime binds no `clues` tool (a ClueStock); run gates.fill through GateFiller")


def _checked(terms: list[Term], clues: list[str], obscurity: Obscurity) -> list[CheckedClue]:
    """The written clues (those that passed their check), as the stock keeps them."""
    return [CheckedClue(t, c, obscurity) for t, c in zip(terms, clues) if c]


async def _generate(ctx: Any, messages: list[dict[str, str]], max_tokens: int, **settings: Any) -> tuple[str, int]:
    """One reply, greedy unless `settings` (GenerateRequest fields) say otherwise."""
    out = await ctx.llm.generate(GenerateRequest(messages=messages, max_tokens=max_tokens, **({"temperature": 0.0} | settings)))
    return out.text, out.completion_tokens


async def _clue(ctx: Any, term: Term, obscurity: Obscurity) -> tuple[str | None, int]:
    """A clue for `term`, with its letter count, that the checker resolves to it and that does not write it (words naming it are blanked); None if not."""
    text, tokens = await _generate(ctx, clue_messages(term.word, term.domain, obscurity), CLUE_TOKENS)
    clue = blank_out(read_clue(text), term.word)
    if len(normalise(clue)) < 6 or gives_away(clue, term.word):
        return None, tokens
    clue = with_length(clue, term.word)
    reply, checked = await _generate(ctx, check_messages(clue, term.domain), CHECK_TOKENS)
    return (clue if term.word in read_guesses(reply) else None), tokens + checked


@fill.admit
def _has_tools(s: FillState, tools: Mapping[str, Any]) -> None:
    bank_tool(tools)
    stock_tool(tools)


@fill.stage(cost=Cost(seconds=0.01))
async def pick(s: FillState, ctx: Any) -> dict[str, Any]:
    """A hidden word of `letters` letters, one the stock covers best, and per letter a stocked clue
    or a term starting with it, each from its own domain."""
    rng = secrets.SystemRandom()
    stock = stock_tool(ctx.tools)
    words = [w for w in hidden_words() if len(w) == s.letters]
    if not words:
        return {"notes": [*s.notes, f"pick: no hidden word has {s.letters} letters"]}
    rng.shuffle(words)
    for word in sorted(words, key=lambda w: -stock.covered(w, s.obscurity)):
        chosen = stock.take(word, s.obscurity, rng)
        if chosen is not None:
            stocked = [c for c in chosen if isinstance(c, CheckedClue)]
            terms = [c.term if isinstance(c, CheckedClue) else c for c in chosen]
            clues = [c.text if isinstance(c, CheckedClue) else "" for c in chosen]
            return {"word": word, "terms": [[t.domain, t.word] for t in terms], "clues": clues, "stocked": len(stocked)}
    return {"notes": [*s.notes, f"pick: no {s.letters}-letter word has a term per letter from distinct domains"]}


@fill.stage(cost=Cost(calls=2 * 5, prompt=80, output=CLUE_TOKENS))
async def write(s: FillState, ctx: Any) -> dict[str, Any]:
    """A clue per term still without one, each checked; a failed one is tried once more with another
    term of its letter. If a letter still has none, the clues that passed go to the stock."""
    if not s.word:
        return {}
    terms = [Term(d, t) for d, t in s.terms]
    clues = list(s.clues)
    tokens = s.generation_tokens
    tried = frozenset(t.word for t in terms)
    for i, term in enumerate(terms):
        if clues[i]:
            continue
        clue, used = await _clue(ctx, term, s.obscurity)
        tokens += used
        if clue is None:
            taken = {t.domain for j, t in enumerate(terms) if j != i}
            other = [t for t in terms_starting(term.word[0], secrets.SystemRandom(), avoid=tried) if t.domain not in taken]
            if other:
                terms[i] = term = other[0]
                clue, used = await _clue(ctx, term, s.obscurity)
                tokens += used
        if clue is None:
            kept = _checked(terms, clues, s.obscurity)
            stock_tool(ctx.tools).put(kept)
            note = f"write: no clue for letter {i + 1} passed its check; {len(kept)} checked clues stocked"
            return {"generation_tokens": tokens, "clues": [], "notes": [*s.notes, note]}
        clues[i] = clue
    return {"terms": [[t.domain, t.word] for t in terms], "clues": clues, "checked": True, "generation_tokens": tokens}


@fill.stage(cost=Cost(calls=SOLVE_SAMPLES[-1], prompt=200, output=SOLVE_TOKENS))
async def label(s: FillState, ctx: Any) -> dict[str, Any]:
    """The solver climbs the difficulty ladder: replies are added (the greedy one, then samples) until
    a vote over the first SOLVE_SAMPLES[d - 1] of them spells the word, which makes the gate level d.
    It stops early once a clue has had no right answer in 3 or more replies. Unsolved, the clues whose
    first-ranked answer was right go back to the stock and the others are dropped."""
    if not s.checked:
        return {}
    messages = solve_messages([(d, c) for (d, _), c in zip(s.terms, s.clues)])
    lengths = [clue_length(c) for c in s.clues]  # as a client reads them off the clues
    replies: list[str] = []
    tokens = 0
    for level, needed in enumerate(SOLVE_SAMPLES, 1):
        while len(replies) < needed and tokens < s.solve_tokens:
            text, used = await _generate(ctx, messages, s.solve_tokens - tokens, **reply_settings(len(replies)))
            replies.append(text)
            tokens += used
        if len(replies) < needed:
            break
        if vote(replies, lengths) == s.word:
            return {"label_tokens": tokens, "solved": True, "difficulty": level}
        given = ranked_answers(replies, lengths)  # a term, having its printed length, is ranked whenever a reply gave it
        if needed > 1 and not all(t in answers for (_, t), answers in zip(s.terms, given)):
            break  # a later vote would need a plurality for an answer no reply has given yet: not worth the tokens
    ranked = ranked_answers(replies, lengths)
    written = _checked([Term(d, t) for d, t in s.terms], s.clues, s.obscurity)
    kept = [c for c, answers in zip(written, ranked) if answers[:1] == [c.term.word]]
    stock_tool(ctx.tools).put(kept)
    note = f"label: no vote of the solver's {len(replies)} replies ({tokens} tokens) found the word; the gate is dropped, {len(kept)} clues it answered right stocked"
    return {"label_tokens": tokens, "solved": False, "notes": [*s.notes, note]}


@fill.stage(cost=Cost(seconds=0.01))
async def save(s: FillState, ctx: Any) -> dict[str, Any]:
    """Keep a solved gate (its answer only as a keyed hash), count the attempt's tokens, clear the secrets."""
    bank = bank_tool(ctx.tools)
    gate_id = None
    if s.solved and s.difficulty is not None:
        clues = [Clue(d, c) for (d, _), c in zip(s.terms, s.clues)]
        gate_id = bank.add(clues, s.word, s.difficulty, s.label_tokens)
    bank.record_attempt(saved=gate_id is not None, generation_tokens=s.generation_tokens, label_tokens=s.label_tokens)
    return {"gate_id": gate_id, "word": "", "terms": [], "clues": [] if gate_id is None else s.clues}


fill.then(pick, write, label, save)
