"""Emulator benchmarks, measured side by side in one run.

    uv run python bench/bench_emulator.py [--tasks 100] [--repeat 10]

Three emulators, one after another in the same run: cold containers (a new
process per input), warm containers (the default), and warm with --latency 50 ms
to mimic the real API's round trip. For each it prints the spawn -> result
latency of one trivial call (median of --repeat) and the wall time for --tasks
trivial calls spawned at once and then collected, then the ratios between them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from modal_emu import local

HERE = Path(__file__).resolve().parent

CLIENT = textwrap.dedent(
    """
    import json, statistics, sys, time
    import modal
    repeat, tasks = int(sys.argv[1]), int(sys.argv[2])
    noop = modal.Function.from_name("bench-trivial", "noop")
    noop.hydrate()
    single = []
    for i in range(repeat):
        t0 = time.perf_counter()
        noop.spawn(i).get(timeout=120)
        single.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    calls = [noop.spawn(i) for i in range(tasks)]
    spawned = time.perf_counter() - t0
    results = [c.get(timeout=600) for c in calls]
    assert results == list(range(tasks)), "wrong results"
    total = time.perf_counter() - t0
    print(json.dumps({"single": statistics.median(single), "spawn": spawned, "total": total}))
    """
)


def measure(latency_ms: float, repeat: int, tasks: int, concurrency: int, warm: bool) -> dict:
    state = Path(tempfile.mkdtemp(prefix="modal-emu-bench-"))
    options = ["--latency", str(latency_ms), "--concurrency", str(concurrency)]
    options += ["--scaledown-window", "60" if warm else "0"]
    env = {**os.environ, **local.client_env(local.start_detached(state, 0, *options), state)}
    try:
        subprocess.run(
            [sys.executable, "-m", "modal", "deploy", "trivial_app.py"],
            cwd=HERE,
            env=env,
            check=True,
            capture_output=True,
        )
        out = subprocess.run(
            [sys.executable, "-c", CLIENT, str(repeat), str(tasks)], env=env, check=True, capture_output=True, text=True
        )
        return json.loads(out.stdout)
    finally:
        local.stop(state)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", type=float, default=50.0, help="simulated round trip for the second run (ms)")
    args = parser.parse_args()

    configs = [("cold", False, 0.0), ("warm", True, 0.0), ("warm", True, args.latency)]
    rows = {(name, lat): measure(lat, args.repeat, args.tasks, args.concurrency, warm) for name, warm, lat in configs}

    print(
        f"modal-emu benchmark: {args.tasks} trivial tasks, concurrency {args.concurrency}, "
        f"{os.cpu_count()} CPUs, median of {args.repeat} single calls"
    )
    print("cold = a new process per input; warm = containers reused between inputs (the default)")
    print(
        f"{'containers':>10} {'latency':>8} {'spawn->result':>14} {'spawn all':>10} {'all tasks':>10} {'per task':>9}"
    )
    for (name, latency), r in rows.items():
        print(
            f"{name:>10} {latency:>6.0f}ms {r['single']:>13.3f}s {r['spawn']:>9.3f}s {r['total']:>9.2f}s "
            f"{r['total'] / args.tasks:>8.3f}s"
        )
    cold, warm, slow = rows[("cold", 0.0)], rows[("warm", 0.0)], rows[("warm", args.latency)]
    print(
        f"warm vs cold: spawn->result {cold['single'] / warm['single']:.1f}x faster, "
        f"{args.tasks} tasks {cold['total'] / warm['total']:.1f}x faster"
    )
    print(
        f"{args.latency:.0f} ms/RPC vs 0 ms (warm): spawn->result {slow['single'] / warm['single']:.2f}x, "
        f"spawning {args.tasks} {slow['spawn'] / warm['spawn']:.2f}x, all tasks {slow['total'] / warm['total']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
