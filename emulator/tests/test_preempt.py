"""`python -m modal_emu preempt`: running inputs are taken back as Modal preempts a GPU container
(SIGTERM, a grace period, SIGKILL) and retried; past their retries they are lost. Real client only."""

from __future__ import annotations

import subprocess
import sys

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
