"""The job ledger: a local SQLite record of every spawned call.

Call ids are the only handle on detached work, so each one is written (and
committed) the moment ``spawn()`` returns it. SQLite gives atomic writes, so a
killed spawner never leaves a corrupted ledger, and several processes may use it.

States::

    pending ──> succeeded | failed | timeout | cancelled | expired

``pending`` covers queued and running; a call leaves it once Modal has an outcome.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"
TIMEOUT = "timeout"
CANCELLED = "cancelled"
EXPIRED = "expired"
STATES = (PENDING, SUCCEEDED, FAILED, TIMEOUT, CANCELLED, EXPIRED)
FINAL_STATES = frozenset(STATES) - {PENDING}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_id     TEXT PRIMARY KEY,
    task_id     TEXT NOT NULL,
    app_name    TEXT NOT NULL,
    code_hash   TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending',
    spawned_at  REAL NOT NULL,
    finished_at REAL,
    error       TEXT,
    result_path TEXT
);
CREATE INDEX IF NOT EXISTS calls_task ON calls (task_id, spawned_at);
"""


@dataclass(frozen=True)
class Call:
    call_id: str
    task_id: str
    app_name: str
    code_hash: str
    state: str
    spawned_at: float
    finished_at: float | None
    error: str | None
    result_path: str | None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Ledger:
    def __init__(self, path: Path):
        self.path = Path(path)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            conn.executescript(_SCHEMA)
            with conn:  # one transaction: committed on success, rolled back on error
                yield conn
        finally:
            conn.close()

    def record_spawn(self, call_id: str, task_id: str, app_name: str, code_hash: str) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO calls (call_id, task_id, app_name, code_hash, spawned_at) VALUES (?, ?, ?, ?, ?)",
                (call_id, task_id, app_name, code_hash, time.time()),
            )

    def finish(self, call_id: str, state: str, *, error: str | None = None, result_path: str | None = None) -> None:
        if state not in FINAL_STATES:
            raise ValueError(f"not a final state: {state!r}")
        with self._db() as db:
            db.execute(
                "UPDATE calls SET state = ?, finished_at = ?, error = ?, result_path = ? "
                "WHERE call_id = ? AND state = 'pending'",
                (state, time.time(), error, result_path, call_id),
            )

    def calls(self, *, state: str | None = None, latest_only: bool = True) -> list[Call]:
        """Calls in spawn order; by default only the newest call of each task."""
        if not self.path.exists():
            return []
        query = "SELECT * FROM calls"
        if latest_only:
            query += " WHERE spawned_at = (SELECT MAX(spawned_at) FROM calls c2 WHERE c2.task_id = calls.task_id)"
        query += " ORDER BY spawned_at, task_id"
        with self._db() as db:
            rows = [Call(*row) for row in db.execute(query)]
        return [c for c in rows if state is None or c.state == state]

    def active_task_ids(self) -> set[str]:
        """Tasks whose newest call is pending or succeeded: respawning them would duplicate work."""
        return {c.task_id for c in self.calls() if c.state in (PENDING, SUCCEEDED)}
