"""What a call prints reaches `modal app logs`, and `modal run --detach` does not wait for logs it will not get."""

from __future__ import annotations

import secrets
import subprocess
import sys

import modal
from conftest import APP_FILE


def test_the_last_line_of_every_call_reaches_the_logs(emulator):
    token = f"tok{secrets.token_hex(4)}"
    shout = modal.Function.from_name("emu-test", "shout")
    calls = [shout.spawn(token, i) for i in range(200)]
    for call in calls:
        call.get(timeout=120)
    shown = emulator.modal("app", "logs", "emu-test", "--search", token, "--tail", "1000").stdout
    missing = [i for i in range(200) if f"{token} line {i}\n" not in shown]
    assert not missing, f"{len(missing)} of 200 last lines never reached the logs, e.g. {missing[:5]}"


def test_a_detached_run_ends_without_waiting_for_final_logs(emulator):
    out = subprocess.run(
        [sys.executable, "-m", "modal", "run", "--detach", APP_FILE.name],
        cwd=APP_FILE.parent,
        env=emulator.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "RESULT {'x': 'cli'" in out.stdout
    # printed by the client after waiting 10 s for an end of logs that never came
    assert "Timed out waiting for final app logs" not in out.stdout + out.stderr


def test_tail_shows_the_last_lines_the_calls_printed_and_nothing_else(emulator):
    """`modal app logs APP --tail N` is the newest N lines, and the emulator adds none of its own to
    a call that ran normally (a line per input of its own would push the user's lines out)."""
    token = f"tail{secrets.token_hex(4)}"
    shout = modal.Function.from_name("emu-test", "shout")
    for call in [shout.spawn("older", i) for i in range(10)]:  # lines the tail must leave out
        call.get(timeout=120)
    for call in [shout.spawn(token, i) for i in range(30)]:
        call.get(timeout=120)
    shown = emulator.modal("app", "logs", "emu-test", "--tail", "30").stdout.splitlines()
    assert sorted(shown) == sorted(f"{token} line {i}" for i in range(30)), shown


def test_a_line_longer_than_a_pipe_read_reaches_the_logs_and_so_do_later_ones(emulator):
    """A progress bar (carriage returns, no newline) or a big JSON dump is one long line: it is logged, and
    the container's later lines too (the line reader used to give up past 64 KiB, and read nothing more)."""
    token = f"long{secrets.token_hex(4)}"
    shout = modal.Function.from_name("emu-test", "shout")
    call = shout.spawn(token + "x" * 300_000, 0)
    call.get(timeout=60)
    after = shout.spawn(token, 1)  # the same container goes on logging
    after.get(timeout=60)
    log = (emulator.state_dir / "logs" / f"{call.object_id}.log").read_text()
    assert f"{token}{'x' * 300_000} line 0\n" in log, log[-200:]
    assert f"{token} line 1\n" in (emulator.state_dir / "logs" / f"{after.object_id}.log").read_text()
