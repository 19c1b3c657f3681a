"""Grid sweeps: a YAML or JSON file of parameter values that expands into one task per combination.

    # grid.yaml
    name: pi                 # optional: the start of every task id
    fixed:                   # optional: the same for every task
      seconds: 0.5
    grid:                    # every combination of these lists is one task
      n: [1000, 10000, 100000]
      lr: [0.1, 0.01]

gives 6 tasks with ids like ``pi_n-1000_lr-0.1``. An id is made from the varying values only
(with a short hash when they hold characters an id cannot, or when it would be too long), so the
same grid always gives the same ids and a re-run spawns only what is not spawned yet. Change
``name`` when you change a ``fixed`` value and want the tasks to run again.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter

from .params import ParamsError, check, workload_params
from .tasks import TASK_ID, WORKLOAD, Task, TaskFileError, read_text

GRID_SUFFIXES = (".yaml", ".yml", ".json")
SECTIONS = ("name", "fixed", "grid")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$")
UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_READABLE = 100  # characters of an id before it is cut and given a hash
MAX_TASKS = 100_000


def is_grid(path: Path) -> bool:
    return Path(path).suffix.lower() in GRID_SUFFIXES


class _Loader(yaml.SafeLoader):
    """YAML as people write numbers: ``1e-3`` is a float (YAML 1.1 alone reads it as a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def load_grid(path: Path, schema: TypeAdapter | None | str = WORKLOAD) -> list[Task]:
    """Expand the grid file ``path`` into its tasks, every one checked against ``schema``
    (the workload's ``Params`` by default); errors name the file, the key and its line."""
    if schema is WORKLOAD:
        schema = workload_params()
    text = read_text(path, "grid file")
    lines = _key_lines(path, text)
    data = _parse(path, text)

    def fail(message: str, *key: Any) -> TaskFileError:
        line = next((lines[key[:n]] for n in range(len(key), 0, -1) if key[:n] in lines), None)
        return TaskFileError(f"{path}{f':{line}' if line else ''}: {message}")

    if not isinstance(data, dict):
        raise fail(f"a grid file holds a mapping with {', '.join(SECTIONS)} (got {type(data).__name__})")
    for key in data:
        if key not in SECTIONS:
            raise fail(f"{key}: unknown section (a grid file has {', '.join(SECTIONS)})", key)
    name = data.get("name", "")
    if name and not (isinstance(name, str) and NAME.match(name)):
        raise fail(f"name: use 1-48 letters, digits, '.', '_' or '-', a letter or digit first (got {name!r})", "name")
    fixed = data.get("fixed") or {}
    grid = data.get("grid")
    if not isinstance(fixed, dict):
        raise fail(f"fixed: must map parameter names to values (got {type(fixed).__name__})", "fixed")
    if not isinstance(grid, dict) or not grid:
        raise fail("grid: must map each parameter name to a list of values, e.g. `lr: [0.1, 0.01]`", "grid")
    for key in [*fixed, *grid]:
        if not isinstance(key, str) or not key:
            raise fail(f"{key!r}: a parameter name must be a non-empty string", "grid", key)
    for key, values in grid.items():
        if key == "id" or key in fixed:
            why = "task ids are made from the values" if key == "id" else "it is also under fixed"
            raise fail(f"{key}: cannot be in the grid ({why})", "grid", key)
        if not isinstance(values, list) or not values:
            raise fail(f"{key}: give a non-empty list of values (a single value goes under fixed)", "grid", key)
    if "id" in fixed:
        raise fail("id: task ids are made from the values; remove it from fixed", "fixed", "id")
    count = math.prod(len(values) for values in grid.values())
    if count > MAX_TASKS:
        raise fail(f"grid: {count} combinations, more than the {MAX_TASKS} a grid may have", "grid")

    tasks: list[Task] = []
    first: dict[str, dict[str, Any]] = {}
    same: dict[str, dict[str, Any]] = {}  # checked params -> the values that gave them
    keys = list(grid)
    for picks in itertools.product(*(range(len(grid[k])) for k in keys)):
        varying = {k: grid[k][i] for k, i in zip(keys, picks, strict=True)}
        task_id = grid_id(name, varying)
        if task_id in first:
            raise fail(
                f"grid: {varying} and {first[task_id]} both give the id {task_id!r}; make the values differ", "grid"
            )
        first[task_id] = varying
        try:
            params = check({**fixed, **varying}, schema)
        except ParamsError as exc:
            top = exc.field.split(".")[0]
            where = ("grid", top, picks[keys.index(top)]) if top in grid else ("fixed", top) if top in fixed else ()
            raise fail(str(exc), *where) from None
        twin = same.setdefault(_canonical(params), varying)
        if twin is not varying:  # e.g. `n: [1, 1.0]`, or values that Params coerces to the same
            key = next((k for k in keys if _text(twin[k]) != _text(varying[k])), keys[0])
            raise fail(
                f"{key}: {twin[key]!r} and {varying[key]!r} are the same value to the job, so two tasks would run "
                "the same parameters; remove one",
                "grid",
                key,
                picks[keys.index(key)],
            )
        tasks.append(Task(task_id, params))
    return tasks


def _canonical(params: dict[str, Any]) -> str:
    """One text for equal parameters: 1 and 1.0 are the same number to the job."""

    def plain(value: Any) -> Any:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return json.dumps(plain(params), sort_keys=True, default=str)


def grid_id(name: str, varying: dict[str, Any]) -> str:
    """The task id of one combination: readable, stable, and within the id charset."""
    readable = "_".join(f"{key}-{_text(value)}" for key, value in varying.items())
    clean = UNSAFE.sub("-", readable).lstrip("._-") or "task"
    task_id = f"{name}_{clean}" if name else clean
    if clean != readable or len(task_id) > MAX_READABLE or not TASK_ID.match(task_id):
        digest = hashlib.sha256(json.dumps(varying, sort_keys=True, default=str).encode()).hexdigest()[:8]
        task_id = f"{task_id[:MAX_READABLE].rstrip('.-_')}-{digest}"
    return task_id


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)  # check() refuses non-JSON


def _parse(path: Path, text: str) -> Any:
    if Path(path).suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise TaskFileError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    try:
        return yaml.load(text, _Loader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise TaskFileError(f"{where}: invalid YAML ({getattr(exc, 'problem', None) or exc})") from None


def _key_lines(path: Path, text: str) -> dict[tuple, int]:
    """Line of each section, key and list item: ("grid",) ("grid", "lr") ("grid", "lr", 0) -> line.

    JSON is read as YAML for this; a duplicated key is an error (both formats would keep the last one).
    """
    try:
        root = yaml.compose(text, _Loader)
    except yaml.YAMLError:
        return {}  # _parse reports it, or the JSON is valid but not YAML: no lines then
    lines: dict[tuple, int] = {}

    def walk(node: yaml.Node, at: tuple) -> None:
        if isinstance(node, yaml.MappingNode) and len(at) < 2:
            for key_node, value_node in node.value:
                key = (*at, key_node.value)
                if key in lines:
                    raise TaskFileError(
                        f"{path}:{key_node.start_mark.line + 1}: {key_node.value}: given twice "
                        f"(first on line {lines[key]})"
                    )
                lines[key] = key_node.start_mark.line + 1
                walk(value_node, key)
        elif isinstance(node, yaml.SequenceNode) and len(at) == 2:
            for i, item in enumerate(node.value):
                lines[(*at, i)] = item.start_mark.line + 1

    if root is not None:
        walk(root, ())
    return lines
