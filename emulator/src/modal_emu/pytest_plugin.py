"""pytest plugin of modal-emu (registered through the ``pytest11`` entry point).

It only defines fixtures: nothing starts, and nothing in the environment changes,
unless a test asks for ``modal_emulator``::

    def test_square(modal_emulator):
        modal_emulator.deploy("my_app.py")
        assert modal.Function.from_name("my-app", "square").remote(3) == 9

``modal_emulator`` (session scope) starts one emulator for the session in a
temporary state dir on a free 127.0.0.1 port, points the modal client of the test
process at it (MODAL_SERVER_URL, placeholder tokens, MODAL_CONFIG_PATH) until the
session ends, then restores the environment and stops the emulator. It is a
``modal_emu.local.LocalEmulator``: ``url``, ``state_dir``, ``client_env``, ``env()``
(for subprocesses), ``deploy(path, *args)``, ``modal(*args)`` (the real CLI) and
``server_log()``. Override ``modal_emulator_args`` to pass ``serve`` options.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .local import LocalEmulator


@pytest.fixture(scope="session")
def modal_emulator_args() -> list[str]:
    """Options of ``python -m modal_emu serve`` for the session's emulator, e.g. ``["--latency", "50"]``."""
    return []


@pytest.fixture(scope="session")
def modal_emulator(tmp_path_factory: pytest.TempPathFactory, modal_emulator_args: list[str]) -> Iterator[LocalEmulator]:
    """One local Modal emulator for the test session, with the client's environment pointing at it."""
    from .local import LocalEmulator

    emulator = LocalEmulator(tmp_path_factory.mktemp("modal-emu"), 0, *modal_emulator_args)
    emulator.start()
    environment = pytest.MonkeyPatch()
    try:
        for key, value in emulator.client_env.items():
            environment.setenv(key, value)
        yield emulator
    finally:
        environment.undo()
        emulator.stop()
