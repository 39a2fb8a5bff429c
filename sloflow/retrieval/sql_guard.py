"""The SQL guard: one read-only SELECT over known tables and columns, with a LIMIT, or a refusal.

The statement is parsed by sqlglot and the SQL that runs is regenerated from the checked tree
(without comments), so what was checked is what runs. The guard is the first of three layers: the
connection is read-only and the engine refuses writes and attachments on its own (databases.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError, ParseError, TokenError
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from sloflow.errors import UnsafeSql

MAX_SQL_CHARS = 20_000

# Statement and clause node types that write, change settings or reach outside the database.
_FORBIDDEN_NODES = tuple(
    getattr(exp, name)
    for name in (
        "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "AlterColumn", "TruncateTable",
        "Command", "Pragma", "Attach", "Detach", "Into", "Set", "Transaction", "Commit", "Rollback",
        "Copy", "Use", "LoadData", "Describe", "Show", "Cache", "Uncache", "Refresh", "Kill", "Install",
        "Lock", "Grant", "Revoke", "Analyze", "Summarize", "Export", "Put", "Get", "Comment", "Declare",
        "Execute",
    )
    if hasattr(exp, name)
)  # fmt: skip

# Functions that read or write files, load code, reach other databases or the OS, or sleep.
FORBIDDEN_FUNCTIONS = frozenset(
    """load_extension readfile writefile edit fts3_tokenizer randomblob zeroblob
    read_csv read_csv_auto read_parquet parquet_scan read_json read_json_auto read_json_objects read_ndjson
    read_ndjson_auto read_text read_blob read_xlsx glob sniff_csv query query_table getenv current_setting
    set_config sqlite_scan sqlite_attach postgres_scan postgres_attach mysql_scan iceberg_scan delta_scan
    pg_read_file pg_read_binary_file pg_ls_dir pg_stat_file pg_sleep pg_terminate_backend lo_import
    lo_export dblink system sleep""".split()
)
_FORBIDDEN_PREFIXES = ("pg_", "read_", "sqlite_", "duckdb_", "pragma_", "lo_", "dblink")


def _refuse(rule: str, message: str, sql: str) -> UnsafeSql:
    return UnsafeSql(f"refused ({rule}): {message}", details={"rule": rule, "sql": sql[:2000]})


def function_name(node: exp.Func) -> str:
    """A function's name as written (anonymous functions) or as sqlglot knows it."""
    return (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()


def is_forbidden_function(name: str) -> bool:
    """Whether a function name is on the deny list (shared with the SQLite authorizer)."""
    name = name.lower()
    return name in FORBIDDEN_FUNCTIONS or name.startswith(_FORBIDDEN_PREFIXES)


def _check_shape(tree: exp.Expression, sql: str) -> None:
    root = tree.unnest() if isinstance(tree, exp.Subquery) else tree
    if not isinstance(root, (exp.Select, exp.SetOperation)):
        if isinstance(root, exp.Command):
            found = f"a {str(root.this).upper()} statement"
        elif isinstance(root, _FORBIDDEN_NODES):
            found = f"a {root.key.upper()} statement"
        else:
            found = f"not a statement (it parses as a {root.key} expression)"
        raise _refuse("read_only", f"only a SELECT (or WITH ... SELECT) may run; this is {found}", sql)
    for node in tree.walk():
        if isinstance(node, _FORBIDDEN_NODES):
            what = "SELECT ... INTO" if isinstance(node, exp.Into) else node.key.upper()
            raise _refuse("read_only", f"{what} is not allowed inside a read-only query", sql)
        if isinstance(node, exp.Func) and is_forbidden_function(function_name(node)):
            raise _refuse("function", f"function {function_name(node)}() may read files or the system and is not allowed", sql)


# Functions that build a value as long as a number they are given: a literal over the cap per
# value is refused here, by name (SQLite would only return NULL for it, silently).
_SIZED_FUNCTIONS = frozenset({"printf", "format", "repeat", "lpad", "rpad", "space"})
MAX_VALUE_BYTES = 1 << 20


def _check_sizes(tree: exp.Expression, sql: str) -> None:
    for node in tree.find_all(exp.Func):
        if function_name(node) not in _SIZED_FUNCTIONS:
            continue
        for lit in node.find_all(exp.Literal):
            if not lit.is_string and lit.is_number and abs(float(lit.this)) > MAX_VALUE_BYTES:
                raise _refuse(
                    "result_size",
                    f"{function_name(node)}() with {lit.this} would build a value over {MAX_VALUE_BYTES} bytes, the cap per value",
                    sql,
                )


def _check_tables(tree: exp.Expression, tables: set[str], sql: str) -> None:
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            raise _refuse("table", f"table functions such as {table.this.sql()} are not allowed; query the registered tables", sql)
        if table.catalog or (table.db and table.db.lower() != "main"):
            raise _refuse("table", f"{table.sql()}: only tables of this database may be used (no other schemas or databases)", sql)
        if table.name.lower() not in tables and table.name.lower() not in ctes:
            raise _refuse("unknown_table", f"table {table.name!r} does not exist; known tables: {', '.join(sorted(tables))}", sql)


def _double_quoted_strings_to_literals(tree: exp.Expression, known: set[str]) -> None:
    """SQLite reads a double-quoted word that names no column as a string (`name = "Bob"`); do the same."""
    for column in list(tree.find_all(exp.Column)):
        ident = column.this
        if isinstance(ident, exp.Identifier) and ident.quoted and not column.table and ident.name.lower() not in known:
            column.replace(exp.Literal.string(ident.name))


def _names_in_scope(tree: exp.Expression, schema: Mapping[str, Mapping[str, str]]) -> set[str]:
    names = {c.lower() for cols in schema.values() for c in cols}
    names |= {a.alias.lower() for a in tree.find_all(exp.Alias)}
    for alias in tree.find_all(exp.TableAlias):
        names.add(alias.name.lower())
        names |= {c.name.lower() for c in alias.columns}
    return names


def _enforce_limit(tree: exp.Expression, max_rows: int) -> exp.Expression:
    limit = tree.args.get("limit")
    value = limit.expression if isinstance(limit, exp.Limit) else None
    if isinstance(value, exp.Literal) and value.is_int and int(value.name) <= max_rows:
        return tree
    # No LIMIT, a larger one, or one that is an expression: the cap applies.
    return tree.limit(max_rows, copy=False)


def check_sql(sql: str, schema: Mapping[str, Mapping[str, str]], dialect: str = "sqlite", max_rows: int = 1000) -> str:
    """The SQL to run for `sql` if it is one safe read-only query over `schema` ({table: {column: type}})."""
    if len(sql) > MAX_SQL_CHARS:
        raise _refuse("size", f"the statement has {len(sql)} characters; the limit is {MAX_SQL_CHARS}", sql)
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except (ParseError, TokenError) as exc:
        raise _refuse("parse", f"the statement does not parse as {dialect} SQL: {str(exc).splitlines()[0]}", sql) from None
    if len(statements) != 1:
        raise _refuse("one_statement", f"exactly one statement is allowed; found {len(statements)}", sql)
    tree = statements[0]
    _check_shape(tree, sql)
    _check_sizes(tree, sql)
    lowered = {t.lower(): {c.lower(): ty for c, ty in cols.items()} for t, cols in schema.items()}
    _check_tables(tree, set(lowered), sql)
    if dialect == "sqlite":
        _double_quoted_strings_to_literals(tree, _names_in_scope(tree, lowered))
    probe = tree.copy()
    # SQLite and DuckDB match names case-insensitively, quoted or not; compare in lower case.
    for ident in probe.find_all(exp.Identifier):
        ident.set("this", ident.name.lower())
    try:
        qualify(probe, schema=MappingSchema(lowered, dialect=dialect), dialect=dialect, validate_qualify_columns=True)
    except OptimizeError as exc:
        raise _refuse("unknown_column", f"{exc}; check the column names against the schema", sql) from None
    except Exception as exc:  # noqa: BLE001 - what cannot be checked does not run
        raise _refuse("unchecked", f"the statement could not be checked against the schema ({exc}); simplify it", sql) from None
    tree = _enforce_limit(tree.unnest() if isinstance(tree, exp.Subquery) else tree, max_rows)
    return tree.sql(dialect=dialect, comments=False)
