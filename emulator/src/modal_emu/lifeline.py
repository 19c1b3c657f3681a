"""A container dies with the emulator that started it.

Containers run in their own session (so that cancel and timeout can kill all they
started), which also means nothing stops them when the emulator itself is killed:
they would finish work that the restarted emulator has already reported as lost.
So each worker asks Linux to kill it when its parent dies (``PR_SET_PDEATHSIG``),
and, where that is not available, a thread watches the parent pid and kills the
container's process group once it changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1


def _kill_group() -> None:
    try:
        os.killpg(os.getpgrp(), signal.SIGKILL)
    finally:
        os._exit(1)


def _ask_the_kernel() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except OSError:
        return False


def _watch(parent_pid: int, interval: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(interval)
    _kill_group()


def die_with_parent(parent_pid: int, interval: float = 0.2) -> None:
    """Call first thing in the worker; ``parent_pid`` is the emulator's pid (0: unknown, do nothing)."""
    if not parent_pid:
        return
    _ask_the_kernel()
    if os.getppid() != parent_pid:  # the emulator died before the request above took effect
        _kill_group()
    threading.Thread(target=_watch, args=(parent_pid, interval), name="modal-emu-lifeline", daemon=True).start()


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs, as far as this user can tell: a zombie (killed, not yet reaped) has
    stopped, and a process of another user is none of ours."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:  # no /proc (macOS): the signal test is all there is
        return True
