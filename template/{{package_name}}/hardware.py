"""What a job ran on, without heavy dependencies: the CPU's name, the GPUs ``nvidia-smi`` sees, peak memory,
and how much of a GPU's peak a run used (MFU).

Results carry these so that a sweep's numbers can be compared knowing the hardware behind them.
``python -m <package>.hardware`` holds the checks of ``make gpu-smoke`` (``--help`` lists them).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import rates


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def gpu_names() -> list[str]:
    """The names of the NVIDIA GPUs visible to this process (empty without a GPU or a driver)."""
    return _nvidia_smi()[0]


def _nvidia_smi() -> tuple[list[str], str]:
    """The GPUs ``nvidia-smi`` lists, and why there are none when it lists none."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return [], "nvidia-smi not found"
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return [], f"nvidia-smi failed: {exc}"
    names = [line.strip() for line in out.splitlines() if line.strip()]
    return names, "" if names else "nvidia-smi lists no GPU"


def peak_rss_mb() -> float:
    """The peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mfu(flops_per_token: float, tokens_per_second: float | None, device: str, device_name: str) -> dict[str, Any]:
    """Model FLOPs utilisation: the share of the GPU's dense bf16 peak (``rates.GPUS``) that the model's
    FLOPs reached. ``mfu`` and ``peak_tflops`` are None where that is not defined; ``mfu_basis`` says why
    (on a CPU there is no GPU peak to measure against)."""
    gpu = rates.gpu_of_device(device_name) if device.startswith("cuda") else None
    peak = rates.GPUS[gpu].bf16_tflops if gpu else None
    if not device.startswith("cuda"):
        basis = f"none: ran on {device}; MFU is measured against a GPU's peak, which a CPU does not have"
    elif gpu is None:
        basis = f"none: no peak figure for {device_name!r} in rates.py"
    elif peak is None:
        basis = f"none: {gpu} has no bf16 peak in rates.py (no bf16 tensor cores)"
    elif not tokens_per_second:
        basis = "none: no training step past the warm-up to measure"
    else:
        value = tokens_per_second * flops_per_token / (peak * 1e12)
        basis = f"{gpu} dense bf16 peak, {peak:g} TFLOP/s (rates.py, {rates.PEAKS_TAKEN})"
        return {"mfu": round(value, 4), "peak_tflops": peak, "mfu_basis": basis}
    return {"mfu": None, "peak_tflops": peak, "mfu_basis": basis}


def require_gpu(what: str) -> None:
    """Exit at once, with one line, when this machine has no NVIDIA GPU (before anything is spent)."""
    names, reason = _nvidia_smi()
    if not names:
        sys.exit(
            f"{what}: this machine has no CUDA device ({reason}); nothing was deployed or spawned. Run it on a "
            "machine with an NVIDIA GPU; for Modal's GPUs, use `make deploy` and `make spawn`."
        )


def smoke_report(results_dir: Path, workload: str) -> tuple[bool, list[str]]:
    """What ``make gpu-smoke``'s results prove: (passed, the lines to print).

    pytorch: every result must say it trained on a CUDA device; each line gives its throughput and MFU.
    minimal: that job computes on the CPU, so its results can only prove that its container saw a GPU.
    """
    results = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(results_dir.glob("*.json"))]
    if not results:
        return False, [f"gpu-smoke: FAILED: no results in {results_dir}"]
    lines = []
    if workload == "pytorch":
        for r in results:
            mfu_text = f"MFU {r['mfu']:.1%}" if r.get("mfu") is not None else "MFU -"
            lines.append(
                f"{r.get('task_id')}: {r.get('device')} ({r.get('device_name')}), preset {r.get('preset')}, "
                f"{r.get('tokens_per_second')} tokens/s at steady state, {mfu_text} [{r.get('mfu_basis')}], "
                f"warm-up {r.get('warmup_seconds')} s over {r.get('warmup_steps')} steps (compilation included)"
            )
        ok = all(str(r.get("device", "")).startswith("cuda") for r in results)
        lines.append(
            "gpu-smoke: every job trained on CUDA."
            if ok
            else "gpu-smoke: FAILED: not every job trained on a CUDA device (see above)"
        )
        return ok, lines
    for r in results:
        lines.append(f"{r.get('task_id')}: computed on {r.get('device')}; its container saw GPUs {r.get('gpus')}")
    ok = all(r.get("gpus") for r in results)
    lines.append(
        "gpu-smoke: every container saw a GPU. That is all this proves: the minimal workload computes on the "
        "CPU, so no work ran on the GPU (a project rendered with workload=pytorch checks that)."
        if ok
        else "gpu-smoke: FAILED: not every container saw a GPU (see above)"
    )
    return ok, lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hardware", description="The checks of `make gpu-smoke`.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("require-gpu", help="exit 1 with one line unless nvidia-smi lists a GPU")
    report = commands.add_parser("smoke-report", help="check and print the results of a gpu-smoke run")
    report.add_argument("results_dir", type=Path)
    report.add_argument("--workload", choices=["minimal", "pytorch"], required=True)
    args = parser.parse_args(argv)
    if args.command == "require-gpu":
        require_gpu("gpu-smoke")
        return
    ok, lines = smoke_report(args.results_dir, args.workload)
    print("\n".join(lines[:-1]))
    if not ok:
        sys.exit(lines[-1])
    print(lines[-1])


if __name__ == "__main__":
    main()
