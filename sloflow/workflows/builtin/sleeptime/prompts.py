"""Prompts of the sleep-time workflows and the readers of what the learn pass writes.

The learn pass asks for plain labelled lines (`SUMMARY:`, `- fact`, `Q:` / `A:`) rather than JSON:
a pass cut short by its token bound still leaves every complete line usable, and small models keep
to this format more often than to a grammar that a cut would leave unfinished.
"""

from __future__ import annotations

import re
from typing import Any

from sloflow.llm.types import Message
from sloflow.workflows.contexts import LearnedContext

MAX_FACTS = 30
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")

DERIVE = """\
You study a context before anyone asks about it, so that later questions can be answered quickly.
Write:
SUMMARY: one or two sentences saying what the context is about.
FACTS:
- one line per quantity or fact the context states or implies; compute what can be computed
  (for example: "apples left = 12 - 5 = 7").
Nothing else."""

ANTICIPATE = """\
You study a context before anyone asks about it. Write the {n} questions a reader is most likely
to ask about it, each followed by a worked answer: the steps, then the result. Start with the
question the context most plainly leads up to (the total, the amount left, the cost, the time...).
Use exactly:
Q: the question
A: the working, then the result
Nothing else."""

WITH_LEARNED = """\
Answer the question about the context. Notes were prepared from the context in advance; their
values are already worked out, so use them rather than working them out again. If a note answers
the question, take its result. Otherwise write only the calculations still needed, each on one
short line with the notes' values. End with a last line "Answer: <the result>"."""

WITHOUT_LEARNED = """\
Answer the question about the context. Think step by step, then give the final result on a last
line starting with "Answer:"."""


def database_context(db: Any) -> str:
    """A registered database as a context: its tables as CREATE TABLE with sample values, and join keys."""
    from sloflow.planners.sql.prompts import SchemaTable, schema_ddl
    from sloflow.workflows.builtin.text2sql import join_keys

    return f"Database {db.name}:\n" + schema_ddl([SchemaTable.from_table(t) for t in db.tables], join_keys(db, []))


def derive_messages(text: str) -> list[Message]:
    """The first learn call: a summary and derived facts."""
    return [Message(role="system", content=DERIVE), Message(role="user", content=f"Context:\n{text}")]


def anticipate_messages(text: str, facts: list[str], n: int) -> list[Message]:
    """The second learn call: anticipated questions with worked answers, given the facts found."""
    known = "\n".join(f"- {f}" for f in facts)
    user = f"Context:\n{text}" + (f"\n\nFacts found so far:\n{known}" if known else "")
    return [Message(role="system", content=ANTICIPATE.format(n=n)), Message(role="user", content=user)]


def read_derived(output: str) -> tuple[str, list[str]]:
    """(summary, facts) from the first call's text; lines without a label count as facts."""
    summary, facts = "", []
    for raw in output.splitlines():
        line = raw.strip()
        if not line or line.upper().rstrip(":") == "FACTS":
            continue
        if line.upper().startswith("SUMMARY:"):
            summary = summary or line[len("SUMMARY:"):].strip()
            continue
        fact = _BULLET.sub("", line).strip()
        if fact and fact not in facts:
            facts.append(fact)
    return summary, facts[:MAX_FACTS]


def read_questions(output: str) -> list[dict[str, str]]:
    """`{"question", "answer"}` pairs from the second call's text; a question without an answer is dropped."""
    pairs: list[dict[str, str]] = []
    question: str | None = None
    answer: list[str] = []

    def close() -> None:
        if question and answer:
            pairs.append({"question": question, "answer": " ".join(answer)})

    for raw in output.splitlines():
        line = _BULLET.sub("", raw.strip())
        if line[:2].upper() == "Q:":
            close()
            question, answer = line[2:].strip(), []
        elif line[:2].upper() == "A:" and question:
            answer = [line[2:].strip()]
        elif line and answer:
            answer.append(line)  # the working goes on over several lines
    close()
    return pairs


def render_learned(learned: LearnedContext) -> str:
    """The learned context as the answer prompt shows it."""
    parts = []
    if learned.summary:
        parts.append(f"Summary: {learned.summary}")
    if learned.facts:
        parts.append("Facts:\n" + "\n".join(f"- {f}" for f in learned.facts))
    if learned.questions:
        parts.append("Worked questions:\n" + "\n".join(f"Q: {q['question']}\nA: {q['answer']}" for q in learned.questions))
    return "\n\n".join(parts)


def answer_messages(text: str, question: str, learned: LearnedContext | None) -> list[Message]:
    """The test-time prompt: context and question, with the learned context when there is one.

    Without one it asks for a step-by-step answer (the baseline); with one, for a short answer.
    The context (and notes) come first, so questions about one context share a prompt prefix.
    """
    if learned is None:
        shared = f"{WITHOUT_LEARNED}\n\nContext:\n{text}"
    else:
        shared = f"{WITH_LEARNED}\n\nContext:\n{text}\n\nPrepared notes:\n{render_learned(learned) or '(none)'}"
    return [Message(role="system", content=shared), Message(role="user", content=f"Question: {question}")]
