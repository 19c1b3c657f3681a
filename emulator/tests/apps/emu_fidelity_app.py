"""The app of test_fidelity: a running function is part of its app (it calls the others), gets
hydrated objects as arguments and its own ids, and a class's lifecycle hooks run when Modal runs them."""

import json
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


@app.function(secrets=[modal.Secret.from_local_environ(["FID_ONLY_AT_DEPLOY"])])
def ids() -> dict:
    """Where it runs. The Secret holds a variable of the deploying shell: from_local_environ, evaluated
    again when any container of this app imports this module, must give an empty Secret there, not fail
    (the containers of the other functions lack the variable)."""
    return {
        "call": modal.current_function_call_id(),
        "input": modal.current_input_id(),
        "task": os.environ.get("MODAL_TASK_ID"),
        "local": modal.is_local(),
        "deploy_env": os.environ.get("FID_ONLY_AT_DEPLOY"),
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
        print(f"exit hook of {self.log} ran")  # in the logs of the container's last input


@app.function()
@modal.batched(max_batch_size=4, wait_ms=100)
def doubled(xs: list[int], ys: list[int]) -> list[int]:
    if not isinstance(xs, list) or not isinstance(ys, list):
        raise TypeError(f"a batched function gets lists, not {type(xs).__name__}")
    return [x * 2 + y for x, y in zip(xs, ys, strict=True)]


@app.cls()
class Configurable:
    """What ``with_options`` gives a class: each method reports it."""

    log: str = modal.parameter(default="")

    @modal.method()
    def env(self, *names: str) -> dict:
        volumes = sorted(json.loads(os.environ.get("MODAL_EMU_VOLUMES", "{}")))
        return {"env": {name: os.environ.get(name) for name in names}, "volumes": volumes}

    @modal.method()
    def flaky(self, failures: int) -> int:
        return self._flaky(self.log, failures)

    @staticmethod
    def _flaky(log: str, failures: int) -> int:
        """Fails its first ``failures`` attempts (counted in the file ``log``), then returns the attempt number."""
        with open(log, "a") as f:
            f.write("attempt\n")
        attempt = len(Path(log).read_text().split())
        if attempt <= failures:
            raise RuntimeError(f"attempt {attempt} fails on purpose")
        return attempt


@app.function(max_containers=1)
def one_at_a_time(log: str, hold_s: float) -> bool:
    """Notes its start and end in ``log``; holds until another input starts or ``hold_s`` passes.
    True if another input ran at the same time."""
    with open(log, "a") as f:
        f.write(f"start {modal.current_input_id()}\n")
    deadline = time.monotonic() + hold_s
    overlapped = False
    while time.monotonic() < deadline and not overlapped:
        lines = Path(log).read_text().split("\n")
        overlapped = sum(line.startswith("start") for line in lines) > sum(line.startswith("end") for line in lines) + 1
        time.sleep(0.05)
    with open(log, "a") as f:
        f.write(f"end {modal.current_input_id()}\n")
    return overlapped


@app.function(name="renamed_job")
def job_with_another_python_name() -> str:
    return "renamed"


@app.function(single_use_containers=True)
def pid() -> int:
    return os.getpid()


@app.function(single_use_containers=True)
def leaves_at_exit(path: str) -> str:
    """Registers an atexit handler and leaves a buffered file open: both must reach the disk when the
    container ends (a normal interpreter exit, as on Modal)."""
    import atexit

    atexit.register(lambda: open(path, "w").write("atexit ran\n"))
    _left_open.append(open(path + ".buffered", "w"))  # noqa: SIM115 - left open on purpose
    _left_open[-1].write("buffered\n")
    return "registered"


_left_open: list = []


@app.function(retries=0)
def interrupts_itself() -> str:
    """Raises KeyboardInterrupt, as a preemption would: in Modal's container it stops the container;
    it is never the input's result (which would raise KeyboardInterrupt in the caller)."""
    raise KeyboardInterrupt


@app.function()
def flaky(log: str, failures: int) -> int:
    """Fails its first ``failures`` attempts (counted in the file ``log``), then returns the attempt number."""
    return Configurable._flaky(log, failures)


@app.cls(startup_timeout=2)
class NeverStarts:
    @modal.enter()
    def stuck(self):
        while True:  # a start-up that hangs (a model download stuck, say)
            time.sleep(1)

    @modal.method()
    def run(self) -> str:
        return "never"


@app.cls()
class BatchedMethod:
    @modal.batched(max_batch_size=4, wait_ms=100)
    def tripled(self, xs: list[int]) -> list[int]:
        if not isinstance(xs, list):
            raise TypeError(f"a batched method gets lists, not {type(xs).__name__}")
        return [x * 3 for x in xs]
