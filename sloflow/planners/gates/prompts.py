"""The prompts of gate generation (clue writer, clue checker) and of solving, and their readers.

The solver prompt, its reply settings and the vote over replies are shared by the bank's labelling
solver and `sloflow.client.GateSolver`, so a gate's difficulty label is measured with the very
procedure a client would use.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from sloflow.llm.types import Message
from sloflow.planners.gates.puzzle import hidden_words, normalise, samples_for, with_length

Obscurity = Literal["plain", "obscure"]
# The checker's guesses: a clue passes when its term is among them. One exact guess dropped every
# gate of a --quick run with the 1.5B model (RESULTS.md); the solver's labelling pass still decides.
CHECK_GUESSES = 3
# Replies after the first (greedy) one are sampled at this temperature, each with its own seed.
SAMPLE_TEMPERATURE = 0.7

_STYLE = {
    "plain": "Write a short, plain clue (at most 15 words) that a well-read person would solve.",
    "obscure": "Write a short, indirect clue (at most 15 words) that needs real knowledge of the field: no obvious synonyms.",
}


# The worked exchange that opens the writer's and the checker's prompts: a domain, term and clue
# outside the data files, and the checker's reply to that clue.
_EXAMPLE = ("household objects", "kettle", "It whistles on the stove when the water boils")
_EXAMPLE_GUESSES = "Kettle, Teapot, Boiler"


def clue_messages(term: str, domain: str, obscurity: Obscurity) -> list[Message]:
    """Ask for one clue whose answer is `term`, drawn from `domain`, that never writes the term.

    One worked exchange comes first: asked bare, a small model opens most clues with the answer
    ("Vein carries blood...": half of a --quick run's clues with the 1.5B model).
    """
    return [
        {"role": "system", "content": "You write crossword clues. A clue describes its answer without ever writing it. Reply with the clue only, on one line."},
        {"role": "user", "content": _clue_request(_EXAMPLE[1], _EXAMPLE[0], obscurity)},
        {"role": "assistant", "content": _EXAMPLE[2]},
        {"role": "user", "content": _clue_request(term, domain, obscurity)},
    ]


def _clue_request(term: str, domain: str, obscurity: Obscurity) -> str:
    return f"Domain: {domain}. Answer: {term}. {_STYLE[obscurity]} It must fit this answer and no other. Never write the answer or a form of it."


def check_messages(clue: str, domain: str) -> list[Message]:
    """Ask for the clue's likeliest one-word answers (the checker looks for the intended term among them).

    The worked exchange shows that an answer names the thing the clue describes: asked bare, the
    1.5B model often answered with nouns of the clue itself ('tusk, horn' for a narwhal's clue).
    """
    return [
        {"role": "system", "content": "You solve crossword clues: each answer is the one word the clue describes. Reply with one-word answers only, separated by commas."},
        {"role": "user", "content": _check_request(with_length(_EXAMPLE[2], _EXAMPLE[1]), _EXAMPLE[0])},
        {"role": "assistant", "content": _EXAMPLE_GUESSES},
        {"role": "user", "content": _check_request(clue, domain)},
    ]


def _check_request(clue: str, domain: str) -> str:
    return f"Domain: {domain}. Clue: {clue}\nThe number in brackets is the answer's length. Give up to {CHECK_GUESSES} one-word answers, the likeliest first. Answers:"


def read_clue(text: str) -> str:
    """The clue from the writer's reply: its first non-empty line, without a 'Clue:' label or quotes."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = re.sub(r"^(clue\s*:\s*)", "", line, flags=re.IGNORECASE)
    return line.strip().strip('"').strip()[:200]


def read_guesses(text: str, most: int = CHECK_GUESSES) -> list[str]:
    """The checker's first `most` answers, normalised: items split at commas, semicolons, 'or' and line
    ends, without numbering or bullets (a two-word answer such as 'chamber music' stays one guess)."""
    items = re.split(r"[,;\n]|\bor\b", text)
    guesses = [normalise(re.sub(r"^\s*(answers?\s*:|\d+[.)]|[-*])\s*", "", item, flags=re.IGNORECASE)) for item in items]
    return [g for g in guesses if g][:most]


# The worked gate that opens the solver's prompt: terms outside the data files, a word too short to
# be hidden, and a second answer of the printed length where one exists. Asked bare, the 1.5B model
# answered every clue of a 4-letter gate right but wrote 'N. professions: carpenter' and then a
# clue's answer as the hidden word.
_SOLVE_EXAMPLE = (
    ("household objects", "kettle", "It whistles on the stove when the water boils", ("teapot",)),
    ("buildings", "igloo", "A dome-shaped house of snow blocks", ()),
    ("toys", "top", "It spins on its point", ()),
)


def solve_messages(clues: Sequence[tuple[str, str]]) -> list[Message]:
    """The gate as a solver sees it, (domain, clue) pairs in order, after one worked gate."""
    example = [(domain, with_length(clue, term)) for domain, term, clue, _ in _SOLVE_EXAMPLE]
    answer = "\n".join(f"{i}. {', '.join((term, *others))}" for i, (_, term, _, others) in enumerate(_SOLVE_EXAMPLE, 1))
    word = "".join(term[0] for _, term, _, _ in _SOLVE_EXAMPLE)
    return [
        {"role": "system", "content": "You solve word puzzles carefully."},
        {"role": "user", "content": _solve_request(example)},
        {"role": "assistant", "content": f"{answer}\nWORD: {word}"},
        {"role": "user", "content": _solve_request(clues)},
    ]


def _solve_request(clues: Sequence[tuple[str, str]]) -> str:
    lines = "\n".join(f"{i}. ({domain}) {clue}" for i, (domain, clue) in enumerate(clues, 1))
    return (
        "Each clue below has a one-word answer from the field in brackets; the number at its end is the answer's length. "
        f"The first letters of the {len(clues)} answers, in order, spell a hidden English word.\n"
        f"{lines}\n"
        "Answer each clue on its own line as its number and up to 3 answers of that length, likeliest first, "
        "then give the hidden word on a last line as 'WORD: ...'."
    )


_LINE = re.compile(r"^\s*\**(\d+)[.)]\s*(?:\([^)]*\)\s*|[A-Za-z ]+:\s*)?(.*)$", flags=re.MULTILINE)  # 'N. [field] rest'
_FIRST = re.compile(r"\**\s*([A-Za-z][A-Za-z' -]*)")
_LENGTH = re.compile(r"\((\d+)\)\s*$")


def read_answers(text: str) -> dict[int, str]:
    """A solver's first answer to each clue, from its numbered lines ('2. igloo'; a field before it,
    '2. (buildings) igloo' or '2. buildings: igloo', is dropped)."""
    found = ((n, _FIRST.match(rest)) for n, rest in _LINE.findall(text))
    return {int(n): m.group(1).strip() for n, m in found if m}


def read_candidates(text: str) -> dict[int, list[str]]:
    """Each numbered line's answers, normalised, in order: '2. (buildings) Igloo, hut' -> {2: ['igloo', 'hut']}."""
    found: dict[int, list[str]] = {}
    for n, rest in _LINE.findall(text):
        answers = [normalise(a) for a in re.split(r",|;|/|\bor\b", rest)]
        if any(answers):
            found[int(n)] = [a for a in answers if a]
    return found


def clue_length(clue: str) -> int | None:
    """The answer's letter count a clue prints at its end ('... (6)'), if it does."""
    found = _LENGTH.search(clue)
    return int(found.group(1)) if found else None


def read_solution(text: str, letters: int) -> str:
    """The hidden word from a solver's reply: the initials of its answers when it answered all
    `letters` clues (spelling them is no test of the solver), else its 'WORD:' line."""
    answers = read_answers(text)
    if sorted(answers) == list(range(1, letters + 1)):
        return "".join(normalise(answers[i])[:1] for i in range(1, letters + 1))
    found = re.findall(r"WORD\s*:\s*\**\s*([A-Za-z]+)", text, flags=re.IGNORECASE)
    return found[-1] if found else ""


def reply_settings(index: int) -> dict[str, Any]:
    """Decoding of a gate's `index`-th reply: the first greedy, later ones sampled with seed `index`."""
    return {"temperature": 0.0} if index == 0 else {"temperature": SAMPLE_TEMPERATURE, "seed": index}


def ranked_answers(replies: Sequence[str], lengths: Sequence[int | None]) -> list[list[str]]:
    """Per clue, the answers the replies gave it that have its printed length (all of them when none
    has), those given by more replies first, then in the order first given (the greedy reply's first)."""
    counts: list[Counter[str]] = [Counter() for _ in lengths]
    for text in replies:
        for n, answers in read_candidates(text).items():
            if 1 <= n <= len(lengths):
                counts[n - 1].update(dict.fromkeys(answers, 1))
    ranked = []
    for count, length in zip(counts, lengths):
        fitting = [a for a in count if length is None or len(a) == length] or list(count)
        ranked.append(sorted(fitting, key=lambda a: -count[a]))  # stable: ties keep the order first given
    return ranked


def vote(replies: Sequence[str], lengths: Sequence[int | None]) -> str:
    """The hidden word from one or more replies to a gate whose clues print `lengths`.

    Every clue answered: the hidden word among `hidden_words` (a public list) that the clues' answers
    spell with the least total rank, else the initials of each clue's first answer. Otherwise the
    commonest `read_solution` of the replies.
    """
    ranked = ranked_answers(replies, lengths)
    if all(ranked):
        options = []
        for word in (w for w in hidden_words() if len(w) == len(ranked)):
            ranks = [next((k for k, a in enumerate(answers) if a[0] == letter), None) for letter, answers in zip(word, ranked)]
            if None not in ranks:
                options.append((sum(ranks), word))  # type: ignore[arg-type]
        return min(options)[1] if options else "".join(answers[0][0] for answers in ranked)
    words = Counter(w for w in (normalise(read_solution(t, len(lengths))) for t in replies) if w)
    return words.most_common(1)[0][0] if words else ""


# One reply of a solver model: (messages, decoding settings from `reply_settings`) -> (text, output tokens).
Reply = Callable[[list[Message], dict[str, Any]], Awaitable[tuple[str, int]]]


async def solve_by_vote(reply: Reply, clues: Sequence[tuple[str, str]], difficulty: int) -> tuple[str, int]:
    """A client's answer to a gate of `difficulty` and the output tokens it took: a vote over as many
    replies as the difficulty asks for (`samples_for`), the first greedy."""
    messages = solve_messages(clues)
    replies: list[str] = []
    tokens = 0
    for i in range(samples_for(difficulty)):
        text, used = await reply(messages, reply_settings(i))
        replies.append(text)
        tokens += used
    return vote(replies, [clue_length(clue) for _, clue in clues]), tokens
