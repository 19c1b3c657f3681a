"""A job: one attempt at a task, as the ledger records it, and the Modal calls it runs as.

Words, each with one meaning:

- **task**: a line of the tasks file (an id and its parameters);
- **call**: one Modal function call (``fc-...``);
- **link**: one call of a job that hands over to the next one (a task longer than one attempt,
  see ``continuation.py``); the **chain** is the job's calls in order;
- **job**: one attempt at a task: a ledger row, the chain of its calls, and its state. `make retry`
  starts a new job for the same task; earlier jobs stay in the ledger.

The states a job goes through, and the only ways between them, are :data:`TRANSITIONS`::

    spawning ──> pending ──> succeeded | failed | timeout | lost | cancelled | expired
        └──────> unknown   (the spawner died, or the spawn RPC broke, before the call id was known)

``pending`` covers queued and running; a job leaves it only once Modal reports the job's own outcome
(never because the API could not be reached).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import continuation, modal_api, outputs, settings

if TYPE_CHECKING:
    from .ledger import Ledger

SPAWNING = "spawning"
UNKNOWN = "unknown"
PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"
TIMEOUT = "timeout"
LOST = "lost"
CANCELLED = "cancelled"
EXPIRED = "expired"
STATES = (SPAWNING, UNKNOWN, PENDING, SUCCEEDED, FAILED, TIMEOUT, LOST, CANCELLED, EXPIRED)

# Events: what the spawner learns, and what a poll of the job's newest call reports (modal_api).
SPAWNED = "spawned"  # the spawn RPC returned the call id
SPAWN_UNSURE = "spawn unsure"  # the RPC broke midway, or the spawner died: a call may run without its id
LINKED = "linked"  # the call handed the task over to its next link
OVER_BUDGET = "over budget"  # the monitor cancelled the queued call: the sweep's budget would be passed (cost.py)

TRANSITIONS: dict[tuple[str, str], str] = {
    (SPAWNING, SPAWNED): PENDING,
    (SPAWNING, SPAWN_UNSURE): UNKNOWN,
    (PENDING, modal_api.WAITING): PENDING,
    (PENDING, LINKED): PENDING,
    (PENDING, modal_api.RETURNED): SUCCEEDED,
    (PENDING, modal_api.RAISED): FAILED,
    (PENDING, modal_api.TIMED_OUT): TIMEOUT,
    (PENDING, modal_api.LOST): LOST,
    (PENDING, modal_api.CANCELLED): CANCELLED,
    (PENDING, OVER_BUDGET): CANCELLED,
    (PENDING, modal_api.EXPIRED): EXPIRED,
}
FINAL_STATES = frozenset(TRANSITIONS[key] for key in TRANSITIONS if key[0] == PENDING) - {PENDING}
# A task whose newest job is in one of these is not spawned again without being asked (--force,
# --respawn-unknown): it may be running, or it is done.
ACTIVE_STATES = frozenset({SPAWNING, UNKNOWN, PENDING, SUCCEEDED})
# `make retry` starts a new job for a task whose newest job ended in one of these.
RETRYABLE_STATES = FINAL_STATES - {SUCCEEDED, CANCELLED}


class InvalidTransition(ValueError):
    pass


def after(state: str, event: str) -> str:
    """The state a job in ``state`` moves to on ``event``; the table is the only source."""
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        raise InvalidTransition(f"a {state} job cannot be {event}") from None


@dataclass(frozen=True)
class Job:
    """One ledger row. ``call_id`` is the newest call of the chain, ``chain`` the earlier ones."""

    row: int
    task_id: str
    call_id: str | None
    app_name: str
    code_hash: str
    params: str
    state: str
    spawned_at: float
    finished_at: float | None
    error: str | None
    result_path: str | None
    chain: str = "[]"
    version: int | None = None  # the deployed app version it was spawned onto

    def links(self) -> list[str]:
        """The earlier calls of this job's chain, oldest first."""
        return json.loads(self.chain)

    def params_dict(self) -> dict[str, Any]:
        return json.loads(self.params)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "params": self.params_dict(), "chain": self.links()}

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def is_retryable(self) -> bool:
        return self.state in RETRYABLE_STATES

    @property
    def is_done(self) -> bool:
        """Nothing more will happen to it without a command (an unknown spawn never resolves itself)."""
        return self.state in FINAL_STATES or self.state == UNKNOWN

    async def poll(self, ledger: Ledger) -> str:
        """Look at the newest call once, without waiting; record and return the job's state. A call
        that handed over to a next link is followed (the job stays pending; the next poll looks at
        the new link). Raises :class:`modal_api.ApiUnreachable`, recording nothing, when Modal did not say.
        """
        if self.state != PENDING or self.call_id is None:
            return self.state
        outcome = await modal_api.poll(self.call_id, f"polling {self.task_id}")
        event = outcome.event
        if event == modal_api.RETURNED and continuation.link_target(outcome.value) is not None:
            event = LINKED
        state = after(self.state, event)
        if event == LINKED:
            ledger.follow(self.call_id, continuation.link_target(outcome.value))
        elif state != PENDING:
            ledger.finish(self.call_id, state, error=outcome.error)
        return state

    async def cancel(self, ledger: Ledger) -> bool:
        """Cancel the newest call if the job is still pending (polled first: one that has finished
        keeps its outcome). True when it was cancelled."""
        if await self.poll(ledger) != PENDING:
            return False
        current = ledger.job(self.row)  # a chain may have moved on to its next link
        assert current.call_id is not None
        await modal_api.cancel(current.call_id, f"cancelling {self.task_id}")
        ledger.finish(current.call_id, after(PENDING, modal_api.CANCELLED), error="cancelled by user")
        return True

    async def result(self, ledger: Ledger, results_dir: Path = settings.RESULTS_DIR) -> Path | None:
        """Save a succeeded job's return value as ``results_dir/<task>.json`` (once; Modal keeps it
        for 7 days) and record where. ``None`` when the job has not succeeded."""
        if self.state != SUCCEEDED or self.call_id is None:
            return None
        if self.result_path and Path(self.result_path).exists():
            return Path(self.result_path)
        outcome = await modal_api.poll(self.call_id, f"fetching the result of {self.task_id}")
        if outcome.event != modal_api.RETURNED:  # e.g. expired since it was polled
            raise LookupError(f"{self.task_id}: no result to fetch ({outcome.error})")
        path = results_dir / f"{self.task_id}.json"
        outputs.write_json(path, outcome.value)
        ledger.set_result_path(self.row, str(path))
        return path


