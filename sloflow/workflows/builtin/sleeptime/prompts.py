"""Prompts of the sleep-time workflows and the readers of what the model writes.

The learn pass asks for plain labelled lines (`SUMMARY:`, `- fact`, `Q:`) rather than JSON: a
pass cut short by its token bound still leaves every complete line usable, and small models keep
to this format more often than to a grammar that a cut would leave unfinished. Anticipated
questions are solved with the baseline's own request (`answer_request` without a learned
context), and every final number, at sleep time, at test time and in the bench, is read by
`last_number`.
"""

from __future__ import annotations

import re
from typing import Any

from sloflow.llm.types import GenerateRequest, Message
from sloflow.workflows.contexts import LearnedContext

MAX_FACTS = 30
SHORT_ANSWER_TOKENS = 96  # with a learned context
STEP_BY_STEP_TOKENS = 512  # without one: enough that a step-by-step answer is rarely cut before its result
TOKENS_PER_QUESTION = 40  # one `Q:` line
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")
_LABEL = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])?\s*(?:Q\d*\s*[:.)]\s*)?", re.IGNORECASE)
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
_ANSWER_LINE = re.compile(r"^\W*(?:final\s+)?answer\W*:", re.IGNORECASE)  # "Answer:", "**Final answer:**"

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
to ask about it, each answerable from the context with a single number. First the question the
context most plainly leads up to (the total, the amount left, the cost, the time...). Do not
answer them. One question per line, exactly:
Q: the question
Nothing else."""

WITH_LEARNED = """\
Answer the question about the context. Notes were prepared from the context in advance: some
questions were already solved, with their working and result. If the question asks the same as a
solved question, reply only "Answer: <its result>". Otherwise write only the calculations still
needed, each on one short line using the notes' values, then a last line "Answer: <the result>"."""

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


def anticipate_messages(text: str, n: int) -> list[Message]:
    """The second learn call: the `n` likeliest questions, without answers (they are solved next)."""
    return [Message(role="system", content=ANTICIPATE.format(n=n)), Message(role="user", content=f"Context:\n{text}")]


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


def _key(question: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", question.lower()).split())


def read_questions(output: str, n: int, *, besides: str = "") -> list[str]:
    """Up to `n` distinct questions (lines ending in '?', labels like `Q:` dropped) from the model's text, none `besides`.

    A line cut off by the token bound does not end in '?' and is dropped.
    """
    seen = {_key(besides)} if besides else set()
    questions: list[str] = []
    for raw in output.splitlines():
        line = _LABEL.sub("", raw).strip()
        if not line.endswith("?") or len(line) < 8 or _key(line) in seen:
            continue
        seen.add(_key(line))
        questions.append(line)
        if len(questions) == n:
            break
    return questions


def _number(text: str) -> float | None:
    found = _NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].replace("$", "").replace(",", ""))
    except ValueError:
        return None


def last_number(text: str) -> float | None:
    """The final number of an answer: the last number on its last `Answer:` line that has one, else the last number in it.

    Commas and a dollar sign are allowed; None when it writes no number.
    """
    for line in reversed(text.splitlines()):
        if _ANSWER_LINE.match(line) and (found := _number(line)) is not None:
            return found
    return _number(text)


def has_answer_line(text: str) -> bool:
    """Whether an answer reached its `Answer: <number>` line (a cut one did not)."""
    return any(_ANSWER_LINE.match(line) and _number(line) is not None for line in text.splitlines())


def number_text(value: float) -> str:
    """A result as a prompt shows it: 12, not 12.0."""
    return str(int(value)) if value == int(value) else f"{value:.6f}".rstrip("0").rstrip(".")


def working_of(answer: str) -> str:
    """A step-by-step answer without its `Answer:` lines: the working a solved question keeps."""
    return "\n".join(line for line in answer.strip().splitlines() if not _ANSWER_LINE.match(line)).strip()


def _solved(question: dict[str, Any]) -> str:
    lines = [f"Q: {question['question']}", question.get("answer") or ""]
    if question.get("result") is not None:
        lines.append(f"Result: {number_text(question['result'])}")
    return "\n".join(line for line in lines if line)


def render_learned(learned: LearnedContext) -> str:
    """The learned context as the answer prompt shows it: solved questions with working and result, then likely ones."""
    parts = []
    if learned.summary:
        parts.append(f"Summary: {learned.summary}")
    if learned.facts:
        parts.append("Facts:\n" + "\n".join(f"- {f}" for f in learned.facts))
    solved = [q for q in learned.questions if q.get("answer") or q.get("result") is not None]
    likely = [q for q in learned.questions if q not in solved]
    if solved:
        parts.append("Solved questions:\n" + "\n\n".join(map(_solved, solved)))
    if likely:
        parts.append("Other likely questions (not solved):\n" + "\n".join(f"- {q['question']}" for q in likely))
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


def answer_request(
    text: str, question: str, learned: LearnedContext | None, *, max_tokens: int | None = None, temperature: float = 0.0, seed: int | None = None
) -> GenerateRequest:
    """The test-time call: `answer_messages` with a short budget with a learned context, the step-by-step one without.

    Without a learned context it is the baseline; the learn pass solves anticipated questions with it too.
    """
    limit = max_tokens or (SHORT_ANSWER_TOKENS if learned is not None else STEP_BY_STEP_TOKENS)
    return GenerateRequest(messages=answer_messages(text, question, learned), max_tokens=limit, temperature=temperature, seed=seed)
