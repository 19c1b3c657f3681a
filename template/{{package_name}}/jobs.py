"""Talking to Modal: spawn onto the deployed function, poll, collect, cancel.

Only this module (and ``modal_app.py``) imports ``modal``; the scripts stay thin.
Every request goes through modal's async client, a bounded number at a time, and
each one is given :data:`settings.API_TIMEOUT_S` to answer, so an unreachable API
costs seconds, not a minute per call.

The one rule: **only the job's own outcome ends a call.** A network, auth or
server error while polling leaves the call pending and is reported once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import modal
import modal.call_graph
import modal.exception

from . import continuation, settings
from . import ledger as L
from .tasks import Task

T = TypeVar("T")


def _quiet_abandoned_connects(record: logging.LogRecord) -> bool:
    """When the API is unreachable, a request given up on (:func:`bounded`) can leave modal's
    connection task behind; when it fails later, asyncio logs "Task exception was never retrieved"
    with a traceback, over and over during an outage that is already reported once. Drop those."""
    exc = record.exc_info[1] if record.exc_info else None
    unretrieved = record.getMessage().startswith("Task exception was never retrieved")
    return not (unretrieved and isinstance(exc, OSError | modal.exception.ConnectionError))


logging.getLogger("asyncio").addFilter(_quiet_abandoned_connects)


class NotDeployedError(RuntimeError):
    pass


class ApiUnreachable(RuntimeError):
    """Modal's API did not answer (network, auth, server): nothing about the job is known."""


async def bounded(request: Awaitable[T], what: str, timeout: float | None = None) -> T:
    """Await one request to Modal, at most ``timeout`` seconds.

    Only running out of that time is :class:`ApiUnreachable`; whatever the request itself
    raises comes through unchanged (``get(timeout=0)`` raises the built-in ``TimeoutError``
    for a call that is still running, which must not be taken for a dead API).
    """
    timeout = settings.API_TIMEOUT_S if timeout is None else timeout
    task = asyncio.ensure_future(request)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        raise ApiUnreachable(f"{what}: Modal's API did not answer within {timeout:g} s")
    return task.result()


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# ----------------------------------------------------------------- outcomes
def _frames(exc: BaseException) -> list:
    """The code objects of ``exc``'s traceback, outermost first."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code)
        tb = tb.tb_next
    return frames


def _decoded_by_modal(exc: BaseException) -> bool:
    """True when modal's result decoder raised ``exc``: it is the job's outcome (its own
    exception re-raised here, a timeout, a lost input), not a failure to reach the API.
    A job may raise ConnectionError itself, so the type alone cannot tell."""
    frames = _frames(exc)
    for i, code in enumerate(frames):
        if code.co_name == "_process_result" and code.co_filename.endswith("function_utils.py"):
            after = frames[i + 1] if i + 1 < len(frames) else None
            return after is None or "blob_utils" not in after.co_filename  # a blob download is the API's
    return False


def _still_running(exc: BaseException) -> bool:
    """``get(timeout=0)`` on an unfinished call: a ``TimeoutError`` raised by modal's poll itself
    (a socket timeout is a ``TimeoutError`` too, but raised deeper down)."""
    frames = _frames(exc)
    return isinstance(exc, TimeoutError) and bool(frames) and frames[-1].co_name == "poll_function"


def using_local_emulator() -> bool:
    """True when the client talks to the local emulator (`LOCAL=1`), not to Modal."""
    return os.environ.get("MODAL_SERVER_URL", "").startswith(("http://127.0.0.1", "http://localhost"))


def outcome_of(exc: BaseException) -> tuple[str, str] | None:
    """The ledger state and error a poll's exception means, or ``None`` for "still unknown"."""
    if isinstance(exc, modal.exception.OutputExpiredError):
        return L.EXPIRED, "result expired (Modal keeps results for 7 days)"
    if not _decoded_by_modal(exc):
        return None
    if isinstance(exc, modal.exception.FunctionTimeoutError):
        return L.TIMEOUT, describe(exc)
    if isinstance(exc, modal.exception.InternalFailure):
        return L.LOST, f"lost by Modal (container crashed or preempted past its retries): {describe(exc)}"
    return L.FAILED, describe(exc)


def _save_result(task_id: str, value: Any, results_dir: Path) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{task_id}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


