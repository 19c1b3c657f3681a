"""Typed task parameters: every task is checked against the workload's ``Params`` before anything is spawned.

A workload declares its parameters by defining ``Params`` in ``workload.py``, usually a
pydantic model that refuses unknown keys::

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        n: int = 1000
        lr: float

(a dataclass or a TypedDict works too; pydantic validates any of them). Values are checked
strictly, as JSON data: ``10`` is an int but ``"10"`` and ``true`` are not. A workload without
``Params`` gets its parameters as written, unchecked.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from pydantic import TypeAdapter, ValidationError


class ParamsError(ValueError):
    """One parameter is wrong; ``field`` names it (dotted for nested values)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@cache
def workload_params() -> TypeAdapter | None:
    """The validator of ``workload.Params``, or ``None`` when the workload declares no parameters."""
    from . import workload

    model = getattr(workload, "Params", None)
    return None if model is None else TypeAdapter(model)


def check(params: dict[str, Any], schema: TypeAdapter | None) -> dict[str, Any]:
    """The parameters as the job will receive them (defaults filled in, JSON-able), or :class:`ParamsError`."""
    try:
        text = json.dumps(params, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ParamsError(_first_bad_key(params), f"not JSON data ({exc})") from None
    if schema is None:
        return params
    try:
        value = schema.validate_json(text, strict=True)
    except ValidationError as exc:
        raise _explain(exc, schema) from None
    return schema.dump_python(value, mode="json")


def known_names(schema: TypeAdapter) -> list[str]:
    try:
        return sorted(schema.json_schema().get("properties", {}))
    except Exception:  # a type without a JSON schema: the names are only a hint
        return []


def _explain(exc: ValidationError, schema: TypeAdapter) -> ParamsError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    field = ".".join(str(part) for part in first["loc"]) or "(parameters)"
    if first["type"] == "extra_forbidden":
        known = known_names(schema) if len(first["loc"]) == 1 else []
        message = "unknown parameter" + (f" (the workload's Params has: {', '.join(known)})" if known else "")
    elif first["type"] == "missing":
        message = "required, but not given"
    else:
        message = f"{first['msg']} (got {json.dumps(first['input'])})"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return ParamsError(field, message)


def _first_bad_key(params: dict[str, Any]) -> str:
    for key, value in params.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            return str(key)
    return "(parameters)"
