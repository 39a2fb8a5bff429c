"""The prompts of gate generation (clue writer, clue checker) and of solving, and their readers.

The solver prompt is shared by the bank's labelling solver and `sloflow.client.GateSolver`, so a
gate's difficulty label is measured with the very prompt a client would use.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from sloflow.llm.types import Message

Obscurity = Literal["plain", "obscure"]
# The checker's guesses: a clue passes when its term is among them. One exact guess dropped every
# gate of a --quick run with the 1.5B model (RESULTS.md); the solver's labelling pass still decides.
CHECK_GUESSES = 3

_STYLE = {
    "plain": "Write a short, plain clue (at most 15 words) that a well-read person would solve.",
    "obscure": "Write a short, indirect clue (at most 15 words) that needs real knowledge of the field: no obvious synonyms.",
}


def clue_messages(term: str, domain: str, obscurity: Obscurity) -> list[Message]:
    """Ask for one clue whose answer is `term`, drawn from `domain`, that never writes the term."""
    return [
        {"role": "system", "content": "You write crossword clues. Reply with the clue only, on one line."},
        {"role": "user", "content": f"Domain: {domain}. Answer: {term}. {_STYLE[obscurity]} Never write the answer or a form of it."},
    ]


def check_messages(clue: str, domain: str) -> list[Message]:
    """Ask for the clue's likeliest one-word answers (the checker looks for the intended term among them)."""
    return [
        {"role": "system", "content": "You solve crossword clues. Reply with one-word answers only, separated by commas."},
        {"role": "user", "content": f"Domain: {domain}. Clue: {clue}\nGive up to {CHECK_GUESSES} one-word answers, the likeliest first. Answers:"},
    ]


def read_clue(text: str) -> str:
    """The clue from the writer's reply: its first non-empty line, without a 'Clue:' label or quotes."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    line = re.sub(r"^(clue\s*:\s*)", "", line, flags=re.IGNORECASE)
    return line.strip().strip('"').strip()[:200]


def read_words(text: str, most: int = CHECK_GUESSES) -> list[str]:
    """The first `most` words of a reply."""
    return re.findall(r"[A-Za-z][A-Za-z'-]*", text)[:most]


def solve_messages(clues: Sequence[tuple[str, str]]) -> list[Message]:
    """The gate as a solver sees it: (domain, clue) pairs, in order."""
    lines = "\n".join(f"{i}. ({domain}) {clue}" for i, (domain, clue) in enumerate(clues, 1))
    return [
        {"role": "system", "content": "You solve word puzzles carefully."},
        {
            "role": "user",
            "content": (
                f"Each clue below has a one-word answer from the field in brackets. The first letters of the {len(clues)} answers, "
                "in order, spell a hidden English word.\n"
                f"{lines}\n"
                "Answer each clue on its own line as 'N. answer', then give the hidden word on a last line as 'WORD: ...'."
            ),
        },
    ]


def read_solution(text: str) -> str:
    """The hidden word from a solver's reply: its 'WORD:' line, else the initials of its numbered answers."""
    found = re.findall(r"WORD\s*:\s*\**\s*([A-Za-z]+)", text, flags=re.IGNORECASE)
    if found:
        return found[-1]
    answers = re.findall(r"^\s*\d+\.\s*\**\s*([A-Za-z])", text, flags=re.MULTILINE)
    return "".join(answers)
