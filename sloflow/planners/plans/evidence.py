"""Evidence for the answer model: each executed call with its provenance, compacted to fit a prompt.

Shared by `reaper` (the executed plan) and `react` (its observations): one answer prompt that asks
for citations by label, and the citations read back from the answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sloflow.llm.types import Message

EVIDENCE_CHARS = 4000  # about 1,000 tokens over all evidence: its prefill stays a few seconds on a CPU
_QUOTABLE = 40  # characters: a value longer than this is a passage, not something an answer quotes
_CITATION = re.compile(r"\[(var\d+|step\d+)(?:\.[^\]\s]*)?\]")  # [var1], or a field of it: [var1.status]


@dataclass(frozen=True)
class Evidence:
    """One call's output and where it came from."""

    label: str
    source: str
    arguments: dict[str, Any]
    output: Any = None
    error: str | None = None

    def describe(self, chars: int) -> str:
        args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in self.arguments.items())
        head = f"[{self.label}] {self.source}({args})"
        if self.error is not None:
            # Worded as the call's fault: a refused argument says nothing about the question's subject.
            return f"{head}: not answered (the call was refused: {self.error[:200]})"
        return f"{head}:\n{compact(self.output, chars)}"


def compact(output: Any, chars: int) -> str:
    """A short text form of an output: search hits as their texts, anything else as JSON, cut to `chars`."""
    if isinstance(output, list) and output and all(isinstance(h, dict) and "text" in h for h in output):
        text = "\n".join(f"- ({h.get('doc_id', '')}) {h['text']}" for h in output)
    else:
        text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= chars else text[: max(chars - 3, 0)] + "..."


ANSWER_INSTRUCTIONS = (
    "Answer the question from the evidence only. Be brief: one to three sentences. "
    "Cite the evidence you use by its label in brackets, like [var1]. "
    "A call that was not answered tells nothing about the question. "
    "If the evidence does not hold the answer, say what is missing."
)


def answer_messages(
    question: str, evidence: Sequence[Evidence], conversation: Sequence[Message] = (), total_chars: int = EVIDENCE_CHARS
) -> list[Message]:
    """Ask for a short answer from the evidence only, citing the labels it uses.

    After `conversation` (the planner's, which the worker that planned still holds in its prompt
    cache) the instructions come in the last user turn, so only the evidence is new prefill, and
    the worker keeps the planner's instructions and sources cached for the next request.
    """
    each = max(total_chars // max(len(evidence), 1), 200)
    shown = "\n\n".join(e.describe(each) for e in evidence) or "(no evidence was gathered)"
    ask = f"Evidence:\n{shown}\n\nQuestion: {question.strip()}"
    if conversation:
        return [*conversation, Message(role="user", content=f"The calls ran. {ANSWER_INSTRUCTIONS} Write prose, not JSON.\n\n{ask}")]
    return [Message(role="system", content=ANSWER_INSTRUCTIONS), Message(role="user", content=ask)]


def citations(answer: str, evidence: Sequence[Evidence]) -> list[str]:
    """The labels an answer cites that name a piece of evidence, in order of first citation; when it
    cites none, the evidence whose short values (a status, a name, an id) it quotes.

    A small model often answers from the evidence without the brackets ("the order is delivered");
    the run still says where "delivered" came from.
    """
    known = {e.label for e in evidence}
    cited = list(dict.fromkeys(label for label in _CITATION.findall(answer) if label in known))
    if cited:
        return cited
    said = answer.casefold()
    return [e.label for e in evidence if e.error is None and any(_quoted(v, said) for v in _short_values(e.output))]


def _short_values(output: Any) -> list[str]:
    """The output's string and number leaves short enough to be quoted as they are (not passages)."""
    if isinstance(output, dict):
        return [v for item in output.values() for v in _short_values(item)]
    if isinstance(output, list):
        return [v for item in output for v in _short_values(item)]
    if isinstance(output, (str, int, float)) and not isinstance(output, bool):
        text = str(output).strip()
        return [text] if 4 <= len(text) <= _QUOTABLE else []
    return []


def _quoted(value: str, said: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(value.casefold())}(?![\w])", said) is not None


def fallback_answer(evidence: Sequence[Evidence]) -> str:
    """What a run says when no answer could be written in time: which evidence it gathered."""
    ok = [e for e in evidence if e.error is None]
    if not ok:
        return "The deadline passed before any evidence or answer was ready."
    listed = "; ".join(f"[{e.label}] {e.source}" for e in ok)
    return f"The deadline passed before an answer was written; the evidence gathered so far: {listed}."
