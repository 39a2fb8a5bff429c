"""Schema linking helpers: question words matched to stored values, and the tables to keep.

The LLM call itself lives in the workflow stage; this module holds the deterministic parts so
they can be tested without a model.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

# Values this common match too many questions to say anything about a column.
_STOP = frozenset(
    """a an the and or of in on at to for by with from is are was were be what which who whom whose how many
    much all any each every list show give find name names number count total average id no yes not none
    other others one two three four five six seven eight nine ten""".split()
)
MAX_MATCHES = 8
# Schemas with at most this many tables are shown whole: pruning them saves little prompt and
# risks dropping a table the query needs. Larger ones are searched through the schema index.
SHOWN_WHOLE_TABLES = 6
# A value stored in more columns than this ("open", "yes") says nothing about which one is meant.
MAX_COLUMNS_PER_VALUE = 3


def match_values(question: str, values: Mapping[str, Iterable[object]], limit: int = MAX_MATCHES) -> dict[str, list[str]]:
    """`{"table.column": [stored values]}` whose text appears as whole words in `question`.

    Longer values are preferred (they are more specific); numbers and stop words are ignored,
    since the model copies numbers from the question correctly on its own, and so are values
    stored in more than `MAX_COLUMNS_PER_VALUE` columns.
    """
    q = " " + re.sub(r"\s+", " ", question.lower()) + " "
    found: list[tuple[int, str, str]] = []
    for column, vals in values.items():
        for v in vals:
            if not isinstance(v, str):
                continue
            text = v.strip()
            low = text.lower()
            if len(low) < 2 or low in _STOP or re.fullmatch(r"[\d.,:/ -]+", low):
                continue
            if re.search(r"(?<![\w])" + re.escape(low) + r"(?![\w])", q):
                found.append((len(low), column, text))
    spread = Counter(text.lower() for _, _, text in found)
    found = [f for f in found if spread[f[2].lower()] <= MAX_COLUMNS_PER_VALUE]
    found.sort(key=lambda f: (-f[0], f[1]))
    out: dict[str, list[str]] = {}
    taken = 0
    for _, column, text in found:
        if taken >= limit:
            break
        if text not in out.get(column, []):
            out.setdefault(column, []).append(text)
            taken += 1
    return out


def parse_join_key(join_key: str) -> tuple[tuple[str, str], tuple[str, str]] | None:
    """`"a.x = b.y"` as `(("a", "x"), ("b", "y"))`, or None when it is not of that form."""
    sides = [side.strip().split(".") for side in join_key.split("=")]
    if len(sides) != 2 or any(len(side) != 2 for side in sides):
        return None
    (ta, ca), (tb, cb) = sides
    return (ta, ca), (tb, cb)


def _join_graph(all_tables: Iterable[str], join_keys: Iterable[str]) -> dict[str, dict[str, str]]:
    """table (lower case) -> {neighbour: the join key between them}."""
    graph: dict[str, dict[str, str]] = {t.lower(): {} for t in all_tables}
    for key in join_keys:
        parsed = parse_join_key(key)
        if parsed and parsed[0][0].lower() in graph and parsed[1][0].lower() in graph:
            a, b = parsed[0][0].lower(), parsed[1][0].lower()
            graph[a].setdefault(b, key)
            graph[b].setdefault(a, key)
    return graph


def _parents(graph: dict[str, dict[str, str]], starts: Iterable[str]) -> dict[str, str | None]:
    """Breadth-first from `starts`: each reached table -> the table it was reached from."""
    parent: dict[str, str | None] = {s: None for s in starts if s in graph}
    queue = list(parent)
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node]):
            if nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    return parent


def bridge_tables(
    kept: Iterable[str], all_tables: Sequence[str], join_keys: Iterable[str], max_between: int | None = None
) -> set[str]:
    """`kept` plus the tables on shortest join paths between them, so kept tables can be joined.

    With `max_between`, only paths through at most that many other tables are completed: on a
    large connected schema a long path more likely joins unrelated tables than the question's.
    """
    names = {t.lower(): t for t in all_tables}
    graph = _join_graph(all_tables, join_keys)
    keep = {k.lower() for k in kept if k.lower() in graph}
    for start in list(keep):
        parent = _parents(graph, [start])
        for target in list(keep):
            if target in parent and target != start:
                if max_between is not None and _depth(parent, target) - 1 > max_between:
                    continue
                node: str | None = target
                while node is not None:
                    keep.add(node)
                    node = parent[node]
    return {names[k] for k in keep}


def _depth(parent: dict[str, str | None], node: str) -> int:
    """Join steps from the start of a breadth-first walk to `node`."""
    steps = 0
    while (prev := parent[node]) is not None:
        node, steps = prev, steps + 1
    return steps


def join_path(start: Iterable[str], target: str, all_tables: Iterable[str], join_keys: Iterable[str]) -> list[str]:
    """The join keys of a shortest path from any table of `start` to `target` ([] if none or already there)."""
    graph = _join_graph(all_tables, join_keys)
    parent = _parents(graph, [t.lower() for t in start])
    node = target.lower()
    if node not in parent:
        return []
    keys = []
    while (prev := parent[node]) is not None:
        keys.append(graph[node][prev])
        node = prev
    return keys[::-1]


def linked_tables(
    all_tables: Sequence[str],
    model_kept: Iterable[str],
    value_columns: Iterable[str],
    retrieved: Sequence[str],
    join_keys: Iterable[str],
    max_between: int | None = None,
) -> list[str]:
    """The tables the prompt shows, in database order.

    The model's choice, plus tables whose stored values the question names, plus the tables
    that join them; when the model kept nothing, the retrieved tables.
    """
    keep = {t for t in model_kept if t in all_tables}
    keep |= {c.split(".")[0] for c in value_columns if c.split(".")[0] in all_tables}
    if not keep:
        keep = {t for t in retrieved if t in all_tables} or set(all_tables)
    keep = bridge_tables(keep, all_tables, join_keys, max_between)
    return [t for t in all_tables if t in keep]


def shown_columns(
    table: str,
    columns: Sequence[str],
    primary_key: Iterable[str],
    join_keys: Iterable[str],
    value_columns: Iterable[str],
    searched: Sequence[str],
    limit: int,
) -> list[str]:
    """The columns of `table` a filtered schema shows, in table order (CHESS's column filtering, by search).

    Its keys (primary, and either side of a join key: a kept table must stay joinable), the
    columns whose stored values the question names (`"table.column"`), and the first `limit` of
    the columns the schema search matched for the question (`searched`, best first).
    """
    low = table.lower()
    keep = {c.lower() for c in primary_key}
    for key in join_keys:
        for side_table, side_column in parse_join_key(key) or ():
            if side_table.lower() == low:
                keep.add(side_column.lower())
    keep |= {c.split(".", 1)[1].lower() for c in value_columns if c.split(".", 1)[0].lower() == low and "." in c}
    keep |= {c.lower() for c in searched[:limit]}
    return [c for c in columns if c.lower() in keep]
