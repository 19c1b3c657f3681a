"""modal.Dict, modal.Queue and @app.cls through the real client, and the clear errors
for what the emulator leaves out."""

from __future__ import annotations

import os
import queue
import time

import modal
import modal.exception
import pytest

APP = "emu-objs"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def objs_app(emulator):
    emulator.modal("deploy", "emu_objs_app.py")
    return emulator


def test_named_dict(objs_app):
    d = modal.Dict.from_name("emu-dict", create_if_missing=True)
    d["a"] = 1
    d.update({"b": 2}, c=3)
    assert d.put("a", 100, skip_if_exists=True) is False and d["a"] == 1
    assert (d.len(), "b" in d, "zz" in d, d.get("zz", "default")) == (3, True, False, "default")
    assert sorted(d.keys()) == ["a", "b", "c"] and sorted(d.values()) == [1, 2, 3]
    assert sorted(d.items()) == [("a", 1), ("b", 2), ("c", 3)]
    # a deployed function sees the same Dict, by name
    assert modal.Function.from_name(APP, "dict_roundtrip").remote("emu-dict", "c") == 4
    assert d["c-seen"] == 6
    assert d.pop("b") == 2 and d.pop("b", None) is None
    with pytest.raises(KeyError):
        d["b"]
    assert "a" in objs_app.modal("dict", "items", "emu-dict").stdout
    d.clear()
    assert d.len() == 0
    modal.Dict.objects.delete("emu-dict")
    with pytest.raises(modal.exception.NotFoundError):
        modal.Dict.from_name("emu-dict").hydrate()


def test_ephemeral_dict(objs_app):
    with modal.Dict.ephemeral() as d:
        d[("tuple", 1)] = {"nested": [1, 2]}
        assert d[("tuple", 1)] == {"nested": [1, 2]}
        assert modal.Dict.from_id(d.object_id).len() == 1


def test_queue_fifo_partitions_and_iterate(objs_app):
    q = modal.Queue.from_name("emu-queue", create_if_missing=True)
    q.put(1)
    q.put_many([2, 3, 4])
    q.put("other", partition="p1")
    assert (q.len(), q.len(partition="p1"), q.len(total=True)) == (4, 1, 5)
    assert list(q.iterate()) == [1, 2, 3, 4]  # iterating does not remove
    assert q.get() == 1 and q.get_many(2) == [2, 3]
    assert q.get(block=False) == 4 and q.get(block=False) is None
    assert q.get_many(5, block=False) == []
    assert q.get(partition="p1") == "other"
    q.put_many(["x", "y"])
    q.clear()
    assert q.len(total=True) == 0


def test_queue_blocking_get_wakes_on_a_put_from_a_call_and_times_out_empty(objs_app):
    with modal.Queue.ephemeral() as q:
        q.put("warm")  # the client hydrates lazily: do it before timing anything
        q.get()
        server_cpu = cpu_seconds(objs_app.pid())
        started = time.monotonic()
        with pytest.raises(queue.Empty):
            q.get(timeout=1.0)
        assert time.monotonic() - started >= 0.9
        assert cpu_seconds(objs_app.pid()) - server_cpu < 0.5, "a blocked get must not keep the server busy"
    named = modal.Queue.from_name("emu-queue-wake", create_if_missing=True)
    assert named.len() == 0
    call = modal.Function.from_name(APP, "put_later").spawn("emu-queue-wake", "hello", 0.5)
    assert named.get(timeout=60) == "hello"  # blocked until the call put it
    assert call.get(timeout=30) == "hello"


def test_class_enter_runs_once_per_container_with_parameters(objs_app):
    Counter = modal.Cls.from_name(APP, "Counter")
    ten = Counter(start=10)
    first, second = ten.bump.remote(2), ten.bump.remote(3)
    assert (first["value"], second["value"], first["label"]) == (12, 13, "c")
    assert (second["entered"], second["calls"], second["pid"]) == (1, 2, first["pid"])
    # other parameter values: other containers, entered once each
    other = Counter(start=1, label="x").bump.remote()
    assert (other["value"], other["label"], other["entered"], other["calls"]) == (2, "x", 1, 1)
    assert other["pid"] != first["pid"]
    # spawned, then polled by id
    call = ten.slow.spawn(1.0)
    with pytest.raises(TimeoutError):
        modal.FunctionCall.from_id(call.object_id).get(timeout=0)
    assert modal.FunctionCall.from_id(call.object_id).get(timeout=30) == "c:10"
    assert ten.bump.remote()["calls"] == 3  # the same warm container, still entered once
    assert ten.peek.remote() == {"start": 10, "calls": 3}  # an async method, on the same instance


def test_class_through_modal_run(objs_app):
    out = objs_app.modal("run", "emu_objs_app.py", "--start", "5").stdout
    assert "RESULT 6 2" in out


def test_left_out_features_fail_clearly(objs_app):
    deploy = objs_app.modal("deploy", "emu_web_app.py", check=False)
    assert deploy.returncode != 0
    assert "does not support web endpoints" in deploy.stdout + deploy.stderr
    assert "'hello'" in deploy.stdout + deploy.stderr
    app = modal.App.lookup("emu-sandbox", create_if_missing=True)
    with pytest.raises(modal.exception.UnimplementedError, match=r"Sandboxes \(modal.Sandbox\)"):
        modal.Sandbox.create("echo", "hi", app=app)
