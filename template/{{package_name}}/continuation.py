"""Jobs longer than one attempt: the continuation contract between the workload and ``modal_app.py``.

Modal stops an attempt at the function's timeout (at most 24 h). A job that needs longer works
against a deadline and, before it passes, saves a checkpoint and asks to be continued:

1. The Modal function calls ``workload.run(task, output_dir, deadline=..., on_save=...)``, where
   ``deadline`` is a ``time.monotonic()`` value: the function's timeout minus a margin
   (``deadline_for``). A task may ask for less with ``"budget_seconds"`` (``attempt_deadline``).
2. The workload returns its result (a dict without ``"continue"``), or, after saving a
   checkpoint, a *continuation marker*::

       {"continue": True, "task_id": "<id>", "step": 1200, ...}     # plus any progress fields

3. The Modal function turns a marker into a *link* (``next_link``): it spawns the same deployed
   function again for the same task and expected code hash, with ``"_resume_from": <step>`` added
   to the task, and returns instead of a result::

       {"continued_as": "fc-...", "task_id": "<id>", "step": 1200, ...}

   The spawned call resumes from the checkpoint, and may itself continue.
4. Whoever polls a call (the ledger) follows ``continued_as`` (``link_target``) until a call
   returns a result, which is the task's result, or fails, which fails the task.

Rules that keep chains finite and honest:

- Every attempt makes progress: a workload does at least one unit of work (a training step, a
  chunk) before it honours the deadline, so a chain ends.
- A call that gets ``"_resume_from": N`` but finds no checkpoint at step N or later fails with
  ``MissingCheckpointError`` instead of starting over (without a Volume, checkpoints do not
  outlive their container).
- Each link is its own call with the function's retry policy; a retried link resumes from the
  newest checkpoint as well.
- The next link is spawned onto the same deployed version as the first (``app_version``), so
  redeploying other code in the middle of a chain changes nothing the chain runs; spawning the task
  again after it ends continues from its checkpoint with the new code.
- Task keys starting with ``_`` are reserved for this contract.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

CONTINUE = "continue"
CONTINUED_AS = "continued_as"
RESUME_FROM = "_resume_from"
BUDGET = "budget_seconds"

# Time kept back from the function's timeout for the last checkpoint: 10 %, at most 15 minutes.
MARGIN_FRACTION = 0.1
MAX_MARGIN_SECONDS = 15 * 60


class MissingCheckpointError(RuntimeError):
    """A continuation found no checkpoint to continue from."""


def deadline_for(timeout_seconds: float, now: float | None = None) -> float:
    """The ``time.monotonic()`` by which an attempt of a function with this timeout must have saved and returned."""
    margin = min(MAX_MARGIN_SECONDS, MARGIN_FRACTION * timeout_seconds)
    return (time.monotonic() if now is None else now) + timeout_seconds - margin


def attempt_deadline(task: dict[str, Any], deadline: float | None, now: float | None = None) -> float | None:
    """``deadline``, brought forward by the task's own ``budget_seconds`` if it has one."""
    if task.get(BUDGET) is None:
        return deadline
    budget = float(task[BUDGET])
    if budget < 0:
        raise ValueError(f"task {task['id']}: '{BUDGET}' must be >= 0 (got {budget})")
    own = (time.monotonic() if now is None else now) + budget
    return own if deadline is None else min(deadline, own)


def marker(task: dict[str, Any], step: int, **progress: Any) -> dict[str, Any]:
    """What a workload returns to be continued from ``step``."""
    return {CONTINUE: True, "task_id": task["id"], "step": step, **progress}


def is_marker(result: Any) -> bool:
    return isinstance(result, dict) and result.get(CONTINUE) is True


def next_link(task: dict[str, Any], result: dict[str, Any], spawn: Callable[[dict[str, Any]], str]) -> dict[str, Any]:
    """``result`` itself, or for a continuation marker: spawn the next call and return the link to it."""
    if not is_marker(result):
        return result
    call_id = spawn({**task, RESUME_FROM: int(result["step"])})
    return {CONTINUED_AS: call_id, **{k: v for k, v in result.items() if k != CONTINUE}}


def link_target(value: Any) -> str | None:
    """The call id a link points to, or ``None`` when ``value`` is a result."""
    if isinstance(value, dict) and isinstance(value.get(CONTINUED_AS), str):
        return value[CONTINUED_AS]
    return None


def run_locally(run: Callable[..., dict[str, Any]], task: dict[str, Any], *args: Any, **kwargs: Any) -> list[Any]:
    """Run a task's whole chain in this process, as the Modal function would in a chain of calls.

    For tests and local debugging: ``run`` is ``workload.run``, ``args``/``kwargs`` what follows the
    task. Returns what each call returned; the last one is the task's result.
    """
    calls = [task]

    def spawn(next_task: dict[str, Any]) -> str:
        calls.append(next_task)
        return f"local-{len(calls)}"

    returns: list[Any] = []
    while len(returns) < len(calls):
        returns.append(run(calls[len(returns)], *args, **kwargs))
        next_link(calls[len(returns) - 1], returns[-1], spawn)
    return returns


def check_resumed(task: dict[str, Any], step: int) -> None:
    """Fail a continuation that would start before the step its chain had reached."""
    expected = int(task.get(RESUME_FROM, 0))
    if step < expected:
        raise MissingCheckpointError(
            f"task {task['id']}: this call continues from step {expected}, but the newest checkpoint is at step "
            f"{step}; checkpoints must be on a Volume to outlive their container"
        )
