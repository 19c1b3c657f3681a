"""The job ledger: a local SQLite record of every spawned call.

Call ids are the only handle on detached work, so the ledger never loses one:

* An *intent* row (state ``spawning``) is committed before each spawn RPC and
  completed with the call id (state ``pending``) the moment the RPC returns.
* A spawner that dies between the two (power cut, ``kill -9``) leaves the intent
  row behind. The next command that takes the spawn lock turns it into
  ``unknown``: a call may be running on Modal without its id. Such a task is
  shown, and never spawned again unless asked (``--respawn-unknown``).
* One spawner at a time: :meth:`Ledger.spawn_lock` is an exclusive lock on a file
  beside the ledger, held for the whole spawn.

SQLite gives atomic writes, so a killed process never leaves a corrupted ledger,
and several processes may read and poll at once.

What a row's state may become is decided by the job's state machine (``job.py``); this module
stores rows and guards each write with the state it expects to find.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .job import ACTIVE_STATES, FINAL_STATES, PENDING, SPAWN_UNSURE, SPAWNED, SPAWNING, Job, after

SCHEMA_VERSION = 4
_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     TEXT NOT NULL,
    call_id     TEXT UNIQUE,
    app_name    TEXT NOT NULL,
    code_hash   TEXT NOT NULL,
    params      TEXT NOT NULL DEFAULT '{}',
    state       TEXT NOT NULL,
    spawned_at  REAL NOT NULL,
    finished_at REAL,
    error       TEXT,
    result_path TEXT,
    chain       TEXT NOT NULL DEFAULT '[]',
    version     INTEGER
);
CREATE INDEX IF NOT EXISTS calls_task ON calls (task_id, id);
CREATE INDEX IF NOT EXISTS calls_state ON calls (state);
"""
# Ledgers written by the first release: call_id was the key and there were no intent rows.
_MIGRATE_V1 = """
DROP INDEX IF EXISTS calls_task;
ALTER TABLE calls RENAME TO calls_v1;
{schema}
INSERT INTO calls (task_id, call_id, app_name, code_hash, state, spawned_at, finished_at, error, result_path)
    SELECT task_id, call_id, app_name, code_hash, state, spawned_at, finished_at, error, result_path
    FROM calls_v1 ORDER BY spawned_at;
DROP TABLE calls_v1;
"""


class LedgerError(RuntimeError):
    """The ledger cannot be written: it is locked by another process for too long, its folder is
    not writable, or the file was deleted or replaced while this process was writing to it."""


class LedgerBusy(LedgerError):
    """Another process holds the spawn lock."""


class LedgerLocked(LedgerError):
    """Another process has held a write transaction on the ledger for longer than the busy timeout."""


class LedgerGone(LedgerError):
    """The ledger file was deleted or replaced under this process: what it wrote went nowhere."""

    def __init__(self, message: str):
        super().__init__(message)
        self.calls: list[tuple[str, str]] = []  # (task id, call id) the writer knows of: recorded nowhere


