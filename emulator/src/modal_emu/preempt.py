"""Rehearsing a preemption: ``python -m modal_emu preempt`` takes back the containers of running inputs,
as Modal takes back a GPU container: SIGTERM, a grace period, SIGKILL, then the input is retried
(see ``Runner.preempt``). Checkpoint-and-resume code can so be tested before a real GPU is preempted.

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

from .store import atomic_write

if TYPE_CHECKING:
    from .core import Emulator

FOLDER = "preempt"


class PreemptError(RuntimeError):
    """The server did not answer the request."""


def ask(state_dir: Path, server_pid: int, call_id: str | None, grace_s: float, timeout: float = 10) -> list[list[str]]:
    """Ask the server to preempt what runs (of ``call_id``, or everything); the (call id, input) pairs it did."""
    folder = state_dir / FOLDER
    nonce = secrets.token_hex(8)
    request, reply = folder / f"{nonce}.request", folder / f"{nonce}.reply"
    atomic_write(request, json.dumps({"call_id": call_id, "grace_s": grace_s}).encode())
    os.kill(server_pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while not reply.exists():
        if time.monotonic() > deadline:
            request.unlink(missing_ok=True)
            raise PreemptError(f"the emulator (pid {server_pid}) did not answer within {timeout:g} s")
        time.sleep(0.02)
    preempted = json.loads(reply.read_text())
    reply.unlink()
    return preempted


def answer(emu: Emulator) -> None:
    """Carry out every pending request (the server's SIGUSR1 handler)."""
    for request in sorted((emu.store.root / FOLDER).glob("*.request")):
        try:
            wanted = json.loads(request.read_text())
            request.unlink()
        except (OSError, ValueError):
            continue  # answered already, or half-written by a client that gave up
        preempted = emu.runner.preempt(wanted.get("call_id"), float(wanted.get("grace_s", 30)))
        atomic_write(request.with_suffix(".reply"), json.dumps(preempted).encode())
