"""References to earlier outputs (`$var1$`, `$var1.items.0.id$`, `$var1.rows[0][1]$`) and their resolution.

A string that is exactly one reference takes the referenced value with its type; a reference
inside a longer string is formatted into it (strings as they are, anything else as JSON).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from sloflow.errors import InvalidRequest

# A label starts with a letter, so prices like "$100-$200" are not references.
REFERENCE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)((?:\.[^.$\s\[\]]+|\[-?\d+\])*)\$")
_SEGMENT = re.compile(r"\.([^.$\s\[\]]+)|\[(-?\d+)\]")


class UnresolvedReference(InvalidRequest):
    """A reference names no available output, or a field or index that output does not have."""


@dataclass(frozen=True)
class Reference:
    """One `$label.path$` occurrence: the step label and the field/index path below it."""

    label: str
    path: tuple[str, ...]
    text: str


def reference_of(match: re.Match[str]) -> Reference:
    """The Reference a match of REFERENCE stands for."""
    path = tuple(field or index for field, index in _SEGMENT.findall(match.group(2)))
    return Reference(match.group(1), path, match.group(0))


def find_references(value: Any) -> list[Reference]:
    """Every reference in a JSON-like value (strings inside lists and dicts too), in order."""
    if isinstance(value, str):
        return [reference_of(m) for m in REFERENCE.finditer(value)]
    if isinstance(value, Mapping):
        return [r for v in value.values() for r in find_references(v)]
    if isinstance(value, (list, tuple)):
        return [r for v in value for r in find_references(v)]
    return []


def whole_reference(value: Any) -> Reference | None:
    """The reference a string consists of entirely, else None (such a value may stand for any type)."""
    if not isinstance(value, str):
        return None
    match = REFERENCE.fullmatch(value)
    return reference_of(match) if match else None


def plain(value: Any) -> Any:
    """A JSON-like copy: pydantic models and dataclasses (SearchHit, SqlResult) become dicts."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Prefer the type's own JSON form: SqlResult.to_dict turns blobs into hex.
        to_dict = getattr(value, "to_dict", None)
        return plain(to_dict() if callable(to_dict) else dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    return str(value)


def lookup(value: Any, path: tuple[str, ...], name: str = "output") -> Any:
    """The value at `path` (dict keys, list indexes) inside a JSON-like value; UnresolvedReference if absent.

    A field of a list is that field of every item, flattened: `$var2.items.product_id$` is the
    product id of each item (a step given such a list where one value is expected runs per item).
    """
    here = name
    for depth, segment in enumerate(path):
        if isinstance(value, Mapping):
            if segment not in value:
                keys = ", ".join(list(map(str, value))[:12]) or "none"
                raise UnresolvedReference(f"{here} has no field {segment!r} (fields: {keys})")
            value = value[segment]
        elif isinstance(value, list):
            if not re.fullmatch(r"-?\d+", segment):
                return _flat([lookup(item, path[depth:], f"{here}.{i}") for i, item in enumerate(value)])
            if not -len(value) <= int(segment) < len(value):
                raise UnresolvedReference(f"{here} has {len(value)} items; there is no item {segment}")
            value = value[int(segment)]
        else:
            raise UnresolvedReference(f"{here} is a {type(value).__name__}, not an object or list; it has no field {segment!r}")
        here = f"{here}.{segment}"
    return value


def _flat(values: list[Any]) -> list[Any]:
    return [v for value in values for v in (value if isinstance(value, list) else [value])]


def resolve(value: Any, outputs: Mapping[str, Any]) -> Any:
    """`value` with every reference replaced by the referenced part of `outputs` (label -> output)."""
    if isinstance(value, str):
        whole = whole_reference(value)
        if whole is not None:
            return _value_of(whole, outputs)
        return REFERENCE.sub(lambda m: _format(_value_of(reference_of(m), outputs)), value)
    if isinstance(value, Mapping):
        return {k: resolve(v, outputs) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [resolve(v, outputs) for v in value]
    return value


def _value_of(ref: Reference, outputs: Mapping[str, Any]) -> Any:
    if ref.label not in outputs:
        raise UnresolvedReference(f"{ref.text}: there is no output of {ref.label}")
    try:
        return lookup(plain(outputs[ref.label]), ref.path, ref.label)
    except UnresolvedReference as exc:
        raise UnresolvedReference(f"{ref.text}: {exc.message}") from None


def _format(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
