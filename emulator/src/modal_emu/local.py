"""Starting an emulator from other programs (tests, benchmarks, scripts)."""

from __future__ import annotations

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
    subprocess.run([*cmd, "--port", str(port), *options], check=True, capture_output=True)
    return (Path(state_dir) / "url").read_text().strip()


def stop(state_dir: Path) -> None:
    subprocess.run([sys.executable, "-m", "modal_emu", "stop", "--state-dir", str(state_dir)], capture_output=True)
