"""Checked clues waiting to become gates: a fill run keeps every clue that passed its check.

A gate needs a checked clue for each of its letters. With a small model a clue passes its check
about half the time, so a gate whose clues must all pass in one run is rare (about one 4-letter
attempt in nine with the 1.5B model: RESULTS.md); a run that stocks what passed, and a later run
that builds its gate around stocked clues, wastes none of them. A clue leaves the stock when a gate
takes it, so no clue is ever shown in two gates.

The stock holds each clue's answer, so it lives in memory only, in the filler's process (like a
fill run's state): a restart loses it, which costs regenerating a few clues.
"""

from __future__ import annotations

import random
import threading
from collections import Counter, defaultdict
from dataclasses import dataclass

from sloflow.planners.gates.prompts import Obscurity
from sloflow.planners.gates.puzzle import Term, distinct_domains, terms_starting

STOCK_LIMIT = 400  # clues per obscurity; the oldest go first past it


@dataclass(frozen=True)
class CheckedClue:
    """A clue that passed its check: its answer (secret) and its text as a solver sees it."""

    term: Term
    text: str
    obscurity: Obscurity


class ClueStock:
    """Checked clues by obscurity and first letter; safe to share between threads."""

    def __init__(self, limit: int = STOCK_LIMIT) -> None:
        self.limit = limit
        self._clues: dict[Obscurity, list[CheckedClue]] = defaultdict(list)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._clues.values())

    def put(self, clues: list[CheckedClue]) -> None:
        """Keep `clues` for later gates (a clue already stocked is not kept twice)."""
        with self._lock:
            for clue in clues:
                kept = self._clues[clue.obscurity]
                if all(c.term != clue.term for c in kept):
                    kept.append(clue)
                del kept[: max(len(kept) - self.limit, 0)]

    def take(self, word: str, obscurity: Obscurity, rng: random.Random) -> list[CheckedClue | Term] | None:
        """Per letter of `word`, a stocked clue (taken out of the stock) or a term still to be written,
        each from a different domain, stocked clues tried first; None if no such choice exists."""
        with self._lock:
            stocked = self._clues[obscurity]
            held = {c.term.word for c in stocked}
            options: list[list[CheckedClue | Term]] = []
            has_stock: set[int] = set()
            for i, letter in enumerate(word):
                mine = [c for c in stocked if c.term.word[0] == letter]
                rng.shuffle(mine)
                options.append([*mine, *terms_starting(letter, rng, avoid=held)])
                if mine:
                    has_stock.add(i)
            chosen = distinct_domains(options, lambda o: (o.term if isinstance(o, CheckedClue) else o).domain, first=has_stock)
            if chosen is not None:
                taken = {id(c) for c in chosen if isinstance(c, CheckedClue)}
                self._clues[obscurity] = [c for c in stocked if id(c) not in taken]
            return chosen

    def covered(self, word: str, obscurity: Obscurity) -> int:
        """How many letters of `word` stocked clues could answer (an upper bound: their domains may clash)."""
        with self._lock:
            have = Counter(c.term.word[0] for c in self._clues[obscurity])
        return sum(min(n, have[letter]) for letter, n in Counter(word).items())
