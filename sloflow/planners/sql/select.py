"""Selection among SQL candidates by execution agreement (self-consistency over results).

Candidates that ran are grouped by what they returned (rows as a multiset, columns in any
order); the largest group wins and ties go to the group holding the cheapest query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp


@dataclass
class Candidate:
    """One SQL candidate and what became of it: rows when it ran, else the error."""

    sql: str | None
    variant: int = 0
    rows: list[list[Any]] | None = None
    columns: list[str] = field(default_factory=list)
    error: str | None = None
    revisions: int = 0
    truncated: bool = False
    settled: bool = False  # revised into the same query: the model stands by it, empty or not

    @property
    def ran(self) -> bool:
        return self.rows is not None and self.error is None

    @property
    def needs_revision(self) -> bool:
        """Failed to parse, refused, errored, or returned nothing (unless the model stood by it)."""
        return not self.ran or (not self.rows and not self.settled)


def _norm(value: Any) -> tuple[int, Any]:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, float):
        value = round(value, 6)
    if isinstance(value, (int, float)):
        return (0, value)
    if value is None:
        return (1, "")
    return (2, value.hex() if isinstance(value, (bytes, bytearray)) else str(value))


def result_signature(rows: Sequence[Sequence[Any]]) -> tuple:
    """A hashable key of a result, free of row and column order: candidates with equal keys agree."""
    return tuple(sorted(tuple(sorted(_norm(v) for v in row)) for row in rows))


def query_cost(sql: str) -> tuple[int, int, int]:
    """How expensive a query looks: (SELECTs, joins, characters); smaller is cheaper."""
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
        selects = sum(1 for _ in tree.find_all(exp.Select))
        joins = sum(1 for _ in tree.find_all(exp.Join))
    except Exception:
        selects, joins = 9, 9
    return selects, joins, len(sql)


def select_candidate(candidates: Sequence[Candidate]) -> tuple[Candidate | None, int]:
    """The chosen candidate and the size of its agreeing group; (None, 0) when none ran."""
    groups: dict[tuple, list[Candidate]] = {}
    for c in candidates:
        if c.ran and c.sql:
            groups.setdefault(result_signature(c.rows or []), []).append(c)
    if not groups:
        return None, 0

    def cheapest(group: list[Candidate]) -> Candidate:
        return min(group, key=lambda c: query_cost(c.sql or ""))

    def rank(item: tuple[tuple, list[Candidate]]) -> tuple:
        signature, group = item
        cost = query_cost(cheapest(group).sql or "")
        return (len(group), tuple(-x for x in cost))

    _, best = max(groups.items(), key=rank)
    return cheapest(best), len(best)