class Ledger:
    """One process's handle on the ledger file: one SQLite connection, opened on first use."""

    BUSY_TIMEOUT_S = 30.0  # how long a write waits for another process's write transaction

    def __init__(self, path: Path):
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._depth = 0  # > 0 inside transaction()
        self._inode: int | None = None  # of the file the connection writes to

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # Autocommit mode: transactions below are explicit, and a read is never left open.
                conn = sqlite3.connect(self.path, timeout=self.BUSY_TIMEOUT_S, isolation_level=None)
                self._prepare(conn)
            except (OSError, sqlite3.OperationalError) as exc:
                raise self._error(exc) from exc
            self._conn = conn
            self._inode = self.path.stat().st_ino
        return self._conn

    def _error(self, exc: Exception) -> LedgerError:
        if "locked" in str(exc):
            return LedgerLocked(
                f"{self.path} is locked by another process for more than {self.BUSY_TIMEOUT_S:g} s "
                "(a sqlite3 shell or a stuck script?); close it and run again"
            )
        return LedgerError(f"cannot write the ledger {self.path}: {exc}")

    def _check_still_there(self) -> None:
        """The connection writes to the file it opened: if that file was deleted or replaced (an
        `rm -rf .jobs`, a `git clean`), every write since went nowhere, and the caller must say so."""
        try:
            same = self.path.stat().st_ino == self._inode
        except FileNotFoundError:
            same = False
        if not same:
            raise LedgerGone(f"{self.path} was deleted or replaced while this process was writing to it")

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction; writes made inside it (nested ones included) commit together.

        ``durable`` commits reach the disk before this returns (an fsync, a few ms), so a
        spawn's record survives a power cut. Non-durable ones (a call's outcome, which a
        later poll can learn again) survive a killed process but may be lost with the machine.
        Batching many writes into one durable transaction pays the fsync once.
        """
        conn = self._connection()
        if self._depth:  # inside an outer transaction: its commit is ours
            self._depth += 1
            try:
                yield conn
            finally:
                self._depth -= 1
            return
        conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._error(exc) from exc
        self._depth = 1
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                raise self._error(exc) from exc
            raise
        finally:
            self._depth = 0
        if durable:
            self._check_still_there()

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        """WAL mode (readers never block the spawner, and the reverse), set once per ledger file.

        Switching needs an exclusive lock, and SQLite answers "locked" at once, without waiting, when
        another connection is creating the same new ledger at that instant (two first spawns): so try
        again until the busy timeout, as every other write waits."""
        deadline = time.monotonic() + self.BUSY_TIMEOUT_S
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")  # a no-op once the file is in WAL mode
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(0.01)

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Create or migrate the schema once per process (several processes may race here)."""
        self._use_wal(conn)
        conn.execute("BEGIN IMMEDIATE")  # one process at a time decides and migrates
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"{self.path}: ledger written by a newer version of this project (v{version})")
            if version < SCHEMA_VERSION:
                columns = [row[1] for row in conn.execute("PRAGMA table_info(calls)")]
                if columns and "id" not in columns:  # v1: call_id was the key
                    script = _MIGRATE_V1.format(schema=_SCHEMA)
                else:
                    added = {"chain": "chain TEXT NOT NULL DEFAULT '[]'", "version": "version INTEGER"}  # v2, v3
                    missing = [added[c] for c in added if columns and c not in columns]
                    script = "".join(f"ALTER TABLE calls ADD COLUMN {c};" for c in missing) + _SCHEMA
                for statement in filter(str.strip, script.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            conn.close()
            raise

    # ------------------------------------------------------------ spawning
    @contextmanager
    def spawn_lock(self, wait: float = 2.0) -> Iterator[None]:
        """Hold the exclusive spawn lock, or raise :class:`LedgerBusy` after ``wait`` seconds.

        (A spawn holds it for minutes; a ``status`` in another terminal, for milliseconds while
        it settles dead spawners' rows: the short wait keeps that from refusing a spawn.)
        The lock is released by the kernel when the process dies, however it dies.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock_file = open(self.path.with_suffix(".lock"), "a+")  # noqa: SIM115 - closed by the with below
        except OSError as exc:
            raise LedgerError(f"cannot write the ledger's lock file {self.path.with_suffix('.lock')}: {exc}") from exc
        with lock_file as f:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() < deadline:
                        time.sleep(0.05)
                        continue
                    f.seek(0)
                    holder = f.read().strip() or "?"
                    raise LedgerBusy(
                        f"another spawn (pid {holder}) is writing to {self.path}; wait for it to finish, "
                        "then run again: it skips what is already spawned"
                    ) from None
            f.truncate(0)
            f.write(str(os.getpid()))
            f.flush()
            try:
                self._settle_interrupted_spawns()
                yield
            finally:
                f.truncate(0)

    def _settle_interrupted_spawns(self) -> None:
        """Under the lock no spawn is in flight: leftover intent rows belong to a dead spawner."""
        with self.transaction() as db:
            db.execute(
                "UPDATE calls SET state = ?, error = ? WHERE state = ?",
                (
                    after(SPAWNING, SPAWN_UNSURE),
                    "the spawner stopped before it recorded the call id; the job may be running",
                    SPAWNING,
                ),
            )

    def settle(self) -> None:
        """Turn a dead spawner's intent rows into ``unknown`` if no spawn is running now."""
        try:
            with self.spawn_lock(wait=0):
                pass
        except LedgerError:  # a spawn is running, or the ledger cannot be written: nothing to settle now
            pass

    def begin_spawn(
        self, task_id: str, params: dict[str, Any], app_name: str, code_hash: str, version: int | None = None
    ) -> int:
        """Write the intent row (before the spawn RPC); returns its row id."""
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO calls (task_id, app_name, code_hash, params, state, spawned_at, version) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (task_id, app_name, code_hash, json.dumps(params, sort_keys=True), SPAWNING, time.time(), version),
            )
            return int(cursor.lastrowid)

    def complete_spawn(self, row: int, call_id: str) -> None:
        """The spawn RPC returned ``call_id``: the row becomes a pending call."""
        with self.transaction() as db:
            db.execute(
                "UPDATE calls SET call_id = ?, state = ?, error = NULL WHERE id = ? AND state = ?",
                (call_id, after(SPAWNING, SPAWNED), row, SPAWNING),
            )

    def abandon_spawn(self, row: int) -> None:
        """The spawn RPC was refused: nothing runs on Modal, so the intent is dropped."""
        with self.transaction() as db:
            db.execute("DELETE FROM calls WHERE id = ? AND state = ?", (row, SPAWNING))

    def mark_unknown(self, row: int, error: str) -> None:
        """The spawn RPC failed in a way that may or may not have started the call."""
        with self.transaction() as db:
            db.execute(
                "UPDATE calls SET state = ?, error = ? WHERE id = ? AND state = ?",
                (after(SPAWNING, SPAWN_UNSURE), error, row, SPAWNING),
            )

    # ------------------------------------------------------------- outcomes
    def follow(self, call_id: str, next_call_id: str) -> None:
        """The call handed its task on to ``next_call_id`` (a chain link): the row follows it."""
        with self.transaction(durable=False) as db:
            (chain,) = db.execute("SELECT chain FROM calls WHERE call_id = ?", (call_id,)).fetchone()
            db.execute(
                "UPDATE calls SET call_id = ?, chain = ? WHERE call_id = ? AND state = ?",
                (next_call_id, json.dumps([*json.loads(chain), call_id]), call_id, PENDING),
            )

    def finish(self, call_id: str, state: str, *, error: str | None = None, result_path: str | None = None) -> None:
        """The pending job whose newest call is ``call_id`` ended in ``state`` (a final one)."""
        if state not in FINAL_STATES:
            raise ValueError(f"not a final state: {state!r}")
        with self.transaction(durable=False) as db:
            db.execute(
                "UPDATE calls SET state = ?, finished_at = ?, error = ?, result_path = ? "
                "WHERE call_id = ? AND state = ?",
                (state, time.time(), error, result_path, call_id, PENDING),
            )

    def set_result_path(self, row: int, path: str) -> None:
        """Where the job's result was saved (`make results`)."""
        with self.transaction(durable=False) as db:
            db.execute("UPDATE calls SET result_path = ? WHERE id = ?", (path, row))

    _COLUMNS = (
        "id, task_id, call_id, app_name, code_hash, params, state, spawned_at, finished_at, error, result_path, "
        "chain, version"
    )

    def jobs(self, *, state: str | None = None, latest_only: bool = True) -> list[Job]:
        """Jobs in spawn order; by default only the newest job of each task (earlier ones are
        the history of its attempts)."""
        if not self.path.exists():
            return []
        query = f"SELECT {self._COLUMNS} FROM calls"
        if latest_only:
            query += " WHERE id IN (SELECT MAX(id) FROM calls GROUP BY task_id)"
        query += " ORDER BY id"
        rows = [Job(*row) for row in self._connection().execute(query)]
        return [j for j in rows if state is None or j.state == state]

    def job(self, row: int) -> Job:
        """The job of one row, as it is now."""
        found = self._connection().execute(f"SELECT {self._COLUMNS} FROM calls WHERE id = ?", (row,)).fetchone()
        if found is None:
            raise KeyError(row)
        return Job(*found)

    def active_task_ids(self) -> set[str]:
        """Tasks whose newest job is in flight, pending, of unknown outcome or succeeded:
        spawning them again could run the same work twice."""
        return {j.task_id for j in self.jobs() if j.state in ACTIVE_STATES}
