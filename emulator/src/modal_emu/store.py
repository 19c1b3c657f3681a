"""Persistent emulator state: a SQLite database of rows plus content files, under ``state_dir``.

Everything a client may ask about later lives here (apps and their deployment
history, function definitions, uploaded files, calls and their outputs), so an
emulator restarted after a crash (even ``kill -9``) still answers for earlier calls.

Layout::

    state.sqlite3       one row per object: (table, key, JSON), in WAL mode; and the payloads
                        of calls, by "<fc-id>/<idx>.in" (FunctionInput) and ".out"
                        (GenericResult): protobuf bytes, committed with the rows
    files/<sha256>      content of uploaded mount files and blobs
    calls/<fc-id>/      <idx>.chunks/: a generator's items; <idx>.in and .out of a state
                        folder from before the payloads moved into the database
    deploy/<fu-id>/     the deployed files of a function, as uploaded (what a call runs)
    volumes/<name>/     one directory per modal.Volume
    logs/<fc-id>.log    stdout/stderr of every attempt of a call

The interface is a dict of tables of dicts: ``store["calls"][call_id]["inputs"]…``,
and ``store.save()`` makes every change so far durable. Underneath, saving is
incremental, so its cost does not grow with the number of stored calls:

* A row notices its own changes (``rows.py``): any mutation anywhere inside it
  marks it dirty, whoever holds it and however long. ``save()`` writes exactly the
  dirty rows in one transaction (an upsert each; deleted keys are deleted). There
  is no "remember to mark it" step that could be forgotten, and no scan.
* A dict handed to the store is copied into a tracked row; changes made later
  through the dict that was passed in are carried over at every ``save()`` of the
  same request (``Store.request``, opened around every RPC) or task, and when it ends.
* Rows are read from SQLite on first use and kept while anyone holds them (a weak
  cache) plus the most recently used ones; the keys of every table stay in memory.
  So memory does not grow with the number of stored calls.
* ``save()`` runs on the event loop and is short: a few rows, one commit, no fsync
  (``synchronous=NORMAL``: a commit survives the emulator being killed, which is
  what matters here; an OS crash may lose the last commits).

A state directory from an earlier version (``state.json``) is imported on first
start and the JSON file is renamed to ``state.json.imported``.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import tempfile
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import rows

KEEP_RECENT_ROWS = 2048
TABLES = ("apps", "functions", "mounts", "images", "volumes", "secrets", "calls", "blobs")
SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    tbl TEXT NOT NULL,
    key TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (tbl, key)
);
CREATE INDEX IF NOT EXISTS rows_by_app ON rows (tbl, json_extract(data, '$.app_id'));
CREATE TABLE IF NOT EXISTS payloads (
    key TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
"""
UPSERT = "INSERT INTO rows (tbl, key, data) VALUES (?, ?, ?) ON CONFLICT (tbl, key) DO UPDATE SET data = excluded.data"


def new_id(prefix: str) -> str:
    """Ids look like Modal's (``fu-…``, ``fc-…``): the client checks the prefix."""
    return f"{prefix}-{secrets.token_hex(11)}"


def atomic_write(path: Path, data: bytes) -> None:
    try:  # the folder usually exists: creating it only when missing saves a syscall per write
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


class Table(MutableMapping):
    """The rows of one table, by key; rows are loaded from the database on first use."""

    def __init__(self, store: Store, name: str):
        self.store, self.name = store, name
        query = "SELECT key FROM rows WHERE tbl = ? ORDER BY rowid"
        self._keys: dict[str, None] = dict.fromkeys(k for (k,) in store.db.execute(query, (name,)))
        self._live: weakref.WeakValueDictionary[str, rows.Row] = weakref.WeakValueDictionary()

    def __getitem__(self, key: str) -> rows.Row:
        row = self._live.get(key)
        if row is None:
            if key not in self._keys:
                raise KeyError(key)
            query = "SELECT data FROM rows WHERE tbl = ? AND key = ?"
            (data,) = self.store.db.execute(query, (self.name, key)).fetchone()
            row = self._live[key] = rows.Row(self, key, json.loads(data), adopt=False)
        self.store.keep(row)
        return row

    def __setitem__(self, key: str, value: dict) -> None:
        if not isinstance(key, str) or not isinstance(value, dict):
            kinds = f"{type(key).__name__} to {type(value).__name__}"
            raise TypeError(f"store[{self.name!r}] maps str keys to dicts, not {kinds}")
        row = self._live[key] = rows.Row(self, key, value, adopt=True)
        self._keys[key] = None
        self.store.dirty[(self.name, key)] = row
        self.store.keep(row)

    def __delitem__(self, key: str) -> None:
        del self._keys[key]
        self._live.pop(key, None)
        self.store.dirty[(self.name, key)] = None

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._keys))  # a snapshot: rows may be added while a caller iterates

    def __len__(self) -> int:
        return len(self._keys)

    def row_changed(self, row: rows.Row) -> None:
        if self._live.get(row._key) is row:  # not a row that was replaced or deleted meanwhile
            self.store.dirty[(self.name, row._key)] = row


