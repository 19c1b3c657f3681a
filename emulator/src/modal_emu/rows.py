"""Rows that notice their own changes, so the store writes only what changed.

A stored row is a ``Row``: a dict whose nested dicts and lists are ``TrackedDict``
and ``TrackedList``. Every mutating method of any of them (``row["a"] = 1``,
``row["inputs"]["0"].update(...)``, ``row["deployments"].append(...)``, ``del``,
``pop``, ``sort`` …) tells the row's table that the row changed. Nothing needs to
be remembered by the code that mutates, and a reference held for a long time
(across ``await``s and saves, or taken while iterating) stays tracked.

Values are copied into tracked containers when they enter a row. The plain dicts
and lists a caller passed in are *adopted*: their nested containers are swapped for
the tracked copies (so changes through them land in the row), and a change to the
passed-in container itself (``d = {...}; table[k] = d; d["x"] = 1``) is carried
over into the row at every later ``save()`` of the same request (``Store.request``,
opened around every RPC) or asyncio task, and when that request or task ends.
Only JSON values are accepted: anything else is a ``TypeError`` where it is
stored, not when it is saved.
"""

from __future__ import annotations

import asyncio
import weakref
from contextvars import ContextVar
from typing import Any

JSON_SCALARS = (str, int, float, bool, type(None))


class Scope(list):
    """The containers adopted during one request or task: ``[original, tracked copy, shallow snapshot]`` each."""

    closed = False


adopted: ContextVar[Scope | None] = ContextVar("modal_emu_adopted", default=None)  # set by Store.request
_task_scopes: weakref.WeakKeyDictionary[asyncio.Task, Scope] = weakref.WeakKeyDictionary()
_unscoped = Scope()  # adopted by code outside the event loop (start-up, scripts): kept


def _task() -> asyncio.Task | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


def _scope() -> Scope:
    """Where an adoption is remembered: the open request, else the running task
    (synced once more when it ends), else the process."""
    scope = adopted.get()
    if scope is not None and not scope.closed:
        return scope
    task = _task()
    if task is None:
        return _unscoped
    if task not in _task_scopes:
        scope = _task_scopes[task] = Scope()
        task.add_done_callback(lambda _: _sync(scope))
    return _task_scopes[task]


class TrackedDict(dict):
    __slots__ = ("_row",)

    def __init__(self, row: Row, items: Any = ()):
        super().__init__()
        self._row = row
        for key, value in items:
            dict.__setitem__(self, key, row.track(value))

    def __setitem__(self, key, value):
        dict.__setitem__(self, key, self._row.track(value))
        self._row.changed()

    def __delitem__(self, key):
        dict.__delitem__(self, key)
        self._row.changed()

    def update(self, *args, **kwargs):
        for key, value in dict(*args, **kwargs).items():
            dict.__setitem__(self, key, self._row.track(value))
        self._row.changed()

    def __ior__(self, other):
        self.update(other)
        return self

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return dict.__getitem__(self, key)

    def pop(self, key, *default):
        present = key in self
        value = dict.pop(self, key, *default)
        if present:
            self._row.changed()
        return value

    def popitem(self):
        item = dict.popitem(self)
        self._row.changed()
        return item

    def clear(self):
        dict.clear(self)
        self._row.changed()

    def __reduce__(self):  # copies (copy.deepcopy, pickle) are plain, detached dicts
        return (dict, (dict(self),))


class TrackedList(list):
    __slots__ = ("_row",)

    def __init__(self, row: Row, items: Any = ()):
        super().__init__(row.track(v) for v in items)
        self._row = row

    def _changed(self, result=None):
        self._row.changed()
        return result

    def __setitem__(self, index, value):
        value = [self._row.track(v) for v in value] if isinstance(index, slice) else self._row.track(value)
        return self._changed(list.__setitem__(self, index, value))

    def __delitem__(self, index):
        return self._changed(list.__delitem__(self, index))

    def append(self, value):
        return self._changed(list.append(self, self._row.track(value)))

    def extend(self, values):
        return self._changed(list.extend(self, [self._row.track(v) for v in values]))

    def insert(self, index, value):
        return self._changed(list.insert(self, index, self._row.track(value)))

    def pop(self, *index):
        return self._changed(list.pop(self, *index))

    def remove(self, value):
        return self._changed(list.remove(self, value))

    def clear(self):
        return self._changed(list.clear(self))

    def sort(self, *args, **kwargs):
        return self._changed(list.sort(self, *args, **kwargs))

    def reverse(self):
        return self._changed(list.reverse(self))

    def __iadd__(self, values):
        self.extend(values)
        return self

    def __imul__(self, n):
        list.__imul__(self, n)
        return self._changed(self)

    def __reduce__(self):
        return (list, (list(self),))


class Row(TrackedDict):
    """One stored object (an app, a call …): ``table[key]``."""

    __slots__ = ("_table", "_key", "_adopting", "__weakref__")

    def __init__(self, table: Any, key: str, value: dict, *, adopt: bool):
        self._table, self._key, self._adopting = table, key, adopt  # no adopting what was just read from disk
        super().__init__(self, value.items())
        if adopt:
            _adopt(value, self)
        self._adopting = True

    def changed(self) -> None:
        self._table.row_changed(self)

    def track(self, value: Any) -> Any:
        if isinstance(value, JSON_SCALARS):
            return value
        if isinstance(value, dict):
            tracked: Any = TrackedDict(self, value.items())
        elif isinstance(value, list | tuple):
            tracked = TrackedList(self, value)
        else:
            raise TypeError(f"the emulator's store holds JSON values only, not {type(value).__name__}: {value!r:.80}")
        if self._adopting and type(value) in (dict, list):
            _adopt(value, tracked)
        return tracked


def _adopt(original: dict | list, tracked: TrackedDict | TrackedList) -> None:
    for key in original.keys() if isinstance(original, dict) else range(len(original)):
        if isinstance(original[key], dict | list):
            original[key] = tracked[key]  # a change through the nested container is a change of the row
    _scope().append([original, tracked, _snapshot(original)])


def _snapshot(container: dict | list) -> dict | list:
    return dict(container) if isinstance(container, dict) else list(container)


def _same(a: dict | list, b: dict | list) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(a[k] is b[k] for k in a)  # type: ignore[call-overload]
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def sync_adopted() -> None:
    """Carry changes made to adopted (passed-in) containers over into their rows."""
    scope = adopted.get()
    if scope is not None and not scope.closed:
        _sync(scope)
    task = _task()
    if task in _task_scopes:
        _sync(_task_scopes[task])
    _sync(_unscoped)


def _sync(scope: Scope) -> None:
    for entry in list(scope):
        original, tracked, snapshot = entry
        if _same(original, snapshot):
            continue
        if isinstance(original, dict):
            for key in snapshot.keys() - original.keys():
                tracked.pop(key, None)
            for key, value in original.items():
                if key not in snapshot or value is not snapshot[key]:
                    tracked[key] = value
                    if isinstance(value, dict | list):
                        original[key] = tracked[key]
        else:
            tracked[:] = original
            original[:] = tracked
        entry[2] = _snapshot(original)
