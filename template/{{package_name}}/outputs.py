"""Files a job leaves behind, written so that a kill at any moment leaves the old version or the new one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically: a temporary file, flushed to disk, renamed over ``path``.
    The one way this project writes a file that must never be seen half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def scalar_fields(value: Any, prefix: str = "") -> dict[str, Any]:
    """The columns a result gives ``results/summary.csv``: its scalar fields, those of nested objects
    under dotted names (``final.val_loss``, ``corpus.name``); lists are left out."""
    if not isinstance(value, dict):
        return {prefix or "value": value} if _is_scalar(value) else {}
    columns: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict):
            columns.update(scalar_fields(item, f"{name}."))
        elif _is_scalar(item):
            columns[name] = item
    return columns


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON atomically (:func:`write_text`)."""
    write_text(path, json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")
