"""The test workload: installed over a rendered project's ``<package>/workload.py`` by
``Project.install_test_workload`` (tests/project.py), which keeps the template's own workload beside it
as ``example_workload.py``. Same interface (``Params``, ``run``); the work itself is the example's.

What it adds for the end-to-end tests:

- every execution records ``<task id>__<call id>`` under ``<output_dir>/started/``: the ground truth
  of what ran, to compare with what the ledger says was spawned;
- ``hold``: a file; the job waits until it exists (``Project.release``), so that a test decides when a
  job ends instead of guessing how long it takes;
- ``raise_connection_error``: the job's own ``ConnectionError`` (its download failed), which must be
  its outcome, not taken for the API being unreachable.

A test that plays a user editing their code changes ``EDITED`` (``Project.edit``): the result then
carries those keys.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from . import example_workload as example

EDITED: dict[str, Any] = {}
HOLD_LIMIT_S = 600  # a job whose file never comes fails instead of running until the emulator stops


class Params(example.Params):
    hold: str | None = None
    raise_connection_error: bool = False


def run(task: dict[str, Any], output_dir: Path, **kwargs: Any) -> dict[str, Any]:
    started = output_dir / "started"
    started.mkdir(parents=True, exist_ok=True)
    (started / f"{task['id']}__{os.environ.get('MODAL_EMU_FUNCTION_CALL_ID')}").touch()
    if task.get("hold"):
        give_up = time.monotonic() + HOLD_LIMIT_S
        while not Path(task["hold"]).exists():
            if time.monotonic() > give_up:
                raise RuntimeError(f"task {task['id']}: {task['hold']} never appeared")
            time.sleep(0.05)
    if task.get("raise_connection_error"):
        raise ConnectionError("the job's own download failed")
    result = example.run(task, output_dir, **kwargs)
    return {**EDITED, **result} if EDITED else result
