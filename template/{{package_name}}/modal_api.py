"""The one module that calls into Modal from your machine: public API and the `modal` CLI only.

Everything here answers one question about Modal and says by the *type* of what it raises
whether the answer is about the job or about the API:

- a job's outcome is an :class:`Outcome` (the job returned, raised :class:`JobFailed`, timed out,
  was lost, cancelled, or its result expired: modal's own exception types);
- :class:`ApiUnreachable` means Modal did not answer (network, auth, server): nothing is known
  about the job, and nothing may be recorded about it;
- :class:`NotDeployedError` means the app, or the version asked for, is not deployed.

Every request is given :data:`settings.API_TIMEOUT_S` to answer, so an unreachable API costs
seconds, not the minute modal's client would retry for.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, TypeVar

import modal
import modal.call_graph
import modal.exception

from . import settings
from .guard import Deployment

T = TypeVar("T")


# Imported inside the container too (modal_app.py raises JobFailed): keep it to the Python of the image.
class JobFailed(Exception):
    """What the deployed function raises when the job fails: the job's own exception, as text.

    The wrapper in ``modal_app.py`` turns whatever the job raises into this, so the client gets
    one type it can always unpickle and tell apart from the API's errors (a job may raise a
    ``ConnectionError`` of its own: that is its outcome, not a dead API).
    """

    @classmethod
    def wrapping(cls, exc: BaseException) -> JobFailed:
        return cls(describe(exc))


@contextmanager
def job_failures() -> Iterator[None]:
    """Inside the deployed function: whatever the job raises leaves as :class:`JobFailed`, ``SystemExit``
    (a ``sys.exit()`` in the job) too. ``KeyboardInterrupt`` passes through untouched: it is how Modal
    announces a preemption, after which it restarts the input."""
    try:
        yield
    except (Exception, SystemExit) as exc:
        raise JobFailed.wrapping(exc) from exc  # the cause stays in the logs; the client gets the type


class ApiUnreachable(RuntimeError):
    """Modal's API did not answer (network, auth, server): nothing about the job is known."""


class NotDeployedError(RuntimeError):
    pass


def describe(exc: BaseException) -> str:
    """``Type: first line of the message``; a :class:`JobFailed` is shown as the job's own error."""
    text = str(exc).strip().splitlines()
    if isinstance(exc, JobFailed):
        return text[0] if text else "JobFailed"
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _quiet_abandoned_connects(record: logging.LogRecord) -> bool:
    """When the API is unreachable, a request given up on (:func:`bounded`) can leave modal's
    connection task behind; when it fails later, asyncio logs "Task exception was never retrieved"
    with a traceback, over and over during an outage that is already reported once. Drop those."""
    exc = record.exc_info[1] if record.exc_info else None
    unretrieved = record.getMessage().startswith("Task exception was never retrieved")
    return not (unretrieved and isinstance(exc, OSError | modal.exception.ConnectionError))


logging.getLogger("asyncio").addFilter(_quiet_abandoned_connects)


async def bounded(request: Awaitable[T], what: str, timeout: float | None = None) -> T:
    """Await one request to Modal, at most ``timeout`` seconds, else :class:`ApiUnreachable`.
    Whatever the request itself raises comes through unchanged."""
    timeout = settings.API_TIMEOUT_S if timeout is None else timeout
    task = asyncio.ensure_future(request)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        raise ApiUnreachable(f"{what}: Modal's API did not answer within {timeout:g} s")
    return task.result()


# ------------------------------------------------------------------ outcomes
# The events a poll can report (job.py turns them into states).
WAITING = "waiting"  # no result yet: queued or running
RETURNED = "returned"  # the call returned a value
RAISED = "raised"  # the job raised (JobFailed), or Modal could not run it at all
TIMED_OUT = "timed-out"
LOST = "lost"  # Modal lost the input (container crashed, preempted past its retries), or forgot the call
CANCELLED = "cancelled"
EXPIRED = "expired"  # the result is gone (Modal keeps results for 7 days)

# modal's own exception types for outcomes (JobFailed is ours), each with the error a person reads
# ("{}": the exception as ``describe`` tells it). Order matters: subclasses first.
_OUTCOMES: tuple[tuple[type[BaseException], str, str], ...] = (
    (JobFailed, RAISED, "{}"),
    # a definite answer about a call id we got from Modal: not its result either
    (modal.exception.NotFoundError, LOST, "Modal no longer knows this call ({})"),
    (modal.exception.OutputExpiredError, EXPIRED, "result expired (Modal keeps results for 7 days)"),
    (modal.exception.FunctionTimeoutError, TIMED_OUT, "{}"),
    (modal.exception.InternalFailure, LOST, "lost by Modal (container crashed or preempted past its retries): {}"),
    (modal.exception.InputCancellation, CANCELLED, "{}"),
    # A result Modal has but cannot be turned into an exception here, or a function that never ran
    # (its container crashed while starting): the job's outcome, told as text.
    (modal.exception.RemoteError, RAISED, "{}"),
    (modal.exception.ExecutionError, RAISED, "{}"),
    # The job finished, but what it returned needs a module this machine lacks (torch, numpy, ...).
    (modal.exception.DeserializationError, RAISED, "finished, but its result cannot be read here: {}"),
)


