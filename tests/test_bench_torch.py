"""The GPU benchmark (bench/bench_torch.py) on a machine without a GPU: one line that says so, exit 0,
so that it can run in any CPU-only check. `make test-torch` also runs it on the CPU (--cpu)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_without_a_gpu_it_says_so_in_one_line_and_exits_0():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_torch.py")],
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},  # hides a GPU, where this machine has one
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("bench_torch: no GPU here (") and "nothing measured" in proc.stdout
    assert len(proc.stdout.strip().splitlines()) == 1 and proc.stderr == ""
