"""The answer prompt, laid out so that what changes last comes last.

    system: instructions, then the evidence (fixed once the retrieval is)
    user:   the question (grows until the input is final)

A prefill of (instructions + evidence + the question so far) leaves only the question's last
words and the template's tail for the final call; and the leading system message is what keys
prefix-aware dispatch (`shared_prefix`), so the final call goes to the worker that prefilled it.
"""

from __future__ import annotations

from typing import Any

from sloflow.llm.types import Message

EVIDENCE_WORDS = 60  # per passage: bounds the prompt whatever the chunking (the 1.5B model prefills 20-45 tokens a second on one thread)

INSTRUCTIONS = """\
Answer the question using the evidence passages below. Reply with the answer only: a name, a
date, a number, yes or no, or a short phrase; no sentence and no explanation."""


def render_evidence(hits: list[dict[str, Any]]) -> str:
    """The passages as numbered lines with their titles, each cut to `EVIDENCE_WORDS` words.

    In the order given: `speculation.in_layout` orders them so that a worker's prompt cache keeps
    as much of an earlier guess's prompt as the final passages allow.
    """
    lines = []
    for i, hit in enumerate(hits, 1):
        words = str(hit.get("text", "")).split()
        text = " ".join(words[:EVIDENCE_WORDS]) + (" ..." if len(words) > EVIDENCE_WORDS else "")
        lines.append(f"[{i}] {hit.get('doc_id', '')}: {text}")
    return "\n".join(lines) or "(no passages found)"


def answer_messages(hits: list[dict[str, Any]], question: str) -> list[Message]:
    """The answer call's messages: instructions and evidence (in the order given) first, the question last."""
    system = f"{INSTRUCTIONS}\n\nEvidence:\n{render_evidence(hits)}"
    return [Message(role="system", content=system), Message(role="user", content=f"Question: {question.strip()}")]
