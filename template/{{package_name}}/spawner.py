"""Spawning: which tasks to start, and starting them so that no call id is ever lost or doubled."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import ledger as L
from . import modal_api, settings
from .job import SPAWNING, UNKNOWN
from .tasks import Task


@dataclass
class Choice:
    todo: list[Task]  # the tasks to spawn now
    active: list[str]  # skipped: already pending or done
    unknown: list[str]  # skipped: an earlier spawn's outcome is unknown
    changed: list[str] = field(default_factory=list)  # of ``active``: other parameters than their recorded job


def choose(tasks: list[Task], ledger: L.Ledger, force: bool = False, respawn_unknown: bool = False) -> Choice:
    """The tasks to spawn now: never one whose newest job is active (in flight, pending, of unknown
    outcome, or done), unless asked."""
    newest = {j.task_id: j for j in ledger.jobs()}
    active = [t.id for t in tasks if t.id in newest and newest[t.id].is_active]
    unknown = [i for i in active if newest[i].state in (UNKNOWN, SPAWNING)]
    skipped_known = [] if force else [i for i in active if i not in unknown]
    skipped_unknown = [] if force or respawn_unknown else unknown
    skip = {*skipped_known, *skipped_unknown}
    known = set(skipped_known)
    changed = [t.id for t in tasks if t.id in known and _recorded(t.params) != newest[t.id].params_dict()]
    return Choice([t for t in tasks if t.id not in skip], skipped_known, skipped_unknown, changed)


def _recorded(params: dict) -> dict:
    """``params`` as the ledger gives them back (JSON: a tuple comes back as a list)."""
    return json.loads(json.dumps(params))


def retryable(ledger: L.Ledger) -> list[Task]:
    """The tasks whose newest job failed, timed out, was lost or expired (`make retry`)."""
    return [Task(j.task_id, j.params_dict()) for j in ledger.jobs() if j.is_retryable]


@dataclass
class SpawnReport:
    spawned: list[tuple[Task, str]] = field(default_factory=list)
    unknown: list[Task] = field(default_factory=list)
    error: str | None = None  # why spawning stopped early
    interrupted: bool = False
    total: int = 0

    @property
    def not_started(self) -> int:
        return self.total - len(self.spawned) - len(self.unknown)


async def spawn_tasks(
    fn,
    tasks: Iterable[Task],
    ledger: L.Ledger,
    *,
    expected_hash: str,
    version: int | None = None,
    concurrency: int = settings.SPAWN_CONCURRENCY,
    stop: asyncio.Event | None = None,
    on_spawn: Callable[[Task, str], None] = lambda task, call_id: None,
    on_locked: Callable[[str], None] = lambda why: None,
    retries: int = 5,
) -> SpawnReport:
    """Spawn each task, ``concurrency`` at a time, so that no call id is ever lost or doubled.

    Each spawn's intent row is committed before its RPC starts and completed with the
    call id as soon as the RPC returns. The loop records every RPC that has returned and
    writes the intent rows of the spawns that replace them in one transaction: one disk
    sync per turn instead of two per task. Setting ``stop`` (Ctrl+C) starts no new spawn,
    lets those in flight finish and record; so does the first error not worth retrying.
    ``expected_hash`` is the code the deployed function must run and ``version`` the deployment
    ``fn`` is pinned to; both are recorded, and both go to the function (its next links use them).
    Call this with :meth:`Ledger.spawn_lock` held.

    A ledger locked by another process is waited for (``on_locked`` is told, and the same
    records are written again); a ledger file deleted under the spawner raises
    :class:`ledger.LedgerGone` once the requests in flight have returned, carrying every call
    id this process learnt (``exc.calls``), since none of them is recorded anywhere.
    """
    todo = list(tasks)
    report = SpawnReport(total=len(todo))
    stop = stop or asyncio.Event()
    position = 0  # todo[:position] have been started
    in_flight: dict[asyncio.Future, tuple[Task, int]] = {}
    returned: set[asyncio.Future] = set()
    records: list[tuple[Task, int, str, str]] = []  # RPCs that returned, not yet on disk
    while True:
        for future in returned:
            records.append((*in_flight.pop(future), *future.result()))
        returned = set()
        if any(verdict != modal_api.SPAWNED for _, _, verdict, _ in records):
            stop.set()  # a refusal or an unknown outcome: start nothing more
        starting: list[tuple[Task, int]] = []
        try:
            with ledger.transaction():
                for _, row, verdict, detail in records:
                    if verdict == modal_api.SPAWNED:
                        ledger.complete_spawn(row, detail)
                    elif verdict == modal_api.REFUSED:
                        ledger.abandon_spawn(row)
                    else:
                        ledger.mark_unknown(row, detail)
                while not stop.is_set() and len(in_flight) + len(starting) < concurrency:
                    if position + len(starting) == len(todo):
                        break
                    task = todo[position + len(starting)]
                    row = ledger.begin_spawn(task.id, task.params, settings.APP_NAME, expected_hash, version)
                    starting.append((task, row))
        except L.LedgerLocked as exc:  # rolled back: the same records and intents are written on the next try
            on_locked(str(exc))
            continue
        except L.LedgerGone as exc:  # nothing written since the file went is anywhere: hand over the ids
            exc.calls = [(t.id, c) for t, c in report.spawned]
            exc.calls += [(t.id, d) for t, _, verdict, d in records if verdict == modal_api.SPAWNED]
            for (task, _), (verdict, detail) in zip(in_flight.values(), await asyncio.gather(*in_flight), strict=True):
                if verdict == modal_api.SPAWNED:
                    exc.calls.append((task.id, detail))
            raise
        # committed: only now may the new RPCs start
        position += len(starting)
        for task, _, verdict, detail in records:
            if verdict == modal_api.SPAWNED:
                report.spawned.append((task, detail))
                try:
                    on_spawn(task, detail)
                except Exception:  # noqa: BLE001 - a progress line that cannot be shown (closed terminal)
                    pass
            else:
                report.error = report.error or f"spawning {task.id}: {detail}"
                if verdict == modal_api.UNSURE:
                    report.unknown.append(task)
        records = []
        for task, row in starting:
            rpc = modal_api.spawn(
                fn, task.payload(), retries=retries, expected_code_hash=expected_hash, app_version=version
            )
            in_flight[asyncio.ensure_future(rpc)] = (task, row)
        if not in_flight:
            break
        returned, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
    report.interrupted = stop.is_set() and report.error is None
    return report
