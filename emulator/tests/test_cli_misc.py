"""CLI commands and client messages that go through small RPCs: app stop, secret list, lookups, GPU notes."""

from __future__ import annotations

import json

import modal
import modal.exception
import pytest

STOP_APP = """
import modal

app = modal.App("emu-stop")


@app.function()
def echo(x):
    return x
"""


def test_app_stop_without_yes_counts_the_containers(emulator, tmp_path):
    (tmp_path / "emu_stop_app.py").write_text(STOP_APP)
    emulator.modal("deploy", "emu_stop_app.py", cwd=tmp_path)
    modal.Function.from_name("emu-stop", "echo").remote("warm")  # leaves a warm container
    out = emulator.modal("app", "stop", "emu-stop", check=False)  # no --yes, no terminal: it asks, then gives up
    text = out.stdout + out.stderr
    assert "Are you sure you want to stop App 'emu-stop'" in text, text
    assert "terminate 1 running container." in text, text
    assert "UNIMPLEMENTED" not in text
    emulator.modal("app", "stop", "emu-stop", "--yes")
    apps = json.loads(emulator.modal("app", "list", "--json").stdout)
    assert any(a["description"] == "emu-stop" and a["state"] == "stopped" for a in apps)


def test_secret_list(emulator):
    emulator.modal("secret", "create", "emu-listed", "A=1", "B=2")
    listed = json.loads(emulator.modal("secret", "list", "--json").stdout)
    assert "emu-listed" in [s["name"] for s in listed]


def test_lookup_errors_say_it_once(emulator):
    with pytest.raises(modal.exception.NotFoundError) as app_missing:
        modal.Function.from_name("no-such-app", "echo").hydrate()
    with pytest.raises(modal.exception.NotFoundError) as fn_missing:
        modal.Function.from_name("emu-test", "no_such_function").hydrate()
    for message in (str(app_missing.value), str(fn_missing.value)):
        assert message.count("Lookup failed") == 1, message
        assert ".." not in message, message
    assert "App not deployed" in str(app_missing.value)
    assert "no Function of that name" in str(fn_missing.value)
    out = emulator.modal("app", "logs", "emu-tset", check=False)
    text = " ".join((out.stdout + out.stderr).replace("│", " ").split())
    assert "No App with name 'emu-tset' found in the 'main' environment" in text, text
    assert "emu-test" in text.split("emu-tset' found", 1)[1], text  # suggested: "Did you mean ...?"


def test_a_gpu_function_says_what_it_asked_for_and_what_the_machine_has(emulator):
    from modal_emu.notices import machine_gpus

    calls = [modal.Function.from_name("emu-test", "on_gpu").spawn(i) for i in range(3)]
    results = [c.get(timeout=60) for c in calls]
    assert [x for x, _ in results] == [0, 1, 2]
    logs = [(emulator.state_dir / "logs" / f"{c.object_id}.log").read_text() for c in calls]
    said = [log for log in logs if "asks for GPU H100" in log]
    assert said, logs
    assert f"this machine has {machine_gpus()}" in said[0]
    containers = {pid for _, pid in results}
    assert len(said) == len(containers)  # once per container, not once per call
