"""Volumes at their mount paths, as Modal code expects (``open("/data/x")``).

Each Volume is a directory of the emulator's state. Where this machine allows it
(root, with mount namespaces: Linux), a container gets a private mount namespace
and each Volume is bind-mounted at its mount path, visible to that container only
(the mount point itself is created on this machine as an empty directory if it is
missing). Where it does not, the emulator says so once at deploy time, and code
finds the directories through ``MODAL_EMU_VOLUMES`` (mount path -> directory),
which is always set.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_BIND = 4096

FALLBACK = (
    "the local emulator does not mount Volumes at their mount paths here ({why}): "
    "code must find them through the MODAL_EMU_VOLUMES environment variable "
    "(a JSON object: mount path -> directory)"
)


def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def mount_at_paths(volumes: dict[str, str]) -> None:
    """In this process (before it starts threads): a private mount namespace with each
    Volume directory bind-mounted at its mount path. Raises OSError if it cannot."""
    libc = _libc()
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "making / private")
    for mount_path, directory in sorted(volumes.items()):
        os.makedirs(mount_path, exist_ok=True)
        _check(libc.mount(directory.encode(), mount_path.encode(), None, MS_BIND, None), f"bind {mount_path}")


def unsafe_reason(mount_path: str, protected: list[Path]) -> str | None:
    """Why a mount path must not be covered (it would hide the emulator's own files), or None."""
    path = Path(mount_path)
    if not path.is_absolute() or path == Path("/"):
        return f"{mount_path} is not an absolute path below /"
    for keep in protected:
        if keep == path or path in keep.parents:
            return f"{mount_path} would hide {keep}"
    return None


@functools.cache
def unavailable_reason() -> str | None:
    """None if containers can get Volumes at their mount paths here, else why not (checked once)."""
    if not sys.platform.startswith("linux"):
        return f"mount namespaces are Linux only, this is {sys.platform}"
    if os.geteuid() != 0:
        return "bind mounts need root, the emulator runs as an unprivileged user"
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "src"), Path(tmp, "dst")
        src.mkdir()
        dst.mkdir()
        (src / "probe").write_text("ok")
        code = (
            "import sys; from modal_emu.volumemounts import mount_at_paths; "
            f"mount_at_paths({{{str(dst)!r}: {str(src)!r}}}); "
            f"sys.exit(open({str(dst / 'probe')!r}).read() != 'ok')"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or "no output").splitlines()
        return f"a test mount failed: {lines[-1]}"
    return None


def deploy_warnings(runner, functions: list[dict]) -> list[str]:
    """One line per reason the app's Volumes cannot be at their mount paths, naming the functions."""
    by_reason: dict[str, list[str]] = {}
    for fn in functions:
        if fn.get("volumes") and (reason := runner.mount_reason(fn)):
            by_reason.setdefault(reason, []).append(fn["function_name"])
    return [f"{', '.join(sorted(names))}: {reason}" for reason, names in by_reason.items()]
