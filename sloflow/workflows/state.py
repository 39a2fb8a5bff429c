"""A workflow's state: reading its fields, and checking a run's input against its schema."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, get_type_hints, is_typeddict

from pydantic import TypeAdapter, ValidationError
from typing_extensions import NotRequired, Required
from typing_extensions import TypedDict as TypedDictX

from sloflow.errors import InvalidRequest


class InvalidInput(InvalidRequest):
    """A run's input does not fit the workflow's state schema."""

    status_code = 422
    code = "invalid_input"


def read_field(state: Any, key: str, default: Any = None) -> Any:
    """A field of a state that is a pydantic model or a dict."""
    if isinstance(state, Mapping):
        return state.get(key, default)
    return getattr(state, key, default)


_FIELDS: dict[int, tuple[TypeAdapter[Any], frozenset[str] | None]] = {}


def _known_fields(schema: TypeAdapter[Any]) -> frozenset[str] | None:
    """The top-level fields an input may have (None: any), read once per schema."""
    cached = _FIELDS.get(id(schema))
    if cached is None or cached[0] is not schema:
        doc = schema.json_schema()
        open_ended = "properties" not in doc or doc.get("additionalProperties", False) is not False
        cached = _FIELDS[id(schema)] = (schema, None if open_ended else frozenset(doc["properties"]))
    return cached[1]


def check_input(schema: TypeAdapter[Any], workflow: str, data: Any) -> Any:
    """`data` validated by `schema`, or `InvalidInput` naming each field at fault (an unknown one too)."""
    known = _known_fields(schema) if isinstance(data, Mapping) else None
    fields = [
        {"field": str(k), "problem": f"not a field of this input (known: {', '.join(sorted(known))})"}
        for k in (data if known is not None else ())
        if k not in known  # type: ignore[operator]
    ]
    try:
        value = schema.validate_python(data)
    except ValidationError as exc:
        fields += [{"field": ".".join(str(p) for p in e["loc"]) or "input", "problem": e["msg"]} for e in exc.errors()]
    if fields:
        summary = "; ".join(f"{f['field']}: {f['problem']}" for f in fields)
        raise InvalidInput(f"input does not fit workflow {workflow!r}: {summary}", details={"fields": fields}) from None
    return value


def input_adapter(schema: Any) -> TypeAdapter[Any]:
    """A validator for `schema`; a `typing.TypedDict` is rebuilt as pydantic needs it before 3.12."""
    if is_typeddict(schema) and sys.version_info < (3, 12) and type(schema).__module__ == "typing":
        hints = get_type_hints(schema, include_extras=True)
        required = schema.__required_keys__
        fields = {k: Required[t] if k in required else NotRequired[t] for k, t in hints.items()}
        schema = TypedDictX(schema.__name__, fields)  # type: ignore[operator]
    return TypeAdapter(schema)
