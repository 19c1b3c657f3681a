"""Starting an emulator from other programs (tests, benchmarks, scripts)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def client_env(url: str, state_dir: Path) -> dict[str, str]:
    """What the modal client and CLI need to talk to the emulator (placeholder tokens, isolated config)."""
    return {
        "MODAL_SERVER_URL": url,
        "MODAL_TOKEN_ID": "local-emulator",
        "MODAL_TOKEN_SECRET": "local-emulator",
        "MODAL_CONFIG_PATH": str(Path(state_dir).resolve() / "modal.toml"),
    }


def start_detached(state_dir: Path, port: int = 0, *options: str) -> str:
    """``python -m modal_emu serve --detach``; returns the server URL once it answers."""
    cmd = [sys.executable, "-m", "modal_emu", "serve", "--detach", "--state-dir", str(state_dir)]
    proc = subprocess.run([*cmd, "--port", str(port), *options], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the local Modal emulator did not start in {state_dir}: {proc.stderr.strip()}")
    return (Path(state_dir) / "url").read_text().strip()


def stop(state_dir: Path) -> None:
    subprocess.run([sys.executable, "-m", "modal_emu", "stop", "--state-dir", str(state_dir)], capture_output=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalEmulator:
    """An emulator serving ``state_dir`` on 127.0.0.1:``port`` in the background, with the
    options of ``python -m modal_emu serve``; ``start()`` returns once it answers."""

    def __init__(self, state_dir: Path, port: int = 0, *options: str):
        self.state_dir = Path(state_dir)
        self.port = port or free_port()
        self.options = options
        self.url = f"http://127.0.0.1:{self.port}"
        self.cwd: Path | None = None  # where ``modal(...)`` runs the CLI unless told otherwise

    @property
    def client_env(self) -> dict[str, str]:
        """The variables that point the modal client and CLI at this emulator."""
        return client_env(self.url, self.state_dir)

    def env(self) -> dict[str, str]:
        """The whole environment for a subprocess that uses modal: this one plus ``client_env``."""
        return {**os.environ, **self.client_env}

    def start(self) -> None:
        start_detached(self.state_dir, self.port, *self.options)

    def stop(self) -> None:
        stop(self.state_dir)

    def pid(self) -> int:
        return int((self.state_dir / "server.pid").read_text())

    def server_log(self) -> str:
        return (self.state_dir / "server.log").read_text(errors="replace")

    def python(self, script: str, timeout: float = 300) -> str:
        """Runs ``script`` in a fresh client process pointed at this emulator; returns its stdout."""
        proc = subprocess.run(
            [sys.executable, "-c", script], env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )
        if proc.returncode != 0:
            raise AssertionError(f"client script failed:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def modal(self, *args: str, check: bool = True, cwd: Path | None = None, timeout: float = 300):
        """Runs the real ``modal`` CLI against this emulator; raises with its output if it fails."""
        proc = subprocess.run(
            [sys.executable, "-m", "modal", *args],
            env=self.env(),
            cwd=cwd or self.cwd,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"modal {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def preempt(self, call_id: str | None = None, grace_s: float = 30.0) -> list[list[str]]:
        """Preempt the running inputs (of ``call_id``, or all), as ``python -m modal_emu preempt`` does:
        SIGINT, SIGKILL after ``grace_s``, then a restart. Returns the (call id, input) pairs preempted."""
        from .preempt import ask

        return ask(self.state_dir, self.pid(), call_id, grace_s)

    def deploy(self, path: str | os.PathLike, *args: str) -> subprocess.CompletedProcess:
        """``modal deploy`` of an app file (run from its directory, as a user would)."""
        path = Path(path).resolve()
        return self.modal("deploy", path.name, *args, cwd=path.parent)
