"""The app the Dict/Queue tests deploy with the real `modal deploy`."""

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
