"""Schema-aware repair of SQL names, and hints for the model when a name cannot be repaired.

Small models often write a real column in another spelling (`pet_type` for `PetType`) or take it
from the wrong table of the query. When the intended name is unambiguous (one schema name equal
after dropping case and underscores, or the only table of the query holding that column) the
query is rewritten before the guard sees it; otherwise `name_hints` tells the revision prompt
where similar names live. The repaired query still goes through the guard like any other.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence

import sqlglot
from sqlglot import exp

Schema = Mapping[str, Sequence[str]]  # table -> its column names


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _unique(names: Sequence[str]) -> str | None:
    found = list(dict.fromkeys(names))
    return found[0] if len(found) == 1 else None


def _parse(sql: str) -> exp.Expression | None:
    try:
        return sqlglot.parse_one(sql, read="sqlite")
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError):
        return None


def _output_aliases(tree: exp.Expression) -> set[str]:
    return {a.alias.lower() for a in tree.find_all(exp.Alias) if a.alias}


def repair_names(sql: str, schema: Schema) -> tuple[str, list[str]]:
    """`sql` with unambiguous misspelt table and column names fixed, and what was changed."""
    tree = _parse(sql)
    if tree is None:
        return sql, []
    tables = {t.lower(): t for t in schema}
    table_keys: dict[str, list[str]] = {}
    for t in schema:
        table_keys.setdefault(_key(t), []).append(t)
    fixes: list[str] = []

    for node in tree.find_all(exp.Table):
        if node.name.lower() in tables or not node.name:
            continue
        match = _unique(table_keys.get(_key(node.name), []))
        if match is not None:
            fixes.append(f"table {node.name} -> {match}")
            node.set("this", exp.to_identifier(match))

    # alias (or table name) -> schema table, over the whole statement: sub-queries are rarely
    # ambiguous in the queries this serves, and a wrong guess still meets the guard.
    by_ref: dict[str, str] = {}
    for node in tree.find_all(exp.Table):
        real = tables.get(node.name.lower())
        if real is not None:
            by_ref[node.alias_or_name.lower()] = real
            by_ref.setdefault(real.lower(), real)
    in_query = list(dict.fromkeys(by_ref.values()))
    columns = {t: {c.lower(): c for c in schema[t]} for t in in_query}
    aliases = _output_aliases(tree)

    for col in list(tree.find_all(exp.Column)):
        name, ref = col.name, col.table.lower()
        if not name or (not ref and name.lower() in aliases):
            continue
        home = by_ref.get(ref) if ref else None
        if ref and home is None:
            continue  # an alias of a sub-query: leave it
        if home is not None and name.lower() in columns[home]:
            continue
        if home is None and any(name.lower() in columns[t] for t in in_query):
            continue
        search = [home] if home is not None else in_query
        found = [(t, columns[t][c]) for t in search for c in columns[t] if _key(c) == _key(name)]
        spelt = found[0][1] if len(found) == 1 else None  # one table, one column: no ambiguity
        if spelt is not None:
            fixes.append(f"column {name} -> {spelt}")
            col.set("this", exp.to_identifier(spelt))
            continue
        if home is None or col.find_ancestor(exp.Join) is not None:
            continue  # in a join condition the other side is usually the one meant: leave it to the model
        # A real column of another table in the query: take it from there.
        owners = [t for t in in_query if t != home and any(_key(c) == _key(name) for c in columns[t])]
        owner = _unique(owners)
        refs = [n.alias for n in tree.find_all(exp.Table) if owner and n.name.lower() == owner.lower() and n.alias]
        if owner is not None:
            spelt = next(c for c in columns[owner].values() if _key(c) == _key(name))
            qualifier = refs[0] if refs else owner
            fixes.append(f"column {col.table}.{name} -> {qualifier}.{spelt}")
            col.set("this", exp.to_identifier(spelt))
            col.set("table", exp.to_identifier(qualifier))
    if not fixes:
        return sql, []
    return tree.sql(dialect="sqlite"), fixes


def name_hints(sql: str | None, schema: Schema, limit: int = 4) -> list[str]:
    """For each table or column of `sql` that is not where the query takes it from, where it is."""
    tree = _parse(sql or "")
    if tree is None:
        return []
    tables = {t.lower(): t for t in schema}
    qualified = [f"{t}.{c}" for t in schema for c in schema[t]]

    def near(name: str, within: Sequence[str]) -> list[str]:
        keyed = {_key(w.split(".")[-1]) + "|" + w: w for w in within}
        plain = {k.split("|")[0] for k in keyed}
        close = set(difflib.get_close_matches(_key(name), list(plain), n=limit, cutoff=0.75))
        close |= {k for k in plain if _key(name) and _key(name) in k}
        return [w for k, w in keyed.items() if k.split("|")[0] in close][:limit]

    hints: list[str] = []
    for node in tree.find_all(exp.Table):
        if node.name and node.name.lower() not in tables:
            similar = near(node.name, list(schema) + qualified)
            where = f"; similar names: {', '.join(similar)}" if similar else ""
            hints.append(f"there is no table {node.name}{where}")
    by_ref = {n.alias_or_name.lower(): tables[n.name.lower()] for n in tree.find_all(exp.Table) if n.name.lower() in tables}
    in_query = sorted(set(by_ref.values()))
    aliases = _output_aliases(tree)
    for col in tree.find_all(exp.Column):
        name = col.name
        if not name or (not col.table and name.lower() in aliases):
            continue
        home = by_ref.get(col.table.lower()) if col.table else None
        if col.table and home is None:
            continue  # a sub-query's alias
        looked_in = [home] if home else in_query
        if any(_key(c) == _key(name) for t in looked_in for c in schema[t]):
            continue
        owners = [t for t in schema if any(_key(c) == _key(name) for c in schema[t])]
        if owners:
            hints.append(f"{name} is a column of {', '.join(owners)}, not of {', '.join(looked_in) or 'the tables used'}")
        else:
            similar = near(name, qualified)
            where = f"; similar columns: {', '.join(similar)}" if similar else ""
            hints.append(f"no table has a column {name}{where}")
    return list(dict.fromkeys(hints))
