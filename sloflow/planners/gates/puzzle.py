"""Reasoning gates (PAPERS.md section 5): a hidden word spelled by the initials of clue answers.

A gate hides one word; each of its letters gets a clue whose answer is a term starting with that
letter, each term from a different domain of knowledge. The word lists and domains are data files
in this package (`data/words.txt`, `data/domains/*.txt`), so the clues rest on knowledge the
project controls. Verification is an exact match after `normalise`.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TypeVar

T = TypeVar("T")

MIN_LETTERS = 4
MAX_LETTERS = 8
# How hard a gate is: the replies a solver needs. A gate is of difficulty d when a vote over the
# first SOLVE_SAMPLES[d - 1] replies (the greedy one, then samples) is the first vote to spell its
# word. The labelling solver climbs this ladder; a client reads a gate's difficulty and solves it with
# that many replies. Longer words and obscure clues need more (RESULTS.md).
SOLVE_SAMPLES = (1, 3, 5, 7, 9)
MAX_DIFFICULTY = len(SOLVE_SAMPLES)


def normalise(text: str) -> str:
    """Lower-case ASCII letters only: accents dropped, spaces and punctuation removed."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in ascii_text.lower() if "a" <= c <= "z")


def samples_for(difficulty: int) -> int:
    """The replies a solver votes over for a gate of `difficulty` (clamped to the ladder)."""
    return SOLVE_SAMPLES[min(max(difficulty, 1), MAX_DIFFICULTY) - 1]


@dataclass(frozen=True)
class Term:
    """A clue's answer and the domain it is from."""

    domain: str
    word: str


def _lines(text: str) -> list[str]:
    return [normalise(line) for line in text.splitlines() if line.strip() and not line.startswith("#")]


@lru_cache(maxsize=1)
def hidden_words() -> tuple[str, ...]:
    """The words a gate may hide (data/words.txt)."""
    return tuple(w for w in _lines((resources.files(__package__) / "data" / "words.txt").read_text()) if MIN_LETTERS <= len(w) <= MAX_LETTERS)


@lru_cache(maxsize=1)
def domains() -> dict[str, tuple[str, ...]]:
    """Each domain's terms (data/domains/NAME.txt)."""
    folder = resources.files(__package__) / "data" / "domains"
    return {f.name.removesuffix(".txt"): tuple(_lines(f.read_text())) for f in sorted(folder.iterdir(), key=lambda f: f.name) if f.name.endswith(".txt")}


def distinct_domains(options: Sequence[Sequence[T]], domain: Callable[[T], str], first: Collection[int] = ()) -> list[T] | None:
    """One option per position, no domain twice, each position's options tried in order; None if impossible.

    Backtracking over the positions in `first`, then those with the fewest options; the domains are
    few, so this is instant. A position placed later takes the domains left: `first` keeps the
    positions whose first options matter (stocked clues) from losing their domain to another's pick.
    """
    order = sorted(range(len(options)), key=lambda i: (i not in first, len(options[i])))
    chosen: dict[int, T] = {}

    def place(k: int, used: frozenset[str]) -> bool:
        if k == len(order):
            return True
        i = order[k]
        for option in options[i]:
            if domain(option) not in used:
                chosen[i] = option
                if place(k + 1, used | {domain(option)}):
                    return True
        return False

    return [chosen[i] for i in range(len(options))] if place(0, frozenset()) else None


def terms_starting(letter: str, rng: random.Random, avoid: Collection[str] = ()) -> list[Term]:
    """Every term of the data files that starts with `letter`, shuffled, but those in `avoid`."""
    found = [Term(d, t) for d, terms in domains().items() for t in terms if t[0] == letter and t not in avoid]
    rng.shuffle(found)
    return found


BLANK = "___"
_WORD = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*")


def _names(word: str, term: str) -> bool:
    """Whether one clue word (normalised) writes `term` or a form of it: 'veins', 'kenyas', 'nocturnal' for nocturne.

    A term of three letters or fewer counts only as the whole word or its plural: as a part ('ra'
    in 'rain') it names nothing, and a clue must still be able to use such words.
    """
    if len(term) <= 3:
        return word in {term, term + "s", term + "es"}
    return term in word or (len(term) > 5 and word[:5] == term[:5])


def gives_away(clue: str, term: str) -> bool:
    """Whether the clue writes its answer: a word of it names the term, or its letters run together do ('sun flower')."""
    return any(_names(normalise(w), term) for w in _WORD.findall(clue)) or (len(term) > 5 and term in normalise(clue))


def blank_out(clue: str, term: str) -> str:
    """The clue with each word that names `term` replaced by a blank, as in a fill-in crossword clue.

    Small writers often open a clue with its answer ('Balder, Norse god of light'); the blank keeps
    the rest, and the checker then decides whether what is left still points at the term.
    """
    return _WORD.sub(lambda m: BLANK if _names(normalise(m.group()), term) else m.group(), clue)


def with_length(clue: str, term: str) -> str:
    """The clue as a crossword prints it: followed by its answer's letter count, e.g. '... (6)'.

    The count tells a solver which of a clue's near-synonyms is meant ('spiralling tusk' with 7:
    narwhal, not whale); the checker sees it too, so its check stays a solver's view of the clue.
    """
    return f"{clue.rstrip()} ({len(term)})"
