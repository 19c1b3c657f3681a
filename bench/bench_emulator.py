"""Emulator benchmarks, measured side by side in one run.

    uv run python bench/bench_emulator.py [--tasks 100] [--repeat 10]

For each emulator setting (no added latency, and --latency 50 ms to mimic the
real API's round trip) it prints:
  - spawn -> result latency of one trivial call (median of --repeat),
  - wall time for --tasks trivial calls spawned at once and then collected,
and the ratios between them: how much of a call is process start-up, and what
the simulated round trip costs.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(latency_ms: float, repeat: int, tasks: int, concurrency: int) -> dict:
    import json

    state = Path(tempfile.mkdtemp(prefix="modal-emu-bench-"))
    port = free_port()
    env = {
        **os.environ,
        "MODAL_SERVER_URL": f"http://127.0.0.1:{port}",
        "MODAL_TOKEN_ID": "bench",
        "MODAL_TOKEN_SECRET": "bench",
        "MODAL_CONFIG_PATH": str(state / "modal.toml"),
    }
    serve = [
        sys.executable,
        "-m",
        "modal_emu",
        "serve",
        "--detach",
        "--state-dir",
        str(state),
        "--port",
        str(port),
        "--latency",
        str(latency_ms),
        "--concurrency",
        str(concurrency),
    ]
    subprocess.run(serve, check=True, capture_output=True)
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
        subprocess.run([sys.executable, "-m", "modal_emu", "stop", "--state-dir", str(state)], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", type=float, default=50.0, help="simulated round trip for the second run (ms)")
    args = parser.parse_args()

    rows = {}
    for latency in (0.0, args.latency):
        rows[latency] = measure(latency, args.repeat, args.tasks, args.concurrency)

    print(
        f"modal-emu benchmark: {args.tasks} trivial tasks, concurrency {args.concurrency}, "
        f"{os.cpu_count()} CPUs, median of {args.repeat} single calls"
    )
    print(
        f"{'latency/RPC':>12} {'spawn->result':>14} {'spawn x' + str(args.tasks):>12} "
        f"{str(args.tasks) + ' tasks':>12} {'per task':>10} {'1 call / per task':>18}"
    )
    for latency, r in rows.items():
        per_task = r["total"] / args.tasks
        print(
            f"{latency:>10.0f}ms {r['single']:>13.3f}s {r['spawn']:>11.3f}s {r['total']:>11.2f}s "
            f"{per_task:>9.3f}s {r['single'] / per_task:>17.1f}x"
        )
    base, slow = rows[0.0], rows[args.latency]
    print(
        f"ratio, {args.latency:.0f} ms vs 0 ms: spawn->result {slow['single'] / base['single']:.2f}x, "
        f"spawning {args.tasks} {slow['spawn'] / base['spawn']:.2f}x, all {args.tasks} tasks "
        f"{slow['total'] / base['total']:.2f}x"
    )
    print(
        f"overlap: {args.tasks} tasks take {base['total'] / base['single']:.1f}x one call "
        f"(serial would be {args.tasks}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
