"""The app of test_fidelity: a running function is part of its app (it calls the others), gets
hydrated objects as arguments and its own ids, and a class's lifecycle hooks run when Modal runs them."""

import os
import time
from pathlib import Path

import modal

app = modal.App("emu-fidelity")


@app.function()
def square(x: int) -> int:
    return x * x


@app.cls()
class Keeper:
    label: str = modal.parameter(default="k")

    @modal.method()
    def name(self) -> str:
        return f"keeper-{self.label}"


@app.function()
def fan_out(n: int) -> dict:
    """A coordinator: calls the other functions and the class of its own app from inside."""
    return {
        "remote": square.remote(n),
        "spawn": square.spawn(n + 1).get(),
        "map": list(square.map(range(n))),
        "cls": Keeper(label="in").name.remote(),
    }


@app.function()
def use_objects(d: modal.Dict, q: modal.Queue, fn: modal.Function, vol: modal.Volume) -> dict:
    """Objects handed over as arguments: each one usable as it is."""
    d["from-inside"] = d["from-caller"] + 1
    q.put("queued-inside")
    return {"fn": fn.remote(7), "vol": sorted(entry.path for entry in vol.listdir("/"))}


@app.function()
def ids() -> dict:
    return {
        "call": modal.current_function_call_id(),
        "input": modal.current_input_id(),
        "task": os.environ.get("MODAL_TASK_ID"),
    }


@app.cls()
class Hooks:
    """Writes each lifecycle event, with its pid, to ``log`` (a file of the test's)."""

    log: str = modal.parameter()

    def _note(self, event: str) -> None:
        with open(self.log, "a") as f:
            f.write(f"{event} {os.getpid()}\n")

    @modal.enter()
    def up(self):
        self._note("enter")

    @modal.method()
    def work(self, x: int) -> int:
        self._note("work")
        return x + 1

    @modal.method()
    def wait_for(self, release: str) -> str:
        """Runs until ``release`` exists; a preemption's KeyboardInterrupt ends it early."""
        self._note("waiting")
        while not Path(release).exists():
            time.sleep(0.05)
        return "released"

    @modal.exit()
    async def down(self):
        self._note("exit")


@app.function()
@modal.batched(max_batch_size=4, wait_ms=100)
def doubled(xs: list[int], ys: list[int]) -> list[int]:
    if not isinstance(xs, list) or not isinstance(ys, list):
        raise TypeError(f"a batched function gets lists, not {type(xs).__name__}")
    return [x * 2 + y for x, y in zip(xs, ys, strict=True)]
