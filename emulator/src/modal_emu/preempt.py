"""Rehearsing a preemption: ``python -m modal_emu preempt`` takes back the containers of running inputs,
as Modal does when it preempts one: an interrupt (SIGINT), a grace period, SIGKILL, then the input is
restarted (see ``Runner.preempt``). Checkpoint-and-resume code can so be tested before a real
preemption.

The command reaches the running server through its state folder: it writes a request file into
``<state>/preempt/`` and sends the server SIGUSR1; the server answers each request with a reply file
naming the inputs it preempted.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .lifeline import alive
from .store import atomic_write

if TYPE_CHECKING:
    from .core import Emulator

FOLDER = "preempt"
STALE_S = 10.0  # how long a client waits for its reply (``ask``'s timeout)


class PreemptError(RuntimeError):
    """The server did not answer the request."""


def ask(
    state_dir: Path, server_pid: int, call_id: str | None, grace_s: float, timeout: float = STALE_S
) -> list[list[str]]:
    """Ask the server to preempt what runs (of ``call_id``, or everything); the (call id, input) pairs it did."""
    if valid_grace(grace_s) is None:
        raise ValueError(f"grace_s={grace_s!r}: give the seconds between SIGINT and SIGKILL, 0 or more")
    folder = state_dir / FOLDER
    nonce = secrets.token_hex(8)
    request, reply = folder / f"{nonce}.request", folder / f"{nonce}.reply"
    atomic_write(request, json.dumps({"call_id": call_id, "grace_s": grace_s}).encode())
    try:
        os.kill(server_pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while not reply.exists():
            if time.monotonic() > deadline:
                raise PreemptError(f"the emulator (pid {server_pid}) did not answer within {timeout:g} s")
            if not alive(server_pid):
                raise PreemptError(f"the emulator (pid {server_pid}) stopped before it answered")
            time.sleep(0.02)
        preempted = json.loads(reply.read_text())
        reply.unlink()
        return preempted
    finally:  # given up (timeout, Ctrl+C): a request left behind must not preempt anything later
        request.unlink(missing_ok=True)


def answer(emu: Emulator) -> None:
    """Carry out every pending request (the server's SIGUSR1 handler). A request older than a client
    waits for is stale (its client was killed before it could remove it): dropped, never carried out."""
    now = time.time()
    for stale in (emu.store.root / FOLDER).glob("*.reply"):
        _remove_if_older(stale, now - STALE_S)  # replies nobody came for
    for request in sorted((emu.store.root / FOLDER).glob("*.request")):
        try:
            fresh = request.stat().st_mtime > now - STALE_S
            wanted = json.loads(request.read_text()) if fresh else None
            request.unlink()
        except (OSError, ValueError):
            continue  # answered already, or unreadable: its client times out with an error
        if not isinstance(wanted, dict):
            continue  # stale, or not a request of ``ask``'s
        call_id, grace_s = wanted.get("call_id"), valid_grace(wanted.get("grace_s"))
        if grace_s is None or not (call_id is None or isinstance(call_id, str)):
            continue  # not a request of ``ask``'s
        preempted = emu.runner.preempt(call_id, grace_s)
        atomic_write(request.with_suffix(".reply"), json.dumps(preempted).encode())


def _remove_if_older(path: Path, than: float) -> None:
    try:
        if path.stat().st_mtime < than:
            path.unlink()
    except OSError:
        pass


def valid_grace(grace_s: object) -> float | None:
    """``grace_s`` as seconds if it is a number from 0 up (not infinity, not NaN), else None."""
    ok = isinstance(grace_s, int | float) and not isinstance(grace_s, bool) and 0 <= grace_s < float("inf")
    return float(grace_s) if ok else None