async def poll(call: L.Call, ledger: L.Ledger, results_dir: Path = settings.RESULTS_DIR) -> str:
    """Look at one pending call without waiting; record and return its state.

    A finished call's return value is saved at once: Modal keeps it for 7 days only.
    Raises :class:`ApiUnreachable` (and records nothing) when the API does not answer.
    """
    if call.state != L.PENDING or call.call_id is None:
        return call.state
    handle = modal.FunctionCall.from_id(call.call_id)
    try:
        value = await bounded(handle.get.aio(timeout=0), f"polling {call.task_id}")
    except ApiUnreachable:
        raise
    except Exception as exc:
        if _still_running(exc):
            return L.PENDING
        outcome = outcome_of(exc)
        if outcome is None:
            raise ApiUnreachable(f"polling {call.task_id}: {describe(exc)}") from exc
        ledger.finish(call.call_id, outcome[0], error=outcome[1])
        return outcome[0]
    next_link = continuation.link_target(value)
    if next_link is not None:  # the task goes on in another call: follow it, report the task
        ledger.follow(call.call_id, next_link)
        return L.PENDING
    path = _save_result(call.task_id, value, results_dir)
    ledger.finish(call.call_id, L.SUCCEEDED, result_path=str(path))
    return L.SUCCEEDED


RUNNING, QUEUED = "running", "queued"


async def phase(call_id: str) -> str | None:
    """Where a pending call is, from Modal's call graph: :data:`RUNNING` (a container has its
    input), :data:`QUEUED`, or ``None`` when the graph does not say (Modal fills it in on a
    best-effort basis). Never raises: it is a detail, the call is pending either way."""
    try:
        graph = await bounded(modal.FunctionCall.from_id(call_id).get_call_graph.aio(), "reading the call graph")
    except Exception:  # noqa: BLE001
        return None
    waiting = [node for node in graph if node.status == modal.call_graph.InputStatus.PENDING]
    if not waiting:
        return None
    return RUNNING if any(node.task_id for node in waiting) else QUEUED


@dataclass
class Refresh:
    calls: list[L.Call]  # the newest row of every task, after polling
    unreachable: str | None = None  # why some pending calls could not be checked
    unchecked: int = 0
    phases: dict[str, str] = field(default_factory=dict)  # call id -> running | queued (with phases=True)


async def refresh(
    ledger: L.Ledger,
    results_dir: Path = settings.RESULTS_DIR,
    concurrency: int = settings.POLL_CONCURRENCY,
    phases: bool = False,
) -> Refresh:
    """Poll every pending call once, ``concurrency`` at a time; finished calls are never polled again
    (a chain's next link is polled on the next refresh). With ``phases``, ask each call still
    pending whether it is running or queued (one more request per pending call).

    At the first sign that the API is unreachable the rest are left unchecked (still pending).
    """
    ledger.settle()
    pending = ledger.calls(state=L.PENDING, latest_only=False)
    failure: list[str] = []
    found: dict[str, str] = {}
    checked = 0
    gate = asyncio.Semaphore(concurrency)

    async def one(call: L.Call) -> None:
        nonlocal checked
        async with gate:
            if failure:
                return
            # The call graph is asked at the same time as the poll (one round trip, not two); its
            # answer is kept only if the call is still pending.
            where = asyncio.ensure_future(phase(call.call_id)) if phases and call.call_id else None
            try:
                state = await poll(call, ledger, results_dir)
                checked += 1
            except ApiUnreachable as exc:
                failure.append(str(exc))
                return
            finally:
                found_phase = await where if where is not None else None
            if state == L.PENDING and found_phase:
                found[call.call_id] = found_phase

    await asyncio.gather(*(one(c) for c in pending))
    return Refresh(ledger.calls(), failure[0] if failure else None, len(pending) - checked, found)


# ----------------------------------------------------------------- spawning
async def deployed_function(app_name: str = settings.APP_NAME, function_name: str = settings.FUNCTION_NAME):
    """The function of the *deployed* app: spawns on it outlive this process."""
    fn = modal.Function.from_name(app_name, function_name)
    try:
        await bounded(fn.hydrate.aio(), f"looking up {app_name}.{function_name}")
    except modal.exception.NotFoundError:
        raise NotDeployedError(
            f"function '{function_name}' of app '{app_name}' is not deployed: run `make deploy`"
        ) from None
    except ApiUnreachable:
        raise
    except Exception as exc:
        raise ApiUnreachable(f"looking up {app_name}.{function_name}: {describe(exc)}") from exc
    return fn


# Refusals after which nothing runs on Modal, and that may pass if we wait a little.
_RETRYABLE = (modal.exception.ResourceExhaustedError,)
# Modal's definite refusals: the request was answered with "no", so no call exists. Anything else
# (a broken connection, a timeout, a server error) may have started the call: its outcome is unknown.
_REFUSED = (
    modal.exception.InvalidError,
    modal.exception.NotFoundError,
    modal.exception.PermissionDeniedError,
    modal.exception.AuthError,
    modal.exception.SerializationError,
    modal.exception.RequestSizeError,
)


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


