"""What a container says once, in the log of the first input it runs: where the
local machine differs from what the function asked Modal for."""

from __future__ import annotations

import functools
import shutil
import subprocess


@functools.cache
def machine_gpus() -> str:
    """The GPUs this machine has, as ``nvidia-smi -L`` names them, or why there are none."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "no GPU (nvidia-smi not found)"
    try:
        proc = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no usable GPU (nvidia-smi failed: {exc})"
    names = [line.split(" (UUID")[0] for line in proc.stdout.splitlines() if line.startswith("GPU ")]
    if proc.returncode != 0 or not names:
        return f"no usable GPU (nvidia-smi -L: {(proc.stderr or proc.stdout).strip() or 'no GPUs listed'})"
    return "; ".join(names)


def for_container(fn: dict, volumemounts_reason: str | None) -> list[str]:
    notes = []
    if fn.get("gpu"):
        notes.append(
            f"this function asks for GPU {fn['gpu']}; this machine has {machine_gpus()}: "
            "the local emulator runs it on what the machine has"
        )
    if fn.get("volumes") and volumemounts_reason:
        notes.append(volumemounts_reason)
    return notes
