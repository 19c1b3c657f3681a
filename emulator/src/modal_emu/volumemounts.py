"""Volumes at their mount paths, as Modal code expects (``open("/data/x")``).

Each Volume is a directory of the emulator's state. A container gets a private mount
namespace in which each Volume is bind-mounted at its mount path, visible to that
container only (Linux):

* The emulator runs as root: the mount namespace is made directly, and a missing mount
  point is created on this machine as an empty directory.
* It runs as an unprivileged user: a user namespace that maps the user to itself (the
  function sees its own uid, and the programs it starts get no privileges), then a mount
  namespace with a root of its own: a tmpfs (at ``<state>/mountns``, only visible inside)
  whose entries are bind mounts of this machine's ``/``. A mount point is created inside
  it; where it has to go into a directory of the machine, that directory is covered by a
  tmpfs that binds its entries back. Then ``chroot``: nothing changes on the machine.

Where neither works, a deploy of a function with Volumes is refused (``deploy_refusal``): code
that opens its mount path would fail, or write somewhere else. ``--no-mount-volumes`` turns
mounting off on purpose: the deploy then warns once (``FALLBACK``) and code finds the
directories through ``MODAL_EMU_VOLUMES`` (mount path -> directory), which is always set.
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
CLONE_NEWUSER = 0x10000000
MS_BIND = 4096
MS_REC = 0x4000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18

FALLBACK = (
    "the local emulator does not mount Volumes at their mount paths here ({why}): "
    "code must find them through the MODAL_EMU_VOLUMES environment variable "
    "(a JSON object: mount path -> directory)"
)
UNAVAILABLE_FIX = (
    "run the emulator on Linux as root, or as a user where unprivileged user namespaces are allowed "
    "(sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone, "
    "kernel.apparmor_restrict_unprivileged_userns), or start it with --no-mount-volumes "
    "if the code reads the MODAL_EMU_VOLUMES environment variable"
)


def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(libc, source: str | Path | None, target: str | Path, flags: int, fstype: str = "", data: str = "") -> None:
    result = libc.mount(
        str(source).encode() if source is not None else None,
        str(target).encode(),
        fstype.encode() or None,
        flags,
        data.encode() or None,
    )
    _check(result, f"mount {source or ''} on {target}")


def mount_at_paths(volumes: dict[str, str], scratch: str) -> None:
    """In this process (before it starts threads): a private mount namespace with each Volume
    directory bind-mounted at its mount path. ``scratch`` is an empty directory of the
    emulator's own (an unprivileged user's new root is mounted there). Raises OSError if it cannot."""
    libc = _libc()
    if os.geteuid() == 0:
        _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        _mount(libc, "none", "/", MS_REC | MS_PRIVATE)
        for mount_path, directory in sorted(volumes.items()):
            os.makedirs(mount_path, exist_ok=True)
            _mount(libc, directory, mount_path, MS_BIND)
        return
    uid, gid, cwd = os.getuid(), os.getgid(), os.getcwd()
    Path(scratch).mkdir(parents=True, exist_ok=True)
    _check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare(CLONE_NEWUSER | CLONE_NEWNS)")
    Path("/proc/self/setgroups").write_text("deny")  # required before a gid map, by an unprivileged user
    Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
    Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    _mount(libc, None, "/", MS_REC | MS_PRIVATE)
    root, ours = Path(scratch), set()
    _cover(libc, root, Path("/"), ours, root)
    for mount_path, directory in sorted(volumes.items()):
        _mount(libc, directory, _make_dir(libc, root, Path(mount_path), ours), MS_BIND)
    os.chroot(root)
    os.chdir(cwd)


def _cover(libc, at: Path, source: Path, ours: set[Path], root: Path) -> None:
    """A tmpfs on ``at`` that shows what ``source`` holds (each entry bound back, links copied),
    so that a new entry can be created in it without touching ``source``."""
    entries = sorted(os.scandir(source), key=lambda e: e.name)
    _mount(libc, "tmpfs", at, 0, "tmpfs", "mode=0755")
    if at == root:  # binds of the machine's folders (its /tmp ...) leave the new root out, never loop into it
        _mount(libc, None, at, MS_UNBINDABLE)
    ours.add(at)
    for entry in entries:
        dest = at / entry.name
        if Path(entry.path) == root:  # the new root seen from the folder that holds it: left empty
            dest.mkdir()
        elif entry.is_symlink():
            os.symlink(os.readlink(entry.path), dest)
        else:
            dest.mkdir() if entry.is_dir() else dest.touch()
            _mount(libc, entry.path, dest, MS_BIND | MS_REC)


def _make_dir(libc, root: Path, path: Path, ours: set[Path]) -> Path:
    """``path`` inside the new ``root``, creating what is missing in tmpfs only; returns it."""
    here, machine = root, Path("/")
    for part in path.parts[1:]:
        machine, below = machine / part, here / part
        if below.is_symlink():
            raise OSError(f"the Volume mount path {path} goes through a symbolic link ({machine})")
        if not below.is_dir():
            if here not in ours:
                _cover(libc, here, machine.parent, ours, root)
            below.mkdir()
            ours.add(below)
        here = below
    return here


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
    with tempfile.TemporaryDirectory() as tmp:
        src, there, missing = Path(tmp, "src"), Path(tmp, "there"), Path(tmp, "missing", "below")
        src.mkdir()
        there.mkdir()
        (src / "probe").write_text("ok")
        volumes = {str(there): str(src), str(missing): str(src)}
        code = (
            "import sys; from modal_emu.volumemounts import mount_at_paths; "
            f"mount_at_paths({volumes!r}, {str(Path(tmp, 'scratch'))!r}); "
            f"sys.exit(any(open(p + '/probe').read() != 'ok' for p in {list(volumes)!r}))"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp)
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or "no output").splitlines()
        who = "root" if os.geteuid() == 0 else "an unprivileged user, in a user namespace"
        return f"a test mount as {who} failed: {lines[-1]}"
    return None


def problems(mount_paths, protected: list[Path]) -> list[tuple[str, str, str]]:
    """(mount path, why it cannot be mounted, what to do) for each mount path this machine cannot give."""
    unavailable = unavailable_reason() if mount_paths else None
    if unavailable:
        return [(path, unavailable, UNAVAILABLE_FIX) for path in mount_paths]
    unsafe = ((path, unsafe_reason(path, protected)) for path in mount_paths)
    return [(path, why, "mount the Volume at another path") for path, why in unsafe if why]


def deploy_refusal(runner, functions: list[dict]) -> str | None:
    """Why a deploy is refused: a function's Volume cannot be at its mount path here (one line)."""
    for fn in functions:
        for path, why, fix in runner.mount_problems(fn):
            return (
                f"function '{fn['function_name']}': the local emulator cannot mount a Volume at {path} ({why}); {fix}"
            )
    return None


def deploy_warnings(runner, functions: list[dict]) -> list[str]:
    """With --no-mount-volumes: one line per reason the app's Volumes are not at their mount paths."""
    by_reason: dict[str, list[str]] = {}
    for fn in functions:
        if fn.get("volumes") and (reason := runner.mount_reason(fn)):
            by_reason.setdefault(reason, []).append(fn["function_name"])
    return [f"{', '.join(sorted(names))}: {reason}" for reason, names in by_reason.items()]
