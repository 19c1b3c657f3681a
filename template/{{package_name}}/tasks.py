"""The tasks file: one JSON object per line, each with a unique string ``id``.

Errors name the file and line (``tasks.jsonl:3: ...``) and are raised before
anything is spawned, so a bad file never leads to a half-spawned batch.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def load_tasks(path: Path) -> list[Task]:
    """Read and validate every task in ``path`` (blank lines and ``#`` comments are skipped)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise TaskFileError(f"{path}: tasks file not found") from None
    except IsADirectoryError:
        raise TaskFileError(f"{path}: is a directory, not a tasks file") from None
    except UnicodeDecodeError as exc:
        line = Path(path).read_bytes()[: exc.start].count(b"\n") + 1
        raise TaskFileError(f"{path}:{line}: not UTF-8 text (byte {exc.object[exc.start]:#04x})") from None
    except OSError as exc:
        raise TaskFileError(f"{path}: cannot read ({exc.strerror})") from None
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskFileError(f"{where}: invalid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise TaskFileError(f"{where}: each line must be a JSON object, got {type(obj).__name__}")
        task_id = obj.pop("id", None)
        if not isinstance(task_id, str) or not TASK_ID.match(task_id):
            raise TaskFileError(f"{where}: 'id' must be a string of letters, digits, '.', '_' or '-' (got {task_id!r})")
        if task_id in seen:
            raise TaskFileError(f"{where}: duplicate id {task_id!r} (first on line {seen[task_id]})")
        seen[task_id] = lineno
        tasks.append(Task(task_id, obj))
    if not tasks:
        raise TaskFileError(f"{path}: no tasks found")
    return tasks
