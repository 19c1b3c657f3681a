"""Talking to Modal: spawn onto the deployed function, poll, collect, cancel.

Only this module (and ``modal_app.py``) imports ``modal``; the scripts stay thin.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

import modal
import modal.exception

from . import ledger as L
from . import settings
from .tasks import Task


class NotDeployedError(RuntimeError):
    pass


def deployed_function(app_name: str = settings.APP_NAME, function_name: str = settings.FUNCTION_NAME):
    """The function of the *deployed* app: spawns on it outlive this process."""
    fn = modal.Function.from_name(app_name, function_name)
    try:
        fn.hydrate()
    except modal.exception.NotFoundError:
        raise NotDeployedError(
            f"function '{function_name}' of app '{app_name}' is not deployed: run `make deploy`"
        ) from None
    return fn


class SpawnInterrupted(RuntimeError):
    """Spawning stopped part-way; what was spawned is in the ledger."""


def spawn_tasks(
    fn,
    tasks: Iterable[Task],
    ledger: L.Ledger,
    code_hash: str,
    on_spawn: Callable[[Task, str], None] = lambda task, call_id: None,
) -> list[tuple[Task, str]]:
    """Spawn each task and record its call id at once, so no id is ever lost.

    If a spawn fails (network, quota), the calls already spawned stay recorded and
    running; running the spawner again skips them and spawns the rest.
    """
    tasks = list(tasks)
    spawned = []
    for task in tasks:
        try:
            call = fn.spawn(task.payload(), expected_code_hash=code_hash)
        except Exception as exc:
            raise SpawnInterrupted(
                f"spawning stopped at task {task.id!r} ({type(exc).__name__}: {exc}); {len(spawned)} of "
                f"{len(tasks)} spawned and recorded: run the spawner again to spawn the rest"
            ) from exc
        ledger.record_spawn(call.object_id, task.id, settings.APP_NAME, code_hash)
        spawned.append((task, call.object_id))
        on_spawn(task, call.object_id)
    return spawned


def _save_result(task_id: str, value, results_dir: Path) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{task_id}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def poll(call: L.Call, ledger: L.Ledger, results_dir: Path = settings.RESULTS_DIR) -> str:
    """Look at one pending call without waiting; record and return its state.

    A finished call's return value is saved at once: Modal keeps it for 7 days only.
    """
    if call.state != L.PENDING:
        return call.state
    handle = modal.FunctionCall.from_id(call.call_id)
    try:
        value = handle.get(timeout=0)
    except modal.exception.FunctionTimeoutError as exc:
        ledger.finish(call.call_id, L.TIMEOUT, error=str(exc) or "timed out")
        return L.TIMEOUT
    except modal.exception.OutputExpiredError:
        ledger.finish(call.call_id, L.EXPIRED, error="result expired (Modal keeps results for 7 days)")
        return L.EXPIRED
    except TimeoutError:
        return L.PENDING
    except Exception as exc:  # the job raised: the remote exception is re-raised here
        ledger.finish(call.call_id, L.FAILED, error=f"{type(exc).__name__}: {exc}")
        return L.FAILED
    path = _save_result(call.task_id, value, results_dir)
    ledger.finish(call.call_id, L.SUCCEEDED, result_path=str(path))
    return L.SUCCEEDED


def refresh(ledger: L.Ledger, results_dir: Path = settings.RESULTS_DIR) -> list[L.Call]:
    """Poll every pending call once and return the newest call of each task."""
    for call in ledger.calls(state=L.PENDING):
        poll(call, ledger, results_dir)
    return ledger.calls()


def cancel(ledger: L.Ledger, task_ids: set[str] | None = None) -> list[L.Call]:
    """Cancel pending calls (all, or those of ``task_ids``)."""
    cancelled = []
    for call in ledger.calls(state=L.PENDING):
        if task_ids and call.task_id not in task_ids:
            continue
        modal.FunctionCall.from_id(call.call_id).cancel()
        ledger.finish(call.call_id, L.CANCELLED, error="cancelled by user")
        cancelled.append(call)
    return cancelled
