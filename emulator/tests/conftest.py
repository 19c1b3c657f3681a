"""One emulator for the whole session, started with `python -m modal_emu serve --detach`,
and the test app deployed to it with the real `modal deploy` CLI. Every client call in
these tests goes through the unmodified modal package."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from modal_emu import local

HERE = Path(__file__).resolve().parent
APP_FILE = HERE / "apps" / "emu_test_app.py"
# RPCs a test calls on purpose to check the UNIMPLEMENTED answer (test_flows: EnvironmentList,
# test_objects: AuthTokenGet, the first RPC of Sandbox.create); any other one in the log fails the session.
DELIBERATELY_UNIMPLEMENTED = {"EnvironmentList", "AuthTokenGet"}
sys.path.insert(0, str(APP_FILE.parent))  # so that remote exceptions unpickle to their real type


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    def __init__(self, state_dir: Path, port: int, *options: str):
        self.state_dir, self.port, self.options = state_dir, port, options
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        assert local.start_detached(self.state_dir, self.port, *self.options) == self.url

    def pid(self) -> int:
        return int((self.state_dir / "server.pid").read_text())

    def stop(self) -> None:
        local.stop(self.state_dir)

    def env(self) -> dict[str, str]:
        return {**os.environ, **local.client_env(self.url, self.state_dir)}

    def modal(self, *args: str, check: bool = True, cwd: Path = HERE / "apps") -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "modal", *args],
            env=self.env(),
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"modal {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def python(self, script: str) -> str:
        """Runs ``script`` in a fresh client process pointed at this emulator; returns its stdout."""
        proc = subprocess.run(
            [sys.executable, "-c", script], env=self.env(), capture_output=True, text=True, timeout=120, check=False
        )
        if proc.returncode != 0:
            raise AssertionError(f"client script failed:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def server_log(self) -> str:
        return (self.state_dir / "server.log").read_text(errors="replace")


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    emu = Emulator(tmp_path_factory.mktemp("emu-state"), free_port(), "--concurrency", "16")
    emu.start()
    # The in-process modal client of the tests finds the emulator through the environment.
    saved = {
        k: os.environ.get(k) for k in ("MODAL_SERVER_URL", "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_CONFIG_PATH")
    }
    os.environ.update({k: v for k, v in emu.env().items() if k in saved})
    emu.modal("deploy", APP_FILE.name, "--tag", "t1")
    yield emu
    emu.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    unanswered = set(re.findall(r"UNIMPLEMENTED RPC (\w+)", emu.server_log())) - DELIBERATELY_UNIMPLEMENTED
    assert not unanswered, f"the client made RPCs the emulator does not answer: {sorted(unanswered)}"
