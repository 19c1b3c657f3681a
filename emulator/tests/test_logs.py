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
