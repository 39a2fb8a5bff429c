"""Prompts of the sleep-time workflows and the readers of what the model writes.

The learn pass asks for plain labelled lines (`SUMMARY:`, `- fact`, `Q:`) rather than JSON: a
pass cut short by its token bound still leaves every complete line usable, and small models keep
to this format more often than to a grammar that a cut would leave unfinished. Anticipated
questions are solved with the baseline's own request (`answer_request`), and every final number,
at sleep time, at test time and in the bench, is read by `last_number`.

At test time a solved result is reused only for the question it answers (`reusable`, then the
model's choice among those: `match_messages`). Any other question gets the baseline's request, or
with `compute=true` a Python program that answers it (`program_request`): the learn pass wrote
the program's first lines, the context's values (`values_request`), so the question's call only
writes the steps that are left, and `quantities` evaluates them; the baseline's request follows
when they give no number. Both calls share one system prompt, so questions about a context share a prompt prefix. The notes (summary, facts) are never put in an answer prompt: with qwen2.5-coder-1.5b they
cost accuracy on every layout tried (bench/RESULTS.md, sleep-time compute).
"""

from __future__ import annotations

import re
from typing import Any

from sloflow.llm.types import GenerateRequest, Message

MAX_FACTS = 30
STEP_BY_STEP_TOKENS = 512  # enough that a step-by-step answer is rarely cut before its result
MATCH_TOKENS = 2  # the reply to `match_messages`: one number
VALUES_TOKENS = 256  # the learn call that writes a program's first lines: the context's values
PROGRAM_TOKENS = 192  # the test-time rest of the program: steps ending in `answer = ...`
PROGRAM_START = "```python\n"  # both program calls begin their reply inside a code block
# Where a program ends: its block closes, or it starts printing (the value is read, not printed).
PROGRAM_STOPS = ["\nprint", "\n```", "```\n"]
# all-MiniLM-L6-v2 cosine between the question and a solved one, below which it is not asked whether
# they are the same. Chosen on GSM8K dev problems 10-29 (the bench's default sample is 0-9): the
# pairs that ask the same scored 0.86-1.0; most that do not, 0.4-0.8 ("the total" vs "the third month" 0.86).
REUSE_SIMILARITY = 0.8
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

MATCH = """\
Questions about a context were solved in advance. Say whether the new question asks for exactly
the number one of them found: the same quantity, unit and time span, with no values the context
does not give. Reply with that question's number, or 0 if none does."""

# Two worked programs (not GSM8K items) show the shape: the context's values first, then one named
# step per line. With qwen2.5-coder-1.5b on GSM8K dev problems 10-33, learned values continued this
# way got 10 of 24 right in 39 output tokens; stated values without the examples, 10 in 70; a whole
# program written at test time, 14 in 121; step by step, 12 in 287 (bench/RESULTS.md, sleep-time).
PROGRAM = """\
Solve the question with Python: first the values the context gives, then one assignment per step
with a descriptive name, ending with a line `answer = ...`. Code only, no functions, no print, no
comments.

Examples:

Context: A bakery sells muffins for $3 each and cookies for $1.50 each. On Monday it sold 40
muffins and twice as many cookies. Its ingredients for the day cost $95.
Question: How much profit did the bakery make on Monday?
```python
muffin_price = 3
cookie_price = 1.5
muffins_sold = 40
cookies_sold = 2 * muffins_sold
ingredient_cost = 95
muffin_revenue = muffins_sold * muffin_price
cookie_revenue = cookies_sold * cookie_price
revenue = muffin_revenue + cookie_revenue
answer = revenue - ingredient_cost
```

Context: Tom reads 12 pages an hour. His book has 300 pages, and he has read 20% of it.
Question: How many more hours does Tom need to finish the book?
```python
pages_per_hour = 12
book_pages = 300
share_read = 0.20
pages_read = book_pages * share_read
pages_left = book_pages - pages_read
answer = pages_left / pages_per_hour
```
"""

VALUES = """\
No question yet. Write only the first part of the program: the values the context gives, one
assignment per line as in the examples. Code only."""

