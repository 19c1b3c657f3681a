"""The billing RPCs through the real client: rates from ``serve --billing-rates``, a report from the
emulator's own run times at those rates, and PERMISSION_DENIED without rates."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import modal
import modal.exception
import pytest
from conftest import Emulator

BILLED_APP = """
import time

import modal

app = modal.App("emu-billed")


@app.function(gpu="H100")
def on_gpu(seconds):
    time.sleep(seconds)
    return seconds


@app.function()
def on_cpu(x):
    return x
"""

# One client process: the window around the calls bounds what the emulator can have measured.
REPORT = """
import json, time
from datetime import datetime, timedelta, timezone
import modal

began = time.time()
modal.Function.from_name("emu-billed", "on_gpu").remote(0.5)
modal.Function.from_name("emu-billed", "on_cpu").remote(1)
ended = time.time()
workspace = modal.Workspace.from_context()
start = datetime.fromtimestamp(began, timezone.utc)
end = (start + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)  # whole hours only
items = workspace.billing.report(start=start, end=end, resolution="h")
print(json.dumps({
    "window": ended - began,
    "rates": {k: str(v) for k, v in workspace.billing.rates().items()},
    "items": [{"description": i.description, "cost": str(i.cost),
               "by": {k: str(v) for k, v in i.cost_by_resource.items()}} for i in items],
}))
"""


def test_rates_and_report_from_run_times(tmp_path):
    rates = tmp_path / "rates.json"
    rates.write_text(json.dumps({"gpu.H100": 0.001, "gpu.A100": "0.0007"}))
    (tmp_path / "emu_billed.py").write_text(BILLED_APP)
    emu = Emulator(tmp_path / "state", 0, "--billing-rates", str(rates))
    emu.start()
    try:
        emu.deploy(tmp_path / "emu_billed.py")
        said = json.loads(emu.python(REPORT).strip().splitlines()[-1])
        cli = json.loads(emu.modal("billing", "rates", "--json").stdout)
    finally:
        emu.stop()
    assert said["rates"] == {"gpu.H100": "0.001", "gpu.A100": "0.0007"}
    assert cli == said["rates"]
    [item] = said["items"]  # one app, one hour: the cpu function has no rate, so it adds nothing
    assert item["description"] == "emu-billed"
    assert list(item["by"]) == ["gpu.H100"]
    cost = float(item["cost"])
    assert 0.5 * 0.001 <= cost <= said["window"] * 0.001  # it slept 0.5 s, inside the client's window


def test_without_rates_billing_is_denied(emulator):
    workspace = modal.Workspace.from_context()
    with pytest.raises(modal.exception.PermissionDeniedError, match="--billing-rates"):
        workspace.billing.rates()
    with pytest.raises(modal.exception.PermissionDeniedError, match="--billing-rates"):
        workspace.billing.report(start=datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize("content", ["{", "[]", '{"gpu.H100": -1}', '{"cpu": "a lot"}', '{"cpu": true}'])
def test_bad_rates_file_is_one_line_and_no_server(tmp_path, content):
    rates = tmp_path / "rates.json"
    rates.write_text(content)
    proc = subprocess.run(
        [sys.executable, "-m", "modal_emu", "serve", "--state-dir", str(tmp_path / "s"), "--billing-rates", str(rates)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: --billing-rates {rates}:"), line
    assert not (tmp_path / "s" / "url").exists()
