"""`python -m modal_emu preempt`: running inputs are taken back as Modal preempts a container (SIGINT, a
grace period, SIGKILL) and restarted on the same input, without using up a retry. Real client only."""

from __future__ import annotations

import json
import os
import signal
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


@pytest.mark.parametrize("ignore_interrupt", [False, True], ids=["saves-on-sigint", "ignores-sigint"])
def test_a_preempted_input_is_interrupted_then_restarted(emulator, tmp_path, ignore_interrupt):
    trace = tmp_path / "attempts.txt"
    call = modal.Function.from_name("emu-test", "preemptible").spawn(str(trace), ignore_interrupt)
    assert wait_for(lambda: trace.exists() and started(emulator, call.object_id), timeout=60)
    preempted = emulator.preempt(call.object_id, grace_s=0.5)
    assert [c for c, _ in preempted] == [call.object_id]
    assert modal.FunctionCall.from_id(call.object_id).get(timeout=60) == 2, "the restart ran and returned"
    expected = ["attempt 1", "attempt 2"] if ignore_interrupt else ["attempt 1", "saved on SIGINT", "attempt 2"]
    assert trace.read_text().splitlines() == expected
    log = call_log(emulator, call.object_id)
    assert "SIGINT now, SIGKILL in 0.5 s" in log and "; restarting on the same input" in log


def test_a_restart_uses_up_no_retry(emulator, tmp_path):
    """Modal restarts a preempted input whatever its retries: a function with none still completes."""
    marker = tmp_path / "done"
    call = modal.Function.from_name("emu-test", "marker_after").spawn(str(marker), 2)  # retries=0
    assert wait_for(lambda: started(emulator, call.object_id), timeout=60)
    for starts in (2, 3):  # twice: more preemptions than the function has retries
        assert emulator.preempt(call.object_id, grace_s=0.5)
        assert wait_for(lambda n=starts: call_log(emulator, call.object_id).count("started, will write") == n, 60)
    assert modal.FunctionCall.from_id(call.object_id).get(timeout=60) == str(marker)
    assert marker.read_text() == "done"


def test_a_second_preempt_leaves_an_input_in_its_grace_alone(emulator, tmp_path):
    """Running the command twice must not interrupt the save the first one set off, nor shorten its grace."""
    trace = tmp_path / "saver.txt"
    call = modal.Function.from_name("emu-test", "slow_saver").spawn(str(trace))
    assert wait_for(lambda: started(emulator, call.object_id), timeout=60)
    assert emulator.preempt(call.object_id, grace_s=10)
    assert wait_for(lambda: "saving" in trace.read_text(), timeout=10)
    assert emulator.preempt(call.object_id, grace_s=0) == [], "an input in its grace is not preempted again"
    assert modal.FunctionCall.from_id(call.object_id).get(timeout=60) == "restarted; saved=True"


def test_a_generator_preempted_after_yielding_fails_instead_of_splicing_two_attempts(emulator):
    """Its caller has the first items already: a restart from item 0 would hand it a splice of two attempts."""
    received = []
    with pytest.raises(modal.exception.InternalFailure, match="after the generator yielded items"):
        for item in modal.Function.from_name("emu-test", "slow_count").remote_gen(47, 0.2):
            received.append(item)
            if item == 2:
                logs = (emulator.state_dir / "logs").glob("fc-*.log")
                (call_id,) = [p.stem for p in logs if "slow_count of 47" in p.read_text()]
                assert emulator.preempt(call_id, grace_s=0.5)
    assert received == list(range(len(received))) and 3 <= len(received) < 47, received


def test_children_of_a_preempted_container_do_not_outlive_the_grace(emulator, tmp_path):
    """A child that ignores the interrupt is killed with its container: it must neither keep the attempt
    from ending (it holds the output pipes) nor run on beside the restart."""
    pids = tmp_path / "pids"
    call = modal.Function.from_name("emu-test", "with_stubborn_child").spawn(str(pids))
    assert wait_for(lambda: pids.exists() and "child ready" in pids.read_text(), timeout=60)
    child = int(next(line for line in pids.read_text().split("\n") if line.isdigit()))
    emulator.preempt(call.object_id, grace_s=0.5)
    assert wait_for(lambda: not _alive(child), timeout=10), "the child outlived its container's grace"
    assert modal.FunctionCall.from_id(call.object_id).get(timeout=60) == "second attempt"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = f"/proc/{pid}/stat"
    return not (os.path.exists(stat) and open(stat).read().rsplit(")", 1)[-1].split()[0] == "Z")


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
        (["--grace", "-1"], "--grace -1: give the seconds between SIGINT and SIGKILL, 0 or more"),
        (["--grace", "nan"], "--grace nan: give the seconds"),
        (["--call", "train-3"], "--call train-3: not a function call id (those start with fc-)"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(tmp_path, args, message):
    cmd = [sys.executable, "-m", "modal_emu", "preempt", "--state-dir", str(tmp_path), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr.splitlines()[-1], proc.stderr
    assert "modal_emu preempt" in proc.stderr, "the preempt usage, not the top-level one"


def test_a_server_pid_left_behind_never_signals_another_process(tmp_path):
    """After a kill -9 the pid in server.pid may belong to anything: preempt (and stop) leave it alone."""
    other = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "server.pid").write_text(str(other.pid))
        proc = subprocess.run(
            [sys.executable, "-m", "modal_emu", "preempt", "--state-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 1 and "no emulator running" in proc.stderr, proc.stderr
        time.sleep(0.2)
        assert other.poll() is None, "the unrelated process was signalled"
    finally:
        other.kill()
        other.wait()


def test_a_preempt_at_the_first_instant_of_a_server_does_not_kill_it(tmp_path):
    """server.pid appears as the server starts; a preempt sent at once must find its handler."""
    for n in range(3):
        state = tmp_path / f"s{n}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "modal_emu", "serve", "--state-dir", str(state)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert wait_for(lambda s=state: (s / "server.pid").exists(), timeout=30, interval=0.001)
            os.kill(proc.pid, signal.SIGUSR1)
            time.sleep(0.5)
            assert proc.poll() is None, f"the server died of SIGUSR1 (exit {proc.returncode})"
        finally:
            proc.terminate()
            proc.wait(timeout=30)
