"""The pytorch example's training speed on this machine's GPU: tokens/s and MFU per preset.

    python bench/bench_torch.py [--presets small,base,large] [--steps 60] [--project DIR] [--json FILE] [--cpu]

Each preset trains in its own process through the generated project's own ``workload.run`` (bf16
autocast and torch.compile, as a job runs on Modal) for WARMUP_STEPS + ``--steps`` steps, and the
figures are the result's own: steady-state tokens/s (the warm-up steps, compilation included,
reported apart), model FLOPs per token, and MFU against the GPU's dense bf16 peak in the project's
``rates.py``. The project is rendered from this checkout unless ``--project`` names one.

Without a CUDA device (or without torch) it says so in one line and exits 0: nothing is measured.
``--cpu`` runs the same measurement on the CPU (MFU blank there), to check the benchmark itself.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys
from pathlib import Path
from {package} import workload
task = json.loads(sys.argv[1])
print(json.dumps(workload.run(task, Path(sys.argv[2]))))
"""


def no_gpu_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed in this Python"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} sees no CUDA device"
    return None


def render_project(where: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from tests.flow import render

    return render(where / "project", project_name="Torch Bench", workload="pytorch", gpu="H100")


def package_of(project: Path) -> str:
    """The package of a rendered project: the folder that holds its workload.py."""
    found = sorted(p.parent.name for p in project.glob("*/workload.py"))
    if len(found) != 1:
        sys.exit(f"bench_torch: {project} is not a rendered project (no single <package>/workload.py)")
    return found[0]


def measure(project: Path, preset: str, steps: int, out: Path, device: str) -> dict:
    sys.path.insert(0, str(project))
    package = package_of(project)
    workload = importlib.import_module(f"{package}.workload")  # the rendered project's

    task = {
        "id": f"bench-{preset}-{device}",
        "preset": preset,
        "device": device,
        "steps": workload.WARMUP_STEPS + steps,
        "eval_every": 10**9,  # evaluated at the first and last step only
        "eval_batches": 1,
        "checkpoint_every": 10**9,
    }
    proc = subprocess.run(
        [sys.executable, "-c", CHILD.format(package=package), json.dumps(task), str(out)],
        cwd=project,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(project), os.environ.get("PYTHONPATH")]))},
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"preset": preset, "error": tail[0]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="small,base,large")
    parser.add_argument("--steps", type=int, default=60, help="measured steps per preset, after the warm-up")
    parser.add_argument("--project", type=Path, help="a rendered pytorch project (default: render one)")
    parser.add_argument("--cpu", action="store_true", help="measure on the CPU (MFU blank): a check of the benchmark")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    reason = no_gpu_reason()
    if reason and not (args.cpu and "not installed" not in reason):
        print(f"bench_torch: no GPU here ({reason}): nothing measured. Run it on a machine with an NVIDIA GPU.")
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-torch-") as tmp:
        project = args.project.resolve() if args.project else render_project(Path(tmp))
        for preset in args.presets.split(","):
            rows.append(measure(project, preset, args.steps, Path(tmp) / "outputs", "cpu" if args.cpu else "cuda"))
            print(line(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 1 if any("error" in r for r in rows) else 0


def line(r: dict) -> str:
    if "error" in r:
        return f"{r['preset']:>6}: FAILED: {r['error']}"
    mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else f"- ({r['mfu_basis']})"
    return (
        f"{r['preset']:>6}: {r['parameters'] / 1e6:.1f}M parameters, {r['flops_per_token'] / 1e9:.3f} GFLOP/token, "
        f"{r['tokens_per_second']:,.0f} tokens/s over {r['steady_steps']} steps, MFU {mfu}; warm-up "
        f"{r['warmup_seconds']:.1f} s over {r['warmup_steps']} steps (compilation included); peak memory "
        f"{r['peak_memory_mb'] / 1024:.1f} GiB; {r['precision']}, {r['device_name']}, torch {r['torch']}"
    )


if __name__ == "__main__":
    sys.exit(main())
