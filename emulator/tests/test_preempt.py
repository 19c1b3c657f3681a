"""`python -m modal_emu preempt`: running inputs are taken back as Modal preempts a GPU container
(SIGTERM, a grace period, SIGKILL) and retried; past their retries they are lost. Real client only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import modal
import modal.exception
import pytest
from emu_helpers import wait_for


def started(emulator, call_id: str) -> bool:
    log = emulator.state_dir / "logs" / f"{call_id}.log"
    text = log.read_text() if log.exists() else ""
    return "waiting to be preempted" in text or "started, will write" in text


def call_log(emulator, call_id: str) -> str:
    return (emulator.state_dir / "logs" / f"{call_id}.log").read_text()


@pytest.mark.parametrize("ignore_sigterm", [False, True], ids=["saves-on-sigterm", "ignores-sigterm"])
def test_a_preempted_input_gets_sigterm_and_is_retried(emulator, tmp_path, ignore_sigterm):
    trace = tmp_path / "attempts.txt"
    call = modal.Function.from_name("emu-test", "preemptible").spawn(str(trace), ignore_sigterm)
    assert wait_for(lambda: trace.exists() and started(emulator, call.object_id), timeout=60)
    preempted = emulator.preempt(call.object_id, grace_s=0.5)
    assert [c for c, _ in preempted] == [call.object_id]
    assert modal.FunctionCall.from_id(call.object_id).get(timeout=60) == 2, "the retry ran and returned"
    expected = ["attempt 1", "attempt 2"] if ignore_sigterm else ["attempt 1", "saved on SIGTERM", "attempt 2"]
    assert trace.read_text().splitlines() == expected
    log = call_log(emulator, call.object_id)
    assert "SIGTERM now, SIGKILL in 0.5 s" in log and "preempted: the container was taken back" in log


def test_preempted_past_its_retries_the_input_is_lost(emulator, tmp_path):
    call = modal.Function.from_name("emu-test", "marker_after").spawn(str(tmp_path / "never"), 120)  # no retries
    assert wait_for(lambda: started(emulator, call.object_id), timeout=60)
    emulator.preempt(call.object_id, grace_s=0.5)
    with pytest.raises(modal.exception.InternalFailure, match="preempted: the container was taken back"):
        modal.FunctionCall.from_id(call.object_id).get(timeout=60)
    assert not (tmp_path / "never").exists()


def test_the_command_says_when_nothing_runs(emulator):
    proc = subprocess.run(
        [sys.executable, "-m", "modal_emu", "preempt", "--state-dir", str(emulator.state_dir), "--call", "fc-none"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: no input of fc-none is running: nothing to preempt"


def test_the_command_needs_a_running_emulator(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "modal_emu", "preempt", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "no emulator running" in proc.stderr


def test_a_request_left_by_a_killed_client_preempts_nothing_later(emulator, tmp_path):
    call = modal.Function.from_name("emu-test", "marker_after").spawn(str(tmp_path / "later"), 120)
    assert wait_for(lambda: started(emulator, call.object_id), timeout=60)
    folder = emulator.state_dir / "preempt"
    folder.mkdir(exist_ok=True)
    stale = folder / "0123.request"  # "preempt everything", from a client killed a minute ago
    stale.write_text(json.dumps({"call_id": None, "grace_s": 0}))
    os.utime(stale, (time.time() - 60, time.time() - 60))
    junk = folder / "junk.request"
    junk.write_text("not json")
    try:
        assert emulator.preempt("fc-none", grace_s=0) == [], "the server answers its client, and only it"
        assert not stale.exists(), "a stale request is dropped"
        time.sleep(0.5)
        assert "preempted" not in call_log(emulator, call.object_id)
    finally:
        junk.unlink(missing_ok=True)
        call.cancel()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grace", "-1"], "--grace -1: give the seconds between SIGTERM and SIGKILL, 0 or more"),
        (["--grace", "nan"], "--grace nan: give the seconds"),
        (["--call", "train-3"], "--call train-3: not a function call id (those start with fc-)"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(tmp_path, args, message):
    cmd = [sys.executable, "-m", "modal_emu", "preempt", "--state-dir", str(tmp_path), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr.splitlines()[-1], proc.stderr
    assert "modal_emu preempt" in proc.stderr, "the preempt usage, not the top-level one"
