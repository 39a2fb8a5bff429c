"""Arithmetic the model writes as Python assignments, evaluated without running it as Python.

The learn pass writes the first lines of a program about a context, its values as assignments
(`eggs_per_day = 16`, `eggs_left = eggs_per_day - 3`); a test-time answer continues that program
with the steps its question needs, ending in `answer = ...`.
Each assignment's right-hand side is evaluated by `simpleeval` (arithmetic, names assigned before,
and a few numeric functions; no attribute access beyond `math.<fn>`, no imports, no calls to
anything else, bounded powers), so model-written code never executes. A statement that is not a
plain assignment, or whose value cannot be computed, is dropped with the reason.
"""

from __future__ import annotations

import ast
import math
from types import SimpleNamespace

from simpleeval import SimpleEval

MAX_NAMES = 60  # assignments kept from one piece of code
_FUNCTIONS = {"round": round, "min": min, "max": max, "abs": abs, "int": int, "float": float, "sum": sum, "ceil": math.ceil, "floor": math.floor}
_MATH = SimpleNamespace(ceil=math.ceil, floor=math.floor, sqrt=math.sqrt, pi=math.pi)


def continued_code(output: str) -> str:
    """The code of a reply that continues a code block its prompt opened: what comes before the block's closing fence."""
    return output.split("```", 1)[0].strip()


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def evaluate(code: str, names: dict[str, float] | None = None) -> tuple[dict[str, float], list[str]]:
    """(every name the code assigns a number to, with `names` before them; why statements were dropped).

    Statements run in order, so a later assignment sees the earlier ones; code that does not parse
    is dropped line by line (a reply cut by its token bound loses only its last line).
    """
    known, _, dropped = _run(code, names or {})
    return known, dropped


def _run(code: str, names: dict[str, float]) -> tuple[dict[str, float], list[str], list[str]]:
    """(names known after `code`, the names it assigned in order, why statements were dropped)."""
    known = dict(names)
    assigned: list[str] = []
    dropped: list[str] = []
    for statement in _statements(code, dropped):
        target = statement.targets[0] if isinstance(statement, ast.Assign) and len(statement.targets) == 1 else None
        if not isinstance(target, ast.Name):
            dropped.append(f"not an assignment to one name: {ast.unparse(statement)[:60]}")
            continue
        evaluator = SimpleEval(names={**known, "math": _MATH}, functions=_FUNCTIONS)
        try:
            value = _number(evaluator.eval(ast.unparse(statement.value)))
        except Exception as error:  # noqa: BLE001 - any failure of model-written arithmetic drops that line only
            dropped.append(f"{target.id}: {type(error).__name__}")
            continue
        if value is None:
            dropped.append(f"{target.id}: not a number")
        elif target.id in known or len(known) < MAX_NAMES:
            known[target.id] = value
            assigned.append(target.id)
    return known, assigned, dropped


def _statements(code: str, dropped: list[str]) -> list[ast.stmt]:
    try:
        return ast.parse(code).body
    except SyntaxError:
        pass
    statements: list[ast.stmt] = []
    for line in code.splitlines():
        try:
            statements.extend(ast.parse(line.strip()).body)
        except SyntaxError:
            dropped.append(f"does not parse: {line.strip()[:60]}")
    return statements


def assignments(code: str, *, leaving: frozenset[str] = frozenset()) -> str:
    """The lines of `code` that assign a number to a name, given the lines kept before them (comments kept).

    A line assigning a name in `leaving` is dropped, and so are the lines built on it.
    """
    known: dict[str, float] = {}
    kept: list[str] = []
    for line in code.splitlines():
        values, assigned, dropped = _run(line, known)
        if assigned and not dropped and leaving.isdisjoint(assigned):
            known = values
            kept.append(line.strip())
    return "\n".join(kept)


def learned_values(code: str) -> str:
    """What a learned context keeps of a program's first lines: the assignments that evaluate, none to `answer`.

    Written before any question, an `answer` line can only guess one; the question's call writes it.
    """
    return assignments(code, leaving=frozenset({"answer"}))


def result(code: str, names: dict[str, float], name: str = "answer") -> float | None:
    """The number `code` assigns to `name`, else to the last name it assigns, given `names`; None if none evaluates.

    A `name` among `names` does not count. The fallback is for replies that update a quantity
    (`apples_left = apples_left - 2`) without the asked-for last line.
    """
    values, assigned, _ = _run(code, {k: v for k, v in names.items() if k != name})
    if name in assigned:
        return values[name]
    return values[assigned[-1]] if assigned else None
