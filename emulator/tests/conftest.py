"""One emulator for the whole session (the package's own ``modal_emulator`` fixture), with the
test app deployed to it by the real `modal deploy` CLI. Every client call in these tests goes
through the unmodified modal package."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from modal_emu.local import LocalEmulator, free_port  # noqa: F401  (free_port: used by the tests)

HERE = Path(__file__).resolve().parent
APP_FILE = HERE / "apps" / "emu_test_app.py"
sys.path.insert(0, str(APP_FILE.parent))  # so that remote exceptions unpickle to their real type


class Emulator(LocalEmulator):
    """An emulator of its own, for the tests that restart or reconfigure one."""

    def modal(self, *args: str, cwd: Path = APP_FILE.parent, **kwargs):
        return super().modal(*args, cwd=cwd, **kwargs)


@pytest.fixture(scope="session")
def modal_emulator_args() -> list[str]:
    return ["--concurrency", "16"]


@pytest.fixture(scope="session")
def emulator(modal_emulator):
    modal_emulator.deploy(APP_FILE, "--tag", "t1")
    return modal_emulator