async def _spawn_one(fn, task: Task, expected_hash: str, retries: int) -> tuple[str, str]:
    """One spawn RPC, retried while Modal says "not now": ``("spawned", call_id)``,
    ``("refused", why)`` (nothing runs) or ``("unknown", why)`` (the call may exist)."""
    delay = 0.5
    for attempt in range(retries + 1):
        try:
            call = await bounded(fn.spawn.aio(task.payload(), expected_code_hash=expected_hash), "spawning")
        except _RETRYABLE as exc:
            if attempt == retries:
                return "refused", f"{describe(exc)} (after {retries} retries)"
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)
        except _REFUSED as exc:  # refused by Modal: nothing was started
            return "refused", describe(exc)
        except Exception as exc:  # noqa: BLE001 - whatever else broke, the call may exist
            return "unknown", f"spawn RPC failed midway ({describe(exc)}); the job may be running"
        else:
            return "spawned", call.object_id
    raise AssertionError("unreachable")


async def spawn_tasks(
    fn,
    tasks: Iterable[Task],
    ledger: L.Ledger,
    *,
    expected_hash: str,
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
    ``expected_hash`` is the code the deployed function must run; it is recorded too.
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
        if any(verdict != "spawned" for _, _, verdict, _ in records):
            stop.set()  # a refusal or an unknown outcome: start nothing more
        starting: list[tuple[Task, int]] = []
        try:
            with ledger.transaction():
                for _, row, verdict, detail in records:
                    if verdict == "spawned":
                        ledger.complete_spawn(row, detail)
                    elif verdict == "refused":
                        ledger.abandon_spawn(row)
                    else:
                        ledger.mark_unknown(row, detail)
                while not stop.is_set() and len(in_flight) + len(starting) < concurrency:
                    if position + len(starting) == len(todo):
                        break
                    task = todo[position + len(starting)]
                    starting.append((task, ledger.begin_spawn(task.id, task.params, settings.APP_NAME, expected_hash)))
        except L.LedgerLocked as exc:  # rolled back: the same records and intents are written on the next try
            on_locked(str(exc))
            continue
        except L.LedgerGone as exc:  # nothing written since the file went is anywhere: hand over the ids
            exc.calls = [(t.id, c) for t, c in report.spawned]
            exc.calls += [(t.id, d) for t, _, verdict, d in records if verdict == "spawned"]
            for (task, _), (verdict, detail) in zip(in_flight.values(), await asyncio.gather(*in_flight), strict=True):
                if verdict == "spawned":
                    exc.calls.append((task.id, detail))
            raise
        # committed: only now may the new RPCs start
        position += len(starting)
        for task, _, verdict, detail in records:
            if verdict == "spawned":
                report.spawned.append((task, detail))
                try:
                    on_spawn(task, detail)
                except Exception:  # noqa: BLE001 - a progress line that cannot be shown (closed terminal)
                    pass
            else:
                report.error = report.error or f"spawning {task.id}: {detail}"
                if verdict == "unknown":
                    report.unknown.append(task)
        records = []
        for task, row in starting:
            in_flight[asyncio.ensure_future(_spawn_one(fn, task, expected_hash, retries))] = (task, row)
        if not in_flight:
            break
        returned, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
    report.interrupted = stop.is_set() and report.error is None
    return report


# --------------------------------------------------------------- cancelling
async def cancel(ledger: L.Ledger, task_ids: set[str] | None = None) -> list[L.Call]:
    """Cancel pending calls (all, or those of ``task_ids``); raises :class:`ApiUnreachable`
    on the first call Modal could not be asked about (the ones before it stay cancelled).

    Each call is polled first: one that has already finished keeps its outcome (and result).
    """
    cancelled = []
    for call in ledger.calls(state=L.PENDING, latest_only=False):
        if task_ids and call.task_id not in task_ids:
            continue
        assert call.call_id is not None
        if await poll(call, ledger) != L.PENDING:
            continue
        call = next(c for c in ledger.calls(latest_only=False) if c.row == call.row)  # a chain may have moved on
        try:
            await bounded(modal.FunctionCall.from_id(call.call_id).cancel.aio(), f"cancelling {call.task_id}")
        except ApiUnreachable:
            raise
        except Exception as exc:
            raise ApiUnreachable(f"cancelling {call.task_id}: {describe(exc)}") from exc
        ledger.finish(call.call_id, L.CANCELLED, error="cancelled by user")
        cancelled.append(call)
    return cancelled