@dataclass(frozen=True)
class Outcome:
    event: str  # one of the events above
    value: Any = None  # what the call returned (RETURNED)
    error: str | None = None  # what went wrong, for a person


def outcome_of(exc: BaseException) -> Outcome | None:
    """The outcome a poll's exception means, or ``None`` when it says nothing about the job."""
    if type(exc) is TimeoutError:  # modal's poll with timeout=0: no output yet (its API errors are its own types)
        return Outcome(WAITING)
    for kind, event, error in _OUTCOMES:
        if isinstance(exc, kind):
            return Outcome(event, error=error.format(describe(exc)))
    if _from_the_client(exc):
        return None
    # Any other type reached us from the job's side without the wrapper: an exception raised while its
    # container started (an import that fails there), or a call of a deployment older than the wrapper.
    return Outcome(RAISED, error=describe(exc))


def _from_the_client(exc: BaseException) -> bool:
    """The types the client itself raises when the API fails: modal's own errors, the OS's (a socket),
    and those of the gRPC libraries under it (AttributeError too: grpclib's way of failing a closed stream).
    A job's own exception of these types (its ConnectionError) reaches us as JobFailed."""
    libraries = ("modal", "grpclib", "h2", "synchronicity")
    return isinstance(exc, modal.exception.Error | OSError | AttributeError) or (
        type(exc).__module__.split(".")[0] in libraries
    )


async def poll(call_id: str, what: str) -> Outcome:
    """Look at one call without waiting. Raises :class:`ApiUnreachable` when Modal did not say."""
    try:
        value = await bounded(modal.FunctionCall.from_id(call_id).get.aio(timeout=0), what)
    except ApiUnreachable:
        raise
    except BaseException as exc:  # InputCancellation is a BaseException
        if not isinstance(exc, Exception | modal.exception.InputCancellation):
            raise
        outcome = outcome_of(exc)
        if outcome is None:
            raise ApiUnreachable(f"{what}: {describe(exc)}") from exc
        return outcome
    return Outcome(RETURNED, value=value)


RUNNING, QUEUED = "running", "queued"  # where a pending call is (phase)


async def phase(call_id: str) -> str | None:
    """:data:`RUNNING` (a container has the input) or :data:`QUEUED`, from Modal's call graph; ``None``
    when the graph does not say (Modal fills it in on a best-effort basis). Never raises."""
    try:
        graph = await bounded(modal.FunctionCall.from_id(call_id).get_call_graph.aio(), "reading the call graph")
    except Exception:  # noqa: BLE001 - a detail: the call is pending either way
        return None
    waiting = [node for node in graph if node.status == modal.call_graph.InputStatus.PENDING]
    if not waiting:
        return None
    return RUNNING if any(node.task_id for node in waiting) else QUEUED


async def cancel(call_id: str, what: str) -> None:
    try:
        await bounded(modal.FunctionCall.from_id(call_id).cancel.aio(), what)
    except ApiUnreachable:
        raise
    except Exception as exc:
        raise ApiUnreachable(f"{what}: {describe(exc)}") from exc


# -------------------------------------------------------------------- billing
async def _billing(request: Awaitable[T], what: str) -> T | None:
    """A billing request: ``None`` when Modal answers that this workspace has no billing access."""
    try:
        return await bounded(request, what)
    except ApiUnreachable:
        raise
    except modal.exception.PermissionDeniedError:
        return None
    except Exception as exc:
        raise ApiUnreachable(f"{what}: {describe(exc)}") from exc


async def billing_rates() -> dict[str, str] | None:
    """Modal's current rates of this workspace (rate key -> USD per second, as decimal text); ``None``
    when billing is not available to it. Raises :class:`ApiUnreachable` when Modal did not answer."""
    found = await _billing(modal.Workspace.from_context().billing.rates.aio(), "reading Modal's billing rates")
    return None if found is None else {key: str(value) for key, value in found.items()}


async def billing_report(start: datetime, end: datetime) -> dict[str, Decimal] | None:
    """What Modal billed each App (by name) in the whole hours from ``start`` to ``end`` (UTC);
    ``None`` when billing is not available. Raises :class:`ApiUnreachable` when Modal did not answer."""
    items = await _billing(
        modal.Workspace.from_context().billing.report.aio(start=start, end=end, resolution="h"),
        "reading Modal's billing report",
    )
    if items is None:
        return None
    by_app: dict[str, Decimal] = {}
    for item in items:
        by_app[item.description] = by_app.get(item.description, Decimal(0)) + item.cost
    return by_app


