"""Pull one SQL statement out of what a model wrote (code fences, prose, trailing text)."""

from __future__ import annotations

import re

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[^\n]*\n(.*?)(?:```|$)", re.DOTALL)
_START = re.compile(r"\b(SELECT|WITH)\b", re.IGNORECASE)
# A statement of another kind at the start of a line: handed on whole, for the guard to refuse.
_OTHER = re.compile(r"^\s*(INSERT|UPDATE|DELETE|DROP|CREATE|ALTER|REPLACE|PRAGMA|ATTACH|DETACH|VACUUM)\b", re.IGNORECASE | re.MULTILINE)


def _first_statement(text: str) -> str:
    """Text up to the first `;` outside quotes (the rest is another statement or prose)."""
    quote: str | None = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in ("'", '"', "`"):
            quote = ch
        elif ch == ";":
            return text[:i]
    return text


def _clean(sql: str) -> str:
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return _first_statement("\n".join(lines)).strip()


def extract_sql(text: str) -> str | None:
    """The first SQL statement in `text`: a fenced block if there is one, else text from SELECT/WITH on.

    A statement that is not a query is returned as written, so that the guard refuses it and the
    refusal can go back to the model; nothing here decides what is safe.
    """
    for lang, body in _FENCE.findall(text):
        if lang.lower() in ("", "sql", "sqlite"):
            sql = _clean(body)
            if _START.match(sql) or _OTHER.match(sql):
                return sql
    starts = [m for m in (_START.search(text), _OTHER.search(text)) if m is not None]
    if not starts:
        return None
    match = min(starts, key=lambda m: m.start())
    rest = text[match.start():]
    # Without a fence, prose after the query usually starts after a blank line.
    rest = re.split(r"\n\s*\n", rest, maxsplit=1)[0]
    sql = _clean(rest.replace("```", ""))
    return sql or None
