"""The tasks file: one JSON object per line, each with a unique string ``id``.

The other keys are the task's parameters, checked against the workload's ``Params``
(see :mod:`.params`). Errors name the file and line (``tasks.jsonl:3: n: ...``) and are
raised before anything is spawned, so a bad file never leads to a half-spawned batch.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from .params import ParamsError, check, workload_params

TASK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class TaskFileError(ValueError):
    """A problem in the tasks file, with its location in the message."""


@dataclass(frozen=True)
class Task:
    id: str
    params: dict[str, Any]

    def payload(self) -> dict[str, Any]:
        """What the remote function receives."""
        return {"id": self.id, **self.params}


def read_text(path: Path, what: str = "tasks file") -> str:
    """The text of ``path``, or a :class:`TaskFileError` that says what is wrong with it."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskFileError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise TaskFileError(f"{path}: is a directory, not a {what}") from None
    except UnicodeDecodeError as exc:
        line = Path(path).read_bytes()[: exc.start].count(b"\n") + 1
        raise TaskFileError(f"{path}:{line}: not UTF-8 text (byte {exc.object[exc.start]:#04x})") from None
    except OSError as exc:
        raise TaskFileError(f"{path}: cannot read ({exc.strerror})") from None


WORKLOAD = "workload"  # check parameters against workload.Params (if it defines one)
SHOWN = 10  # bad lines told with their reason; the line numbers of the rest follow


def load_tasks(path: Path, schema: TypeAdapter | None | str = WORKLOAD) -> list[Task]:
    """Read and validate every task in ``path`` (blank lines and ``#`` comments are skipped).

    ``schema`` checks each task's parameters: by default the workload's ``Params``; ``None`` checks nothing.
    """
    if schema is WORKLOAD:
        schema = workload_params()
    lines = read_text(path).splitlines()
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    bad: list[tuple[int, str]] = []  # every bad line is found in one pass: one line of error each
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            tasks.append(_task(line, lineno, seen, schema))
        except TaskFileError as exc:
            bad.append((lineno, str(exc)))
    if bad:
        told = [f"{path}:{lineno}: {message}" for lineno, message in bad[:SHOWN]]
        rest = [str(lineno) for lineno, _ in bad[SHOWN:]]
        if rest:
            where = ", ".join(rest[:SHOWN]) + (", ..." if len(rest) > SHOWN else "")
            told.append(f"{path}: {len(rest)} more bad line(s): {where}")
        raise TaskFileError("\n".join(told))
    if not tasks:
        raise TaskFileError(f"{path}: no tasks found")
    return tasks


def _task(line: str, lineno: int, seen: dict[str, int], schema: TypeAdapter | None) -> Task:
    """The task on one line of the file; a :class:`TaskFileError` (without the location) if it is bad."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TaskFileError(f"invalid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise TaskFileError(f"each line must be a JSON object, got {type(obj).__name__}")
    if "id" not in obj:
        raise TaskFileError('"id" is missing: each task needs a unique one, e.g. {"id": "run-1", ...}')
    task_id = obj.pop("id")
    if not isinstance(task_id, str) or not TASK_ID.match(task_id):
        raise TaskFileError(f"'id' must be a string of letters, digits, '.', '_' or '-' (got {task_id!r})")
    if task_id in seen:
        raise TaskFileError(f"duplicate id {task_id!r} (first on line {seen[task_id]})")
    seen[task_id] = lineno
    try:
        return Task(task_id, check(obj, schema))
    except ParamsError as exc:
        raise TaskFileError(str(exc)) from None
