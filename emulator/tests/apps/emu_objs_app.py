"""The app the Dict/Queue/class tests deploy with the real `modal deploy`."""

import asyncio
import os
import time

import modal

app = modal.App("emu-objs")


@app.function()
def put_later(queue_name: str, value, delay: float):
    time.sleep(delay)
    modal.Queue.from_name(queue_name).put(value)
    return value


@app.function()
def dict_roundtrip(dict_name: str, key: str):
    """Reads a key written by the caller and writes one back: the same Dict on both sides."""
    d = modal.Dict.from_name(dict_name)
    d[f"{key}-seen"] = d[key] * 2
    return d.len()


@app.cls()
class Counter:
    start: int = modal.parameter()
    label: str = modal.parameter(default="c")

    @modal.enter()
    def setup(self):
        self.entered = getattr(self, "entered", 0) + 1
        self.calls = 0
        self.pid = os.getpid()

    @modal.method()
    def bump(self, by: int = 1):
        self.calls += 1
        return {
            "label": self.label,
            "value": self.start + by,
            "entered": self.entered,
            "calls": self.calls,
            "pid": self.pid,
        }

    @modal.method()
    async def peek(self):
        await asyncio.sleep(0)
        return {"start": self.start, "calls": self.calls}

    @modal.method()
    def slow(self, seconds: float):
        time.sleep(seconds)
        return f"{self.label}:{self.start}"


@app.local_entrypoint()
def main(start: int = 5):
    """`modal run emu_objs_app.py`: the class through an ephemeral app."""
    counter = Counter(start=start, label="run")
    print("RESULT", counter.bump.remote(1)["value"], counter.bump.spawn(2).get()["calls"])
