"""A sweep through a generated project, against the emulator at --latency 50 ms, side by side.

    uv run python bench/bench_sweep.py [--tasks 1000] [--latency 50]

In one run, on one emulator:
1. the CLI's bare start-up (`python -m PACKAGE --help` in the project: Python, typer, modal);
2. a plain sequential ``.spawn()`` loop over N tasks (what a hand-written spawner does);
3. the project's ``make spawn`` of N other tasks (bulk, 32 at a time, ledger intent rows);
4. the first ``make status`` over the N pending calls, then a second one with nothing to poll.
It prints each figure with its lower bound (N x RTT / 32 + start-up) and the ratios, and the modal
client's own CPU time per spawn, which caps any speed-up over the loop on a given machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.cpu import tree_cpu  # noqa: E402
from tests.project import Project, clean_env, render  # noqa: E402

LOOP = """
import json, sys, time, modal
fn = modal.Function.from_name("modal-jobs", "run_job")
fn.hydrate()
t0, cpu0 = time.perf_counter(), time.process_time()
calls = [fn.spawn({"id": f"loop-{i}", "n": 10}) for i in range(int(sys.argv[1]))]
wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
for call in calls:  # not timed: the emulator is idle again before the next measurement
    call.get(timeout=600)
print(json.dumps({"loop": wall, "cpu_per_spawn": cpu / len(calls)}))
"""


def timed(project: Project, *args: str) -> float:
    t0 = time.perf_counter()
    project.make(*args, timeout=3600)
    return time.perf_counter() - t0


def cpu_during(project: Project, *args: str) -> tuple[float, float, float]:
    """Wall time of `make ARGS`, the CPU it used (the spawner/monitor), and the CPU the emulator and
    its containers used meanwhile: on one machine they share the cores."""
    server = int((project.path / ".modal-local" / "server.pid").read_text())
    own0, emu0 = os.times(), tree_cpu(server)
    wall = timed(project, *args)
    own1, emu1 = os.times(), tree_cpu(server)
    own = (own1.children_user + own1.children_system) - (own0.children_user + own0.children_system)
    return wall, own, emu1 - emu0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=50.0, help="simulated RTT of every RPC, in ms")
    args = parser.parse_args()
    n, rtt = args.tasks, args.latency / 1000

    workdir = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    project = Project(render(workdir / "proj"))
    project.make("setup", local=False)
    project.up("--latency", str(args.latency), "--concurrency", "8")
    try:
        project.make("deploy")
        python = str(project.path / ".venv" / "bin" / "python")
        env = {**clean_env(), **project.emulator_env()}

        t0 = time.perf_counter()
        subprocess.run(
            [python, "-m", "modal_jobs", "--help"], cwd=project.path, env=env, check=True, capture_output=True
        )
        startup = time.perf_counter() - t0

        loop = subprocess.run(
            [python, "-c", LOOP, str(n)], cwd=project.path, env=env, check=True, capture_output=True, text=True
        )
        measured = json.loads(loop.stdout)
        sequential, cpu_per_spawn = measured["loop"], measured["cpu_per_spawn"]

        (project.path / "bench.jsonl").write_text(
            "".join(json.dumps({"id": f"t{i}", "n": 10}) + "\n" for i in range(n))
        )
        spawn, spawn_cpu, spawn_emu = cpu_during(project, "spawn", "TASKS=bench.jsonl")
        first, first_cpu, first_emu = cpu_during(project, "status")
        time.sleep(5)
        project.make("wait", "ARGS=--interval 2", timeout=3600)
        second = timed(project, "status")
    finally:
        project.down()

    bound = n * rtt / 32 + startup
    print(f"{n} tasks, RTT {args.latency:g} ms, spawn/poll concurrency 32, machine: {os.cpu_count()} cores")
    print(f"  CLI start-up                 {startup:7.2f} s")
    print(f"  sequential .spawn() loop     {sequential:7.2f} s   (N x RTT alone: {n * rtt:.2f} s)")
    print(f"  make spawn                   {spawn:7.2f} s   bound {bound:.2f} s   ratio to bound {spawn / bound:.2f}")
    print(f"  first make status            {first:7.2f} s   bound {bound:.2f} s   ratio to bound {first / bound:.2f}")
    print(f"  second make status (0 polls) {second:7.2f} s   ratio to start-up {second / startup:.2f}")
    print(f"  speed-up of make spawn over the sequential loop: {sequential / spawn:.1f}x")
    cores = os.cpu_count() or 1
    for name, wall, own, emu in (
        ("make spawn", spawn, spawn_cpu, spawn_emu),
        ("first status", first, first_cpu, first_emu),
    ):
        print(
            f"  {name}: its own CPU {own:.2f} s, the emulator and its containers {emu:.2f} s meanwhile; "
            f"{(own + emu) / cores:.2f} s of {wall:.2f} s wall with all {cores} cores busy"
        )
    # The modal client's own work per spawn (building, signing and sending the request) is CPU in one
    # process, whatever the concurrency: with the start-up it sets a floor no spawner can beat.
    floor = startup + n * cpu_per_spawn
    print(
        f"  modal client CPU per spawn     {cpu_per_spawn * 1000:7.2f} ms  -> floor for {n} spawns in one process: "
        f"{floor:.2f} s, i.e. at most {sequential / floor:.1f}x over the loop on this machine"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
