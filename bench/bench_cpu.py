"""The emulator's CPU per input, beside the spawner's, in one run.

    uv run python bench/bench_cpu.py [--tasks 300] [--latency 50] [--concurrency 8]

One emulator at --latency MS per RPC serves the trivial app (bench/trivial_app.py). One client
process first spawns and collects 4 x --concurrency calls, so that every container has started (a
container's start-up, Python importing modal and the app, is paid once per container, not per
input; the warm-up's CPU is printed on its own line). Then it spawns --tasks calls 32 at a time (as
the generated project's `make spawn` does), and collects every result, 32 at a time. The emulator's
CPU (the server process and every container it started, read from /proc) and the client's own CPU
are measured over both phases and printed per input, with the spawn phase on its own. The emulator's
figure is what one input costs it from the spawn RPC to the result read back: gRPC framing, store
writes, the worker's round trip, logs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modal_emu import local  # noqa: E402

from bench.cpu import tree_cpu  # noqa: E402

HERE = Path(__file__).resolve().parent

# The client reports its own CPU; the emulator's is read around each phase by the parent, between
# the lines the client prints and the go-ahead it waits for on stdin.
CLIENT = """
import asyncio, json, sys, time
import modal

async def main(tasks, warmup):
    noop = modal.Function.from_name("bench-trivial", "noop")
    await noop.hydrate.aio()
    gate = asyncio.Semaphore(32)

    async def bounded(coro):
        async with gate:
            return await coro

    warm = await asyncio.gather(*(bounded(noop.spawn.aio(i)) for i in range(warmup)))
    await asyncio.gather(*(bounded(c.get.aio(timeout=600)) for c in warm))
    print("ready", flush=True); sys.stdin.readline()
    cpu0, t0 = time.process_time(), time.perf_counter()
    calls = await asyncio.gather(*(bounded(noop.spawn.aio(i)) for i in range(tasks)))
    spawn = {"cpu": time.process_time() - cpu0, "wall": time.perf_counter() - t0}
    print("spawned", flush=True); sys.stdin.readline()
    cpu0, t0 = time.process_time(), time.perf_counter()
    results = await asyncio.gather(*(bounded(c.get.aio(timeout=600)) for c in calls))
    collect = {"cpu": time.process_time() - cpu0, "wall": time.perf_counter() - t0}
    assert results == list(range(tasks)), "wrong results"
    print(json.dumps({"spawn": spawn, "collect": collect}), flush=True)

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--latency", type=float, default=50.0, help="simulated round trip of every RPC, in ms")
    parser.add_argument("--concurrency", type=int, default=8, help="the emulator's inputs running at once")
    args = parser.parse_args()
    if args.tasks < 1:
        parser.error("--tasks must be at least 1")

    state = Path(tempfile.mkdtemp(prefix="modal-emu-bench-cpu-"))
    options = ["--latency", str(args.latency), "--concurrency", str(args.concurrency)]
    env = {**os.environ, **local.client_env(local.start_detached(state, 0, *options), state)}
    try:
        server = int((state / "server.pid").read_text())
        deploy = [sys.executable, "-m", "modal", "deploy", "trivial_app.py"]
        subprocess.run(deploy, cwd=HERE, env=env, check=True, capture_output=True)
        client = subprocess.Popen(
            [sys.executable, "-c", CLIENT, str(args.tasks), str(4 * args.concurrency)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert client.stdin is not None and client.stdout is not None
        emu = [0.0, 0.0, 0.0]
        started = tree_cpu(server)
        for i, expected in enumerate(("ready", "spawned")):
            if (line := client.stdout.readline().strip()) != expected:
                raise RuntimeError(f"the client said {line!r}, not {expected!r}")
            emu[i] = tree_cpu(server)
            client.stdin.write("go\n")
            client.stdin.flush()
        measured = json.loads(client.stdout.readline())
        emu[2] = tree_cpu(server)
        if client.wait(timeout=60) != 0:
            raise RuntimeError("the client failed")
    finally:
        local.stop(state)

    n = args.tasks
    spawn, collect = measured["spawn"], measured["collect"]
    emu_spawn, emu_total = emu[1] - emu[0], emu[2] - emu[0]
    client_total = spawn["cpu"] + collect["cpu"]
    print(
        f"{n} trivial inputs, RTT {args.latency:g} ms, spawned and collected 32 at a time, "
        f"emulator concurrency {args.concurrency}, {os.cpu_count()} cores"
    )
    print(f"  warm-up ({4 * args.concurrency} inputs, containers starting): emulator CPU {emu[0] - started:.2f} s")
    print(f"  spawn phase    {spawn['wall']:6.2f} s wall")
    print(f"  collect phase  {collect['wall']:6.2f} s wall")
    print(
        f"  CPU per input, spawn to result: emulator and its containers {emu_total / n * 1000:.2f} ms, "
        f"spawner {client_total / n * 1000:.2f} ms"
    )
    print(
        f"  of which during the spawn phase: emulator {emu_spawn / n * 1000:.2f} ms, "
        f"spawner {spawn['cpu'] / n * 1000:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
