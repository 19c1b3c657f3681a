"""The emulator through the real modal client and CLI: deploy, look up, spawn, poll, fail, cancel."""

from __future__ import annotations

import json
import time

import modal
import modal.environments
import modal.exception
import pytest
from emu_helpers import wait_for
from emu_test_app import JobError


def fn(name: str) -> modal.Function:
    return modal.Function.from_name("emu-test", name)


def test_deploy_is_listed_with_its_tag_in_history(emulator):
    history = json.loads(emulator.modal("app", "history", "emu-test", "--json").stdout)
    assert history[0]["tag"] == "t1"
    assert history[0]["version"] == "v1"
    listed = json.loads(emulator.modal("app", "list", "--json").stdout)
    assert any(a["description"] == "emu-test" and a["state"] == "deployed" for a in listed), listed


def test_spawn_returns_at_once_and_get_returns_the_value(emulator):
    call = fn("echo").spawn(21)
    assert call.object_id.startswith("fc-")
    result = modal.FunctionCall.from_id(call.object_id).get(timeout=30)
    assert result == {"x": 21, "version": "v1", "env": "from the image"}


def test_remote_call(emulator):
    assert fn("echo").remote("hi")["x"] == "hi"


def test_poll_with_timeout_zero_while_pending_then_done(emulator):
    call = fn("sleepy").spawn(1.0)
    with pytest.raises(TimeoutError):
        modal.FunctionCall.from_id(call.object_id).get(timeout=0)
    assert modal.FunctionCall.from_id(call.object_id).get(timeout=30) == "v1"
    assert modal.FunctionCall.from_id(call.object_id).get(timeout=0) == "v1"  # results stay available


def test_remote_exception_keeps_its_type(emulator):
    call = fn("boom").spawn("bad input 42")
    with pytest.raises(JobError, match="bad input 42"):
        call.get(timeout=30)


def test_over_the_function_timeout(emulator):
    call = fn("sleepy").spawn(30)  # the function's timeout is 2 s
    with pytest.raises(modal.exception.FunctionTimeoutError, match="timed out"):
        call.get(timeout=30)


def test_retries_follow_the_policy(emulator):
    assert fn("flaky").spawn("two-failures", 2).get(timeout=30) == 3  # third attempt succeeds
    always = fn("flaky").spawn("always", 99)
    with pytest.raises(RuntimeError, match="attempt 3 fails"):
        always.get(timeout=30)  # 1 + 2 retries, then the error
    log = (emulator.state_dir / "logs" / f"{always.object_id}.log").read_text()
    assert "attempt 2 failed (" in log and "; retrying" in log
    assert "attempt 3 failed (" in log and log.rstrip().endswith("no retries left"), log[-500:]


def test_cancel_stops_the_running_process(emulator, tmp_path):
    marker = tmp_path / "marker"
    call = fn("marker_after").spawn(str(marker), 2.0)
    log = emulator.state_dir / "logs" / f"{call.object_id}.log"
    assert wait_for(lambda: log.exists() and "started" in log.read_text())
    call.cancel()
    time.sleep(2.5)
    assert not marker.exists(), "the cancelled process kept running"
    with pytest.raises(modal.exception.RemoteError, match="cancelled"):
        call.get(timeout=5)


def test_volume_persists_between_calls(emulator):
    fn("write_file").spawn("note.txt", "kept").get(timeout=30)
    assert fn("read_file").spawn("note.txt").get(timeout=30) == "kept"
    assert (emulator.state_dir / "volumes" / "emu-test-vol" / "note.txt").read_text() == "kept"


def test_blobs_for_large_inputs_and_outputs(emulator):
    payload = b"x" * 20_000  # spawn sends inputs over 8 KiB as a blob
    assert fn("size_of").spawn(payload).get(timeout=30) == 20_000
    out = fn("big").spawn(3 * 1024 * 1024).get(timeout=30)  # outputs over 2 MiB come back as a blob
    assert len(out) == 3 * 1024 * 1024 and out[:1] == b"y"


def test_spawn_map_variants(emulator):
    fn("echo").spawn_map([1, 2, 3])  # fire and forget: returns None, creates one call per input
    fc = fn("echo").experimental_spawn_map([10, 20, 30])
    assert isinstance(fc, modal.FunctionCall)
    assert [r["x"] for r in fc.iter()] == [10, 20, 30]
    assert modal.FunctionCall.from_id(fc.object_id).get(timeout=30, index=1)["x"] == 20


def test_unknown_app_or_function(emulator):
    with pytest.raises(modal.exception.NotFoundError):
        modal.Function.from_name("no-such-app", "echo").hydrate()
    with pytest.raises(modal.exception.NotFoundError):
        modal.Function.from_name("emu-test", "no_such_function").hydrate()


def test_unimplemented_rpc_is_named(emulator):
    with pytest.raises(modal.exception.UnimplementedError, match="does not implement EnvironmentList"):
        modal.environments.list_environments()
    assert "UNIMPLEMENTED RPC EnvironmentList" in emulator.server_log()


def test_logs_of_a_call_are_kept(emulator, tmp_path):
    call = fn("marker_after").spawn(str(tmp_path / "m"), 0.1)
    call.get(timeout=30)
    log = (emulator.state_dir / "logs" / f"{call.object_id}.log").read_text()
    assert f"started, will write {tmp_path / 'm'}" in log
    other = fn("echo").spawn("quiet")
    other.get(timeout=30)
    shown = emulator.modal("app", "logs", "emu-test", "--function-call", call.object_id).stdout
    assert f"started, will write {tmp_path / 'm'}" in shown
    assert other.object_id not in shown and "quiet" not in shown


def test_containers_stay_warm_between_inputs(emulator):
    """Like Modal, a container runs inputs one after another instead of starting per input."""
    first = fn("whoami").spawn().get(timeout=30)
    second = fn("whoami").spawn().get(timeout=30)
    assert first == second
    # ...while a crashed or timed-out container is replaced by a fresh one
    with pytest.raises(modal.exception.FunctionTimeoutError):
        fn("sleepy").spawn(30).get(timeout=30)
    assert fn("sleepy").spawn(0).get(timeout=30) == "v1"


def test_secrets_are_created_once_and_looked_up_by_name(emulator):
    emulator.modal("secret", "create", "emu-secret", "TOKEN=abc")
    again = emulator.modal("secret", "create", "emu-secret", "TOKEN=abc", check=False)
    assert again.returncode != 0 and "already exists" in (again.stdout + again.stderr)
    modal.Secret.from_name("emu-secret").hydrate()
    with pytest.raises(modal.exception.NotFoundError, match="modal secret create missing"):
        modal.Secret.from_name("missing").hydrate()
