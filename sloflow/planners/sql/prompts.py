"""Prompts of the Text-to-SQL planner, with what calls share first.

Every candidate and revision prompt of a question starts with the same system message
(instructions, linked schema as CREATE TABLE, examples), then a user message with the question
and what differs (the variant or the failed attempt). A worker that served one call of a question
prefills only the tail of the next, and `ctx.llm` keys the shared part for prefix-aware dispatch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sloflow.llm.types import Message

INSTRUCTIONS = """\
You write one SQLite query that answers a question about the database below.
- Use only the tables and columns defined below; join tables on the join keys given.
- Return exactly the columns the question asks for, in the order it asks for them; no extra columns.
- Compare text with the values as they are stored (see the example values of each column).
- Answer with the query in a ```sql block and nothing else."""

# A different, made-up database, so the examples teach the answer format and not this schema.
EXAMPLES = """\
Examples (on another database with tables author(id, name, country) and book(id, title, year, author_id)):
Question: How many books were published after 2000?
```sql
SELECT count(*) FROM book WHERE year > 2000
```
Question: What are the names of authors from Canada with more than 2 books, by name?
```sql
SELECT T1.name FROM author AS T1 JOIN book AS T2 ON T1.id = T2.author_id WHERE T1.country = 'Canada' GROUP BY T1.id HAVING count(*) > 2 ORDER BY T1.name
```"""

# What each candidate adds after the question; index 0 is the plain prompt the baseline uses.
VARIANTS = (
    "",
    "Check that every column you use belongs to the table you take it from.",
    "Prefer the simplest query that answers exactly what is asked.",
)

_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class SchemaTable:
    """A table as prompts show it: columns with types and a few stored values."""

    name: str
    columns: list[tuple[str, str]]  # (name, type)
    primary_key: list[str] = field(default_factory=list)
    samples: dict[str, list[Any]] = field(default_factory=dict)

    def only(self, columns: Sequence[str]) -> SchemaTable:
        """This table with only `columns` (in its own order)."""
        keep = set(columns)
        return SchemaTable(self.name, [c for c in self.columns if c[0] in keep], self.primary_key, self.samples)

    @classmethod
    def from_table(cls, table: Any) -> SchemaTable:
        """From a `sloflow.retrieval.databases.Table`."""
        return cls(
            table.name,
            [(c.name, c.type) for c in table.columns],
            [c.name for c in table.columns if c.primary_key],
            {c.name: list(c.samples) for c in table.columns},
        )


def quote_name(name: str) -> str:
    """An identifier as SQLite accepts it (double-quoted when it is not a plain word)."""
    return name if _PLAIN_NAME.match(name) else '"' + name.replace('"', '""') + '"'


def _value(v: Any) -> str:
    if isinstance(v, str):
        v = v if len(v) <= 40 else v[:37] + "..."
        return "'" + v.replace("'", "''") + "'"
    return str(v)


def schema_ddl(tables: Sequence[SchemaTable], join_keys: Sequence[str] = (), samples: int = 3) -> str:
    """CREATE TABLE statements with example values as comments, then the join keys."""
    parts = []
    for t in tables:
        lines = []
        for name, typ in t.columns:
            line = f"  {quote_name(name)} {typ or 'TEXT'}".rstrip()
            values = [v for v in t.samples.get(name, []) if v is not None][:samples]
            lines.append((line, f" -- e.g. {', '.join(_value(v) for v in values)}" if values else ""))
        if t.primary_key:
            lines.append((f"  PRIMARY KEY ({', '.join(quote_name(c) for c in t.primary_key)})", ""))
        body = "\n".join(f"{line}{',' if i < len(lines) - 1 else ''}{note}" for i, (line, note) in enumerate(lines))
        parts.append(f"CREATE TABLE {quote_name(t.name)} (\n{body}\n);")
    text = "\n".join(parts)
    names = {t.name.lower() for t in tables}
    keys = [k for k in join_keys if all(side.strip().split(".")[0].lower() in names for side in k.split("="))]
    if keys:
        text += "\nJoin keys: " + "; ".join(keys)
    return text


def _messages(schema: str, question: str, evidence: str, values: Sequence[str], tail: str = "") -> list[Message]:
    """A system message every call of a question shares (instructions, schema, examples), then
    the question with what is particular to this call."""
    shared = "\n\n".join([INSTRUCTIONS, "Database:\n" + schema, EXAMPLES])
    parts = []
    if evidence.strip():
        parts.append(f"Hint: {evidence.strip()}")
    if values:
        parts.append("Stored values that match words of the question: " + "; ".join(values))
    parts.append(f"Question: {question.strip()}" + tail)
    return [Message(role="system", content=shared), Message(role="user", content="\n\n".join(parts))]


def candidate_messages(
    schema: str, question: str, variant: int = 0, evidence: str = "", values: Sequence[str] = ()
) -> list[Message]:
    """The prompt for candidate number `variant` (0: plain; others add a short nudge)."""
    nudge = VARIANTS[variant % len(VARIANTS)]
    return _messages(schema, question, evidence, values, f"\n({nudge})" if nudge else "")


def revision_messages(
    schema: str, question: str, failed_sql: str, error: str, evidence: str = "", values: Sequence[str] = ()
) -> list[Message]:
    """The prompt to repair `failed_sql`, given why it failed; same shared part as the candidates."""
    tail = (
        f"\n\nA previous query was:\n```sql\n{failed_sql.strip()}\n```\n"
        f"It did not work: {error.strip()[:600]}\n"
        "Write a corrected query that answers the question."
    )
    return _messages(schema, question, evidence, values, tail)


LINK_SCHEMA_NOTE = "Answer with JSON: the names of the tables needed to answer the question."


def link_messages(candidates: Sequence[SchemaTable], question: str, values: Sequence[str] = ()) -> list[Message]:
    """The prompt that asks the model which of the retrieved tables the question needs."""
    lines = [f"{t.name}({', '.join(c for c, _ in t.columns)})" for t in candidates]
    text = (
        "Which of these database tables are needed to write a SQL query for the question? "
        "Include tables needed for joins.\n\nTables:\n" + "\n".join(lines)
    )
    if values:
        text += "\n\nStored values that match words of the question: " + "; ".join(values)
    text += f"\n\nQuestion: {question.strip()}\n{LINK_SCHEMA_NOTE}"
    return [Message(role="user", content=text)]


def link_json_schema(table_names: Sequence[str]) -> dict[str, Any]:
    """The JSON schema of the linking answer: {"tables": [one of the given names, ...]}."""
    return {
        "type": "object",
        "properties": {"tables": {"type": "array", "items": {"type": "string", "enum": list(table_names)}}},
        "required": ["tables"],
    }


def answer_sentence(columns: Sequence[str], rows: Sequence[Sequence[Any]], truncated: bool) -> str:
    """A one-sentence answer from the rows, without another model call."""
    if not rows:
        return "The query returned no rows."
    if len(rows) == 1 and len(rows[0]) == 1:
        return f"The answer is {rows[0][0]}."
    shown = "; ".join(", ".join(str(v) for v in r) for r in rows[:5])
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    cut = " (more rows exist beyond the row limit)" if truncated else ""
    head = f" ({', '.join(columns)})" if columns else ""
    return f"{len(rows)} row(s){cut}{head}: {shown}{more}."


def describe_values(matches: Mapping[str, Sequence[Any]]) -> list[str]:
    """`{"table.column": [values]}` as prompt lines like `singer.Country = 'France'`."""
    return [f"{col} = {_value(v)}" for col, vals in matches.items() for v in vals]
