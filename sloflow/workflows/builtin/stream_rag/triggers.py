"""When to fire a speculative retrieval on the text typed so far (the paper's two variants).

`FixedInterval` (training-free): after at least `min_words` words, then after every `every_words`
new words or at a sentence end. `ModelTriggered`: at the same block boundaries the LLM answers
`NO_QUERY` or a new query, given the text so far and its previous query (zero-shot).

A word counts once it is complete: followed by a space or punctuation. A client sending keystrokes
("What is the capi") fires no earlier than one sending whole words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sloflow.llm.types import Message

NO_QUERY = "NO_QUERY"
_WORD = re.compile(r"\w[\w'’-]*")
_SENTENCE_END = re.compile(r"[.?!][\"')\]]*\s*$")
_MAX_QUERY_CHARS = 300


def complete_words(text: str) -> int:
    """Words of `text` that are complete: all but a last one still being typed."""
    words = _WORD.findall(text)
    if words and text and (text[-1].isalnum() or text[-1] in "'’-"):
        return len(words) - 1  # the last word may go on
    return len(words)


def typed(text: str) -> list[str]:
    """`text` as revisions typed word by word: every one but the last ends with a space."""
    words = text.split()
    return [" ".join(words[: i + 1]) + ("" if i == len(words) - 1 else " ") for i in range(len(words))]


def ends_sentence(text: str) -> bool:
    """Whether `text` ends with a sentence end (. ? !), quotes or brackets after it allowed."""
    return bool(_SENTENCE_END.search(text))


@dataclass
class FixedInterval:
    """After `min_words` words, then every `every_words` new words or at a sentence end."""

    min_words: int = 5
    every_words: int = 3
    fired_at: int | None = None  # complete words when it last fired

    def block(self, text: str) -> bool:
        """Whether `text` closes a block (and fires); remembers the block when it does."""
        words = complete_words(text)
        if words < self.min_words:
            return False
        if self.fired_at is None or words - self.fired_at >= self.every_words or (ends_sentence(text) and words > self.fired_at):
            self.fired_at = words
            return True
        return False

    def reset(self) -> None:
        """Start over (the text was edited, not appended to)."""
        self.fired_at = None


QUERY_PROMPT = """\
A user is typing a question. Decide whether the text so far is enough to search for the documents
that answer it. Reply with exactly NO_QUERY if it is not, or if it is and your previous query
already covers it; otherwise reply with one short search query, nothing else."""


def query_messages(text: str, previous: str | None) -> list[Message]:
    """The model-triggered decision: the text so far and the previous query."""
    user = f"Text so far: {text.strip()}\nPrevious query: {previous or '(none)'}"
    return [Message(role="system", content=QUERY_PROMPT), Message(role="user", content=user)]


def read_query(output: str) -> str | None:
    """The model's new query, or None for NO_QUERY (or nothing usable)."""
    line = next((ln.strip() for ln in output.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(?:query|search query)\s*:\s*", "", line, flags=re.I).strip().strip('"').strip()
    if not line or NO_QUERY in line.upper().replace(" ", "_"):
        return None
    return line[:_MAX_QUERY_CHARS]
