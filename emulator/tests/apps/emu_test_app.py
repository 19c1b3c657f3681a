"""The app the emulator tests deploy with the real `modal deploy`."""

import os
import time
from pathlib import Path

import modal

VERSION = "v1"

app = modal.App("emu-test", image=modal.Image.debian_slim().env({"EMU_TEST_ENV": "from the image"}))
volume = modal.Volume.from_name("emu-test-vol", create_if_missing=True)


class JobError(Exception):
    """A custom exception type: the caller must get this type back."""


def vol_dir() -> Path:
    return Path("/vol")  # as on Modal: the emulator mounts the Volume there


@app.function(timeout=30)
def echo(x):
    return {"x": x, "version": VERSION, "env": os.environ.get("EMU_TEST_ENV")}


@app.function()
def boom(message):
    raise JobError(message)


@app.function(timeout=2)
def sleepy(seconds):
    time.sleep(seconds)
    return VERSION


@app.function(
    retries=modal.Retries(max_retries=2, initial_delay=0.05, backoff_coefficient=1.0),
    volumes={"/vol": volume},
)
def flaky(key, fail_times):
    counter = vol_dir() / f"{key}.count"
    count = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(count))
    if count <= fail_times:
        raise RuntimeError(f"attempt {count} fails")
    return count


@app.function(volumes={"/vol": volume})
def write_file(name, text):
    (vol_dir() / name).write_text(text)
    volume.commit()
    return name


@app.function(volumes={"/vol": volume})
def read_file(name):
    return (vol_dir() / name).read_text()


@app.function(timeout=60)
def marker_after(path, seconds):
    print(f"started, will write {path}", flush=True)
    time.sleep(seconds)
    Path(path).write_text("done")
    return path


@app.function(retries=modal.Retries(max_retries=1, initial_delay=0.05, backoff_coefficient=1.0))
def preemptible(path, ignore_interrupt):
    """Appends one line per attempt to ``path``; the first attempt waits to be preempted: it notes the
    interrupt (SIGINT, a KeyboardInterrupt) and stops, or (``ignore_interrupt``) ignores it and must be killed."""
    import signal

    log = Path(path)
    lines = log.read_text().splitlines() if log.exists() else []
    attempt = sum(line.startswith("attempt") for line in lines) + 1
    with log.open("a") as f:
        f.write(f"attempt {attempt}\n")
    if attempt > 1:
        return attempt
    if ignore_interrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _wait_to_be_preempted(log, "saved on SIGINT")


@app.function()
def with_stubborn_child(path):
    """The first attempt starts a child that ignores SIGINT and SIGTERM and shares the output pipes, then
    waits, and exits at once on SIGINT (so the worker is gone, its child not); the restart returns at once."""
    import signal
    import subprocess
    import sys

    pids = Path(path)
    if pids.exists():
        return "second attempt"
    code = (
        "import signal, sys, time; [signal.signal(s, signal.SIG_IGN) for s in (2, 15)];"
        "open(sys.argv[1], 'a').write('child ready\\n'); time.sleep(120)"
    )
    child = subprocess.Popen([sys.executable, "-c", code, path])
    signal.signal(signal.SIGINT, lambda *_: os._exit(3))
    with pids.open("a") as f:
        f.write(f"{child.pid}\n")
    time.sleep(120)
    return "first attempt"


@app.function()
def size_of(data):
    return len(data)


@app.function()
def big(n_bytes):
    return b"y" * n_bytes


@app.function()
def whoami():
    return os.getpid()


@app.local_entrypoint()
def main(path: str = "", seconds: float = 0.0):
    """`modal run emu_test_app.py --path P --seconds S`: an ephemeral run of marker_after."""
    print("RESULT", marker_after.remote(path, seconds) if path else echo.remote("cli"))


@app.function()
def square(x):
    return x * x


@app.function()
def add(a, b):
    return a + b


@app.function()
def touch(path):
    Path(path).write_text("touched")


@app.function()
def shout(token, i):
    print(f"{token} line {i}")  # the last thing the call does: it must reach the logs


@app.function()
def count_up(n):
    for i in range(n):
        yield i * 10


@app.function()
def slow_count(n, pause):
    print(f"slow_count of {n}", flush=True)
    for i in range(n):
        yield i
        time.sleep(pause)


@app.function()
def slow_saver(path):
    """Saves for a second when interrupted (a second interrupt would cut that short); the restart reports it."""
    log = Path(path)
    if log.exists():
        return f"restarted; saved={'saved' in log.read_text()}"
    log.write_text("start\n")
    _wait_to_be_preempted(log, "saved", saving_s=1.5)


def _wait_to_be_preempted(log: Path, saved: str, saving_s: float = 0.0) -> None:
    """Wait for a preemption's interrupt; then note it in ``log`` (after ``saving_s`` of saving) and re-raise."""
    print("waiting to be preempted", flush=True)
    try:
        while True:
            time.sleep(0.02)
    except KeyboardInterrupt:
        if saving_s:
            _note(log, "saving")
            time.sleep(saving_s)
        _note(log, saved)
        raise


def _note(log: Path, line: str) -> None:
    with log.open("a") as f:
        f.write(f"{line}\n")


@app.function(volumes={"/emu-test-mount": volume})
def write_at_mount(name, text):
    """Writes through the Volume's mount path as Modal code does, not through MODAL_EMU_VOLUMES."""
    with open(f"/emu-test-mount/{name}", "w") as f:
        f.write(text)
    volume.commit()
    return os.listdir("/emu-test-mount")


@app.function(gpu="H100")
def on_gpu(x):
    return x


@app.function()
def tokens():
    return {k: os.environ.get(k) for k in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET")}
