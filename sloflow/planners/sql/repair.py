"""Schema-aware repair of SQL names, and hints for the model when a name cannot be repaired.

Small models often write a real column in another spelling (`pet_type` for `PetType`), take it
from the wrong table of the query, join two tables on columns they lack, or leave a column that
two joined tables share unqualified. When the intended name is unambiguous (one schema name equal
after dropping case and underscores, the only table of the query holding that column, the one
join key between two tables, tables joined on that very column) the query is rewritten before
the guard sees it; otherwise `name_hints` tells the revision prompt
where similar names live. The repaired query still goes through the guard like any other.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence

import sqlglot
from sqlglot import exp

from sloflow.planners.sql.linking import join_path, parse_join_key

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


def _has_column(schema: Schema, table: str, name: str) -> bool:
    return any(_key(c) == _key(name) for c in schema[table])


def _repair_joins(tree: exp.Expression, by_ref: Mapping[str, str], schema: Schema, join_keys: Sequence[str]) -> list[str]:
    """Replace `A JOIN B ON a.x = b.y` naming a column A or B lacks by the one join key between A and B.

    Only conditions that cannot run are touched, and only when the schema has exactly one way to
    join the two tables, so the rewrite is what the query can only have meant.
    """
    between: dict[frozenset[str], list[tuple[tuple[str, str], tuple[str, str]]]] = {}
    for key in join_keys:
        if (parsed := parse_join_key(key)) is not None:
            between.setdefault(frozenset((parsed[0][0].lower(), parsed[1][0].lower())), []).append(parsed)
    fixes = []
    for join in tree.find_all(exp.Join):
        on = join.args.get("on")
        if not isinstance(on, exp.EQ) or not isinstance(on.this, exp.Column) or not isinstance(on.expression, exp.Column):
            continue
        left, right = on.this, on.expression
        homes = [by_ref.get(left.table.lower()), by_ref.get(right.table.lower())]
        if homes[0] is None or homes[1] is None or homes[0] == homes[1]:
            continue
        if _has_column(schema, homes[0], left.name) and _has_column(schema, homes[1], right.name):
            continue
        keys = between.get(frozenset((homes[0].lower(), homes[1].lower())), [])
        if len(keys) != 1:
            continue
        qualifier = {homes[0].lower(): left.table, homes[1].lower(): right.table}
        (ta, ca), (tb, cb) = keys[0]
        fixed = exp.EQ(this=exp.column(ca, table=qualifier[ta.lower()]), expression=exp.column(cb, table=qualifier[tb.lower()]))
        fixes.append(f"join {on.sql(dialect='sqlite')} -> {fixed.sql(dialect='sqlite')}")
        join.set("on", fixed)
    return fixes


def _own_tables(select: exp.Expression) -> list[exp.Table]:
    """The tables of `select`'s own FROM and JOINs, not its sub-queries'."""
    return [t for t in select.find_all(exp.Table) if t.find_ancestor(exp.Select) is select]


def _joined_on(col: exp.Column, tables: Mapping[str, str], schema: Schema) -> str | None:
    """For an unqualified column that several tables of its SELECT hold, all joined on it with
    equalities (`a.x = b.x`), the first table's reference: every choice gives the same value."""
    select = col.find_ancestor(exp.Select)
    if select is None:
        return None
    own = [t for t in _own_tables(select) if t.name.lower() in tables]
    holders = [t.alias_or_name for t in own if any(c.lower() == col.name.lower() for c in schema[tables[t.name.lower()]])]
    if len(holders) < 2:
        return None
    joined = set()
    for eq in select.find_all(exp.EQ):
        sides = (eq.this, eq.expression)
        if eq.find_ancestor(exp.Select) is select and all(isinstance(x, exp.Column) and x.name.lower() == col.name.lower() for x in sides):
            joined |= {x.table.lower() for x in sides}
    return holders[0] if all(h.lower() in joined for h in holders) else None


def repair_names(sql: str, schema: Schema, join_keys: Sequence[str] = ()) -> tuple[str, list[str]]:
    """`sql` with unambiguous misspelt table and column names and impossible join conditions
    fixed, and what was changed."""
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
    fixes += _repair_joins(tree, by_ref, schema, join_keys)
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
        if home is None and (qualifier := _joined_on(col, tables, schema)) is not None:
            fixes.append(f"column {name} -> {qualifier}.{name}")
            col.set("table", exp.to_identifier(qualifier))
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


def _visible_tables(col: exp.Column, schema_of: Mapping[str, str]) -> list[str]:
    """Schema tables an unqualified column can come from: its own SELECT's and the enclosing ones'."""
    seen: list[str] = []
    select = col.find_ancestor(exp.Select)
    while select is not None:
        seen += [schema_of[t.name.lower()] for t in _own_tables(select) if t.name.lower() in schema_of]
        select = select.find_ancestor(exp.Select)
    return list(dict.fromkeys(seen))


def name_hints(sql: str | None, schema: Schema, join_keys: Sequence[str] = (), limit: int = 4) -> list[str]:
    """For each table or column of `sql` that is not where the query takes it from, where it is,
    and the join keys that lead there."""
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

    def route(start: Sequence[str], owners: Sequence[str]) -> str:
        """The join keys to the nearest owner of a column (the model usually means that one)."""
        paths = [p for o in owners if (p := join_path(start, o, list(schema), join_keys))]
        return f" (join on {'; '.join(min(paths, key=len))})" if paths else ""

    hints: list[str] = []
    for node in tree.find_all(exp.Table):
        if node.name and node.name.lower() not in tables:
            similar = near(node.name, list(schema) + qualified)
            where = f"; similar names: {', '.join(similar)}" if similar else ""
            hints.append(f"there is no table {node.name}{where}")
    by_ref = {n.alias_or_name.lower(): tables[n.name.lower()] for n in tree.find_all(exp.Table) if n.name.lower() in tables}
    aliases = _output_aliases(tree)
    for col in tree.find_all(exp.Column):
        name = col.name
        if not name or (not col.table and name.lower() in aliases):
            continue
        home = by_ref.get(col.table.lower()) if col.table else None
        if col.table and home is None:
            continue  # a sub-query's alias
        looked_in = [home] if home else _visible_tables(col, tables)
        if any(_key(c) == _key(name) for t in looked_in for c in schema[t]):
            continue
        owners = [t for t in schema if any(_key(c) == _key(name) for c in schema[t])]
        if owners:
            where = ", ".join(looked_in) or "the tables used"
            hints.append(f"{name} is a column of {', '.join(owners)}, not of {where}{route(looked_in, owners)}")
        else:
            similar = near(name, qualified)
            where = f"; similar columns: {', '.join(similar)}" if similar else ""
            hints.append(f"no table has a column {name}{where}")
    return list(dict.fromkeys(hints))