# --------------------------------------------------------------- deployments
def parse_history(text: str) -> list[Deployment]:
    """The deployments in ``modal app history --json`` output, newest first."""
    found = []
    for row in json.loads(text or "[]"):
        raw = str(row.get("Version", row.get("version", ""))).lstrip("v")
        if raw.isdigit():
            found.append(Deployment(int(raw), row.get("Tag", row.get("tag")) or None))
    return sorted(found, key=lambda d: d.version, reverse=True)


class History:
    """The app's deployments (``[]`` when never deployed), from ``modal app history APP --json``
    (the public CLI: modal's Python API has no call for it) in a child process that starts at
    once: ask early, do other work, then call :meth:`result`."""

    def __init__(self, app_name: str = settings.APP_NAME):
        self.app_name = app_name
        command = [sys.executable, "-m", "modal", "app", "history", app_name, "--json"]  # this venv's modal
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(self) -> list[Deployment]:
        limit = settings.API_TIMEOUT_S + 10
        what = f"`modal app history {self.app_name} --json`"
        try:
            out, errors = self.proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise ApiUnreachable(f"{what} got no answer within {limit:g} s: is Modal's API reachable?") from None
        if self.proc.returncode != 0:
            text = (errors + out).lower()
            if "not found" in text or "no app with name" in text:
                return []
            last = (errors or out).strip().splitlines()[-1:] or ["no output"]
            hint = ""
            if "token missing" in text or "could not authenticate" in text:
                hint = " (no Modal token: run `modal setup`; for the local emulator, add LOCAL=1)"
            raise ApiUnreachable(f"{what} failed: {last[0]}{hint}")
        return parse_history(out)


async def deployed_function(version: int | None = None):
    """The function of the deployed app, pinned to ``version`` (the newest one without it)."""
    app, name = settings.APP_NAME, settings.FUNCTION_NAME
    fn = modal.Function.from_name(app, name, version=version)
    where = f"{app}.{name}" + (f" version {version}" if version is not None else "")
    try:
        await bounded(fn.hydrate.aio(), f"looking up {where}")
    except modal.exception.NotFoundError:
        raise NotDeployedError(f"{where} is not deployed: run {settings.make('deploy')}") from None
    except ApiUnreachable:
        raise
    except Exception as exc:
        raise ApiUnreachable(f"looking up {where}: {describe(exc)}") from exc
    return fn


# ------------------------------------------------------------------ spawning
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
SPAWNED, REFUSED, UNSURE = "spawned", "refused", "unknown"


async def spawn(fn, payload: dict[str, Any], *, retries: int = 5, **kwargs: Any) -> tuple[str, str]:
    """One spawn, retried while Modal says "not now": ``(SPAWNED, call_id)``, ``(REFUSED, why)``
    (nothing runs) or ``(UNSURE, why)`` (the call may exist)."""
    delay = 0.5
    for attempt in range(retries + 1):
        try:
            call = await bounded(fn.spawn.aio(payload, **kwargs), "spawning")
        except _RETRYABLE as exc:
            if attempt == retries:
                return REFUSED, f"{describe(exc)} (after {retries} retries)"
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)
        except _REFUSED as exc:
            return REFUSED, describe(exc)
        except Exception as exc:  # noqa: BLE001 - whatever else broke, the call may exist
            return UNSURE, f"spawn RPC failed midway ({describe(exc)}); the job may be running"
        else:
            return SPAWNED, call.object_id
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------- misc
def deploy_command(code_hash: str) -> list[str]:
    """``modal deploy modal_app.py --tag HASH``: the deployment is tagged with the code it runs."""
    return [sys.executable, "-m", "modal", "deploy", "modal_app.py", "--tag", code_hash]


LOGS_KEPT_S = 7 * 24 * 3600 - 300  # how far back `modal app logs` may look (7 days), less a margin


def logs_command(call_id: str, since: float | None, follow: bool = False) -> list[str]:
    """``modal app logs`` of one call (this interpreter's modal CLI: found without the venv on PATH)."""
    command = [sys.executable, "-m", "modal", "app", "logs", settings.APP_NAME, "--function-call", call_id]
    if follow:
        return [*command, "--follow"]  # the CLI follows from the start, without --since
    if since is not None:
        # With its time zone: modal reads a naive time as the machine's local time. Modal serves 7 days of logs.
        start = max(since - 60, time.time() - LOGS_KEPT_S)
        utc = timezone.utc  # noqa: UP017 - datetime.UTC is 3.11+, and the image may run 3.10
        command += ["--since", datetime.fromtimestamp(start, utc).isoformat(timespec="seconds")]
    return command


def has_token() -> bool:
    """A Modal token is configured (environment or ~/.modal.toml)."""
    import modal.config

    return bool(modal.config.config.get("token_id"))
