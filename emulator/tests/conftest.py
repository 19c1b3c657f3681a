"""One emulator for the whole session (the package's own ``modal_emulator`` fixture), with the
test app deployed to it by the real `modal deploy` CLI. Every client call in these tests goes
through the unmodified modal package, and any RPC it makes that the emulator does not answer
fails the session."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from modal_emu.local import LocalEmulator, free_port  # noqa: F401  (free_port: used by the tests)

HERE = Path(__file__).resolve().parent
APP_FILE = HERE / "apps" / "emu_test_app.py"
# RPCs a test calls on purpose to check the UNIMPLEMENTED answer (test_flows: EnvironmentList,
# test_objects: AuthTokenGet, the first RPC of Sandbox.create); any other one in the log fails the session.
DELIBERATELY_UNIMPLEMENTED = {"EnvironmentList", "AuthTokenGet"}
sys.path.insert(0, str(APP_FILE.parent))  # so that remote exceptions unpickle to their real type


class Emulator(LocalEmulator):
    """An emulator of its own, for the tests that restart or reconfigure one."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cwd = APP_FILE.parent


@pytest.fixture(scope="session")
def modal_emulator_args() -> list[str]:
    return ["--concurrency", "16"]


@pytest.fixture(scope="session")
def emulator(modal_emulator):
    modal_emulator.cwd = APP_FILE.parent  # the test apps' folder, as a user deploying them would be in
    modal_emulator.deploy(APP_FILE, "--tag", "t1")
    yield modal_emulator
    unanswered = set(re.findall(r"UNIMPLEMENTED RPC (\w+)", modal_emulator.server_log())) - DELIBERATELY_UNIMPLEMENTED
    assert not unanswered, f"the client made RPCs the emulator does not answer: {sorted(unanswered)}"