STEP_BY_STEP = """\
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


def _program_messages(text: str, user: str) -> list[Message]:
    return [Message(role="system", content=f"{PROGRAM}\nNow the context:\n{text}"), Message(role="user", content=user)]


def values_request(text: str, max_tokens: int = VALUES_TOKENS) -> GenerateRequest:
    """The learn call that writes a program's first lines before any question: the context's values as Python."""
    return GenerateRequest(messages=_program_messages(text, VALUES), max_tokens=max_tokens, temperature=0.0, stop=PROGRAM_STOPS, answer_prefix=PROGRAM_START)


def program_request(text: str, values: str, question: str, max_tokens: int = PROGRAM_TOKENS) -> GenerateRequest:
    """The test-time call: the program that answers `question`, its first lines (`values`, learned) already written.

    The same system prompt as `values_request`, so questions about one context share its prefill.
    """
    start = f"{PROGRAM_START}{values}\n" if values else PROGRAM_START
    return GenerateRequest(
        messages=_program_messages(text, f"Question: {question}"), max_tokens=max_tokens, temperature=0.0, stop=PROGRAM_STOPS, answer_prefix=start
    )


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


def _value(written: str) -> float | None:
    try:
        return float(written.replace("$", "").replace(",", ""))
    except ValueError:
        return None


def _number(text: str) -> float | None:
    found = _NUMBER.findall(text)
    return _value(found[-1]) if found else None


def last_number(text: str) -> float | None:
    """The final number of an answer: the last number on its last `Answer:` line that has one, else the last number in it.

    Commas and a dollar sign are allowed; None when it writes no number.
    """
    for line in reversed(text.splitlines()):
        if _ANSWER_LINE.match(line) and (found := _number(line)) is not None:
            return found
    return _number(text)


def numbers_in(text: str) -> set[float]:
    """Every number written in digits in `text` (commas and a dollar sign allowed)."""
    return {value for found in _NUMBER.findall(text) if (value := _value(found)) is not None}


def brings_values(question: str, context: str) -> bool:
    """Whether `question` gives a number the context does not ("If she works 50 weeks a year, ...").

    Such a question cannot have been solved before it was asked, however alike it reads.
    """
    return bool(numbers_in(question) - numbers_in(context))


def reusable(question: str, context: str, solved: list[dict[str, Any]], similarity: list[float]) -> list[dict[str, Any]]:
    """The solved questions whose result may answer `question`: close enough, best first, unless it `brings_values`.

    `similarity[i]` is the question's to `solved[i]`.
    """
    if brings_values(question, context):
        return []
    ranked = sorted(zip(similarity, range(len(solved))), reverse=True)
    return [solved[i] for score, i in ranked if score >= REUSE_SIMILARITY]


def match_messages(text: str, question: str, candidates: list[dict[str, Any]]) -> list[Message]:
    """Ask which of the `candidates` (solved questions) asks the same as `question`: its number, 0 for none."""
    listing = "\n".join(f"{i}. {q['question']}" for i, q in enumerate(candidates, 1))
    return [
        Message(role="system", content=MATCH),
        Message(role="user", content=f"Context:\n{text}\n\nSolved questions:\n{listing}\n\nNew question: {question}"),
    ]


def read_choice(output: str, n: int) -> int | None:
    """The 1-based choice in a reply to `match_messages`; None for 0, anything out of range, or no number first."""
    found = re.match(r"\s*(\d+)", output)
    choice = int(found.group(1)) if found else 0
    return choice if 1 <= choice <= n else None


def reused_answer(solved: dict[str, Any]) -> str:
    """The answer a matched question gets: the learn pass's working and its result."""
    return "\n".join(part for part in (solved.get("answer") or "", f"Answer: {number_text(solved['result'])}") if part)


def number_text(value: float) -> str:
    """A result as a prompt shows it: 12, not 12.0."""
    return str(int(value)) if value == int(value) else f"{value:.6f}".rstrip("0").rstrip(".")


def working_of(answer: str) -> str:
    """A step-by-step answer without its `Answer:` lines: the working a solved question keeps."""
    return "\n".join(line for line in answer.strip().splitlines() if not _ANSWER_LINE.match(line)).strip()


def answer_messages(text: str, question: str) -> list[Message]:
    """The step-by-step prompt (the baseline's): the context first, so questions about one context share a prompt prefix."""
    return [Message(role="system", content=f"{STEP_BY_STEP}\n\nContext:\n{text}"), Message(role="user", content=f"Question: {question}")]


def answer_request(text: str, question: str, *, max_tokens: int | None = None, temperature: float = 0.0, seed: int | None = None) -> GenerateRequest:
    """A step-by-step answer within `STEP_BY_STEP_TOKENS` (or `max_tokens`): the baseline, and how the learn pass solves."""
    return GenerateRequest(messages=answer_messages(text, question), max_tokens=max_tokens or STEP_BY_STEP_TOKENS, temperature=temperature, seed=seed)