class Store:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.root / "state.sqlite3", isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.executescript(SCHEMA)
        self.dirty: dict[tuple[str, str], rows.Row | None] = {}
        self.new_payloads: dict[str, bytes] = {}  # written with the rows at the next save()
        self._recent: OrderedDict[int, rows.Row] = OrderedDict()
        self._import_json(self.root / "state.json")
        self.tables = {name: Table(self, name) for name in TABLES}

    # ------------------------------------------------------------------ tables
    def __getitem__(self, table: str) -> Table:
        if table not in self.tables:  # a new kind of object: its table starts empty
            self.tables[table] = Table(self, table)
        return self.tables[table]

    def keep(self, row: rows.Row) -> None:
        """Keep the most recently used rows in memory even when nobody holds them."""
        self._recent[id(row)] = row
        self._recent.move_to_end(id(row))
        if len(self._recent) > KEEP_RECENT_ROWS:
            self._recent.popitem(last=False)

    def save(self) -> None:
        """Make every change so far durable: writes the rows changed since the last save.
        Called from the event loop only (handlers, runner, blob server): no locking needed."""
        rows.sync_adopted()
        if not self.dirty and not self.new_payloads:
            return
        changed, self.dirty = self.dirty, {}
        payloads, self.new_payloads = self.new_payloads, {}
        deleted = [key for key, row in changed.items() if row is None]
        upserts = [(t, k, json.dumps(row, separators=(",", ":"))) for (t, k), row in changed.items() if row is not None]
        try:
            with self._transaction():
                self.db.executemany("DELETE FROM rows WHERE tbl = ? AND key = ?", deleted)
                self.db.executemany(UPSERT, upserts)
                self.db.executemany("INSERT OR REPLACE INTO payloads (key, data) VALUES (?, ?)", payloads.items())
        except BaseException:
            self.dirty = {**changed, **self.dirty}  # still to be written
            self.new_payloads = {**payloads, **self.new_payloads}
            raise

    def put_payload(self, call_id: str, name: str, data: bytes) -> None:
        """Keep ``name`` (``<idx>.in``, ``<idx>.out``) of a call; durable with the next ``save()``, which
        writes it in the same transaction as the rows: in one SQLite transaction, not a file (and a folder
        per call) of its own, which cost more CPU than the rest of an input's bookkeeping together."""
        self.new_payloads[f"{call_id}/{name}"] = data

    def payload(self, call_id: str, name: str) -> bytes:
        key = f"{call_id}/{name}"
        if key in self.new_payloads:
            return self.new_payloads[key]
        found = self.db.execute("SELECT data FROM payloads WHERE key = ?", (key,)).fetchone()
        if found is not None:
            return found[0]
        return (self.call_dir(call_id) / name).read_bytes()  # a state folder of an earlier version

    @contextmanager
    def request(self) -> Iterator[None]:
        """Around one request (an RPC): what it changed is saved when it ends."""
        scope = rows.Scope()
        token = rows.adopted.set(scope)
        try:
            yield
        finally:
            try:
                self.save()
            finally:
                scope.closed = True
                scope.clear()
                rows.adopted.reset(token)

    def keys_where(self, table: str, condition: str, *params: Any) -> list[str]:
        """Keys of the rows of ``table`` matching an SQL condition on their JSON column ``data``
        (``json_extract(data, '$.app_id') = ?``): finds a few rows without loading all of them."""
        self.save()
        query = f"SELECT key FROM rows WHERE tbl = ? AND ({condition}) ORDER BY rowid"
        return [key for (key,) in self.db.execute(query, (table, *params))]

    def call_ids(self, *, app_id: str = "", input_status: tuple[str, ...] = ()) -> list[str]:
        """The calls of an app and/or with an input in one of ``input_status``, oldest first."""
        conditions, params = ["1"], []
        if app_id:
            conditions.append("json_extract(data, '$.app_id') = ?")  # the rows_by_app index
            params.append(app_id)
        if input_status:
            marks = ", ".join("?" * len(input_status))
            conditions.append(
                "EXISTS (SELECT 1 FROM json_each(data, '$.inputs') "
                f"WHERE json_extract(json_each.value, '$.status') IN ({marks}))"
            )
            params.extend(input_status)
        return self.keys_where("calls", " AND ".join(conditions), *params)

    def close(self) -> None:
        self.save()
        self.db.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _import_json(self, path: Path) -> None:
        """A state directory of an earlier version: one JSON document of tables."""
        if not path.exists():
            return
        doc = json.loads(path.read_text())
        with self._transaction():
            for table, objects in doc.items():
                for key, obj in objects.items():
                    self.db.execute(UPSERT, (table, key, json.dumps(obj, separators=(",", ":"))))
        path.rename(path.with_name("state.json.imported"))

    # ------------------------------------------------------------------- paths
    def file_path(self, sha256_hex: str) -> Path:
        return self.root / "files" / sha256_hex

    def put_file(self, sha256_hex: str, data: bytes) -> None:
        path = self.file_path(sha256_hex)
        if not path.exists():
            atomic_write(path, data)

    def call_dir(self, call_id: str) -> Path:
        return self.root / "calls" / call_id

    def deploy_dir(self, function_id: str) -> Path:
        return self.root / "deploy" / function_id

    def volume_dir(self, name: str) -> Path:
        path = self.root / "volumes" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def log_path(self, call_id: str) -> Path:
        return self.root / "logs" / f"{call_id}.log"


def now() -> float:
    return time.time()
