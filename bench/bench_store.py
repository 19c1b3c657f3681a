"""Does a spawn get slower, and the server bigger, as calls pile up in the state dir?

    uv run python bench/bench_store.py [--small 1000] [--large 10000] [--spawns 200]

For each size, side by side in one run: a state dir holding that many finished
calls (one real call, cloned through the store) and an emulator (--latency 0)
serving it; rounds of --spawns sequential spawns alternate between the two. Printed
per size: the time per spawn and the server's CPU time per spawn (median round),
and the server's RSS at the end. Then the ratios large/small (the goal: time at most 1.2x, memory
flat). Last, --burst spawns from one client, 32 at a time, at --latency 50: the
bound is spawns x round trip / 32; when the CPUs are the limit, the CPU times say so.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from modal_emu import local
from modal_emu.store import Store, new_id

HERE = Path(__file__).resolve().parent

SPAWN_CLIENT = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    import modal
    spawns, concurrent, server_pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

    def server_cpu():  # user + system seconds of the emulator process
        fields = open(f"/proc/{server_pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    noop = modal.Function.from_name("bench-trivial", "noop")
    noop.hydrate()
    noop.spawn(-1).get(timeout=60)  # a warm container and connection
    cpu0, client0 = server_cpu(), time.process_time()
    if concurrent == 1:
        t0 = time.perf_counter()
        calls = [noop.spawn(i) for i in range(spawns)]
        spawned = time.perf_counter() - t0
        assert [c.get(timeout=600) for c in calls] == list(range(spawns)), "wrong results"
    else:
        async def burst():
            gate = asyncio.Semaphore(concurrent)
            async def one(i):
                async with gate:
                    return await noop.spawn.aio(i)
            t0 = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(spawns)))
            return time.perf_counter() - t0
        spawned = asyncio.run(burst())
    cpu = {"server_cpu": server_cpu() - cpu0, "client_cpu": time.process_time() - client0}
    print(json.dumps({"spawned": spawned, **cpu}))
    """
)


def server_pid(state: Path) -> str:
    return (state / "server.pid").read_text().strip()


def rss_mb(state: Path) -> float:
    for line in Path(f"/proc/{server_pid(state)}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def modal_cli(env: dict, *args: str) -> str:
    cmd = [sys.executable, "-m", "modal", *args] if args[0] == "deploy" else [sys.executable, "-c", *args]
    return subprocess.run(cmd, cwd=HERE, env=env, check=True, capture_output=True, text=True).stdout


def start(state: Path, *options: str) -> dict:
    return {**os.environ, **local.client_env(local.start_detached(state, 0, *options), state)}


def seed(state: Path, calls: int) -> None:
    """Deploy, make one real call, then clone its row until the store holds ``calls`` calls."""
    env = start(state)
    try:
        modal_cli(env, "deploy", "trivial_app.py")
        modal_cli(env, SPAWN_CLIENT, "1", "1", server_pid(state))
    finally:
        local.stop(state)
    store = Store(state)
    template = json.loads(json.dumps(next(iter(store["calls"].values()))))
    for _ in range(calls - len(store["calls"])):
        call_id = new_id("fc")
        store["calls"][call_id] = {**template, "id": call_id}
    store.save()


def measure(sizes: list[int], spawns: int, rounds: int) -> dict[int, dict]:
    """Both state dirs served at once; rounds of spawns alternate between them, so a busy
    machine slows both alike. Per size: the median round, and the server's RSS at the end."""
    states = {calls: Path(tempfile.mkdtemp(prefix=f"modal-emu-bench-{calls}-")) for calls in sizes}
    for calls, state in states.items():
        seed(state, calls)
    envs = {calls: start(state, "--latency", "0") for calls, state in states.items()}
    try:
        runs: dict[int, list[dict]] = {calls: [] for calls in sizes}
        for _ in range(rounds):
            for calls, state in states.items():
                out = modal_cli(envs[calls], SPAWN_CLIENT, str(spawns), "1", server_pid(state))
                runs[calls].append(json.loads(out))
        return {
            calls: {
                "per_spawn": statistics.median(r["spawned"] for r in runs[calls]) / spawns,
                "cpu": statistics.median(r["server_cpu"] for r in runs[calls]) / spawns,
                "rss": rss_mb(states[calls]),
            }
            for calls in sizes
        }
    finally:
        for state in states.values():
            local.stop(state)


def burst(spawns: int, latency_ms: float, concurrent: int) -> dict:
    state = Path(tempfile.mkdtemp(prefix="modal-emu-bench-burst-"))
    env = start(state, "--latency", str(latency_ms))
    try:
        modal_cli(env, "deploy", "trivial_app.py")
        return json.loads(modal_cli(env, SPAWN_CLIENT, str(spawns), str(concurrent), server_pid(state)))
    finally:
        local.stop(state)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=1000, help="calls already stored in the first state dir")
    parser.add_argument("--large", type=int, default=10000, help="calls already stored in the second state dir")
    parser.add_argument("--spawns", type=int, default=100, help="sequential spawns timed in each round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per size, alternating between the sizes")
    parser.add_argument("--burst", type=int, default=1000, help="spawns of the concurrent run")
    parser.add_argument("--latency", type=float, default=50.0, help="simulated round trip of the concurrent run (ms)")
    parser.add_argument("--concurrent", type=int, default=32, help="spawns in flight at once in the concurrent run")
    args = parser.parse_args()

    measured = measure([args.small, args.large], args.spawns, args.rounds)
    small, large = measured[args.small], measured[args.large]
    print(
        f"modal-emu store benchmark: {args.rounds} rounds of {args.spawns} sequential spawns at --latency 0 "
        f"per size (median round), {os.cpu_count()} CPUs"
    )
    print("server CPU = user+system time of the emulator process per spawn, running the noop included")
    print(f"{'calls stored':>12} {'per spawn':>10} {'server CPU':>11} {'server RSS':>11}")
    for calls, r in ((args.small, small), (args.large, large)):
        print(f"{calls:>12} {r['per_spawn'] * 1000:>8.1f}ms {r['cpu'] * 1000:>9.1f}ms {r['rss']:>9.0f}MB")
    print(
        f"{args.large} vs {args.small} stored: time per spawn {large['per_spawn'] / small['per_spawn']:.2f}x "
        f"(goal <= 1.2x), server CPU per spawn {large['cpu'] / small['cpu']:.2f}x, "
        f"server RSS {large['rss'] / small['rss']:.2f}x"
    )
    r = burst(args.burst, args.latency, args.concurrent)
    bound = args.burst * args.latency / 1000 / args.concurrent
    print(
        f"{args.burst} spawns, {args.concurrent} at a time, --latency {args.latency:.0f}: {r['spawned']:.2f}s "
        f"(bound {args.burst} x {args.latency:.0f}ms / {args.concurrent} = {bound:.2f}s; "
        f"{r['spawned'] / bound:.2f}x the bound); CPU: server {r['server_cpu']:.2f}s, client {r['client_cpu']:.2f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