# ------------------------------------------------------------ every job at once
@dataclass
class Refresh:
    jobs: list[Job]  # the newest job of every task, after polling
    unreachable: str | None = None  # why some pending jobs could not be checked
    unchecked: int = 0
    phases: dict[str, str] = field(default_factory=dict)  # call id -> running | queued (with phases=True)


async def refresh(ledger: Ledger, concurrency: int = settings.POLL_CONCURRENCY, phases: bool = False) -> Refresh:
    """Poll every pending job once, ``concurrency`` at a time. With ``phases``, ask for each job
    still pending whether it is running or queued (the call graph is asked at the same time as
    the poll: one round trip, not two). At the first sign that the API is unreachable the rest
    are left unchecked (still pending)."""
    ledger.settle()
    pending = ledger.jobs(state=PENDING, latest_only=False)
    failure: list[str] = []
    found: dict[str, str] = {}
    checked = 0
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Job) -> None:
        nonlocal checked
        async with gate:
            if failure:
                return
            where = asyncio.ensure_future(modal_api.phase(job.call_id)) if phases and job.call_id else None
            try:
                state = await job.poll(ledger)
                checked += 1
            except modal_api.ApiUnreachable as exc:
                failure.append(str(exc))
                return
            finally:
                found_phase = await where if where is not None else None
            if state == PENDING and found_phase:
                found[job.call_id] = found_phase

    await asyncio.gather(*(one(j) for j in pending))
    return Refresh(ledger.jobs(), failure[0] if failure else None, len(pending) - checked, found)


async def cancel(ledger: Ledger, task_ids: set[str] | None = None) -> list[Job]:
    """Cancel pending jobs (all, or those of ``task_ids``); raises :class:`modal_api.ApiUnreachable`
    on the first one Modal could not be asked about (the ones before it stay cancelled)."""
    cancelled = []
    for job in ledger.jobs(state=PENDING, latest_only=False):
        if (not task_ids or job.task_id in task_ids) and await job.cancel(ledger):
            cancelled.append(job)
    return cancelled


async def collect(ledger: Ledger, results_dir: Path = settings.RESULTS_DIR) -> tuple[list[Job], list[str]]:
    """Save the result of every succeeded job not saved yet: (the succeeded jobs with their result
    saved, the tasks whose result could not be fetched, with why)."""
    saved, problems = [], []
    for job in ledger.jobs(state=SUCCEEDED):
        try:
            await job.result(ledger, results_dir)
        except (modal_api.ApiUnreachable, LookupError) as exc:
            problems.append(str(exc))
            continue
        saved.append(ledger.job(job.row))
    return saved, problems
