"""`make cost` (issue 17): our estimate beside the billing report of the emulator, started with rates on its
command line, through the generated project's make targets and the real modal client. The App is this
test's alone, so everything Modal billed it is in this ledger, and our upper bound is at least that."""

from __future__ import annotations

import json

import pytest

from tests.project import Project

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("own_ledger")]


@pytest.fixture(scope="module")
def project(projects) -> Project:
    proj = projects.new("billing", test_workload=True)
    with proj.deployed():
        yield proj


def test_make_cost_sets_our_estimate_beside_the_emulators_billing(project: Project, tmp_path):
    """Offline (an emulator without billing) only our estimate, at the dated fallback; with rates on the
    emulator's command line, Modal's live rates, its billing report of the same runs, and the difference."""
    project.make("spawn", f"TASKS={project.tasks_file('cost.jsonl', ['c-1', 'c-2'])}")
    project.make("wait", "ARGS=--interval 0.5 --timeout 150", timeout=200)

    offline = json.loads(project.make("cost", "ARGS=--json").stdout)
    assert offline["estimate_usd"] > 0 and offline["billed_usd"] is None and offline["difference_usd"] is None
    assert "dated fallback table" in offline["rates"] and "no billing rates" in offline["not_compared"]
    text = project.make("cost")
    assert "our estimate $" in text.stdout and "dated fallback table" in text.stdout
    assert "Modal billed" not in text.stdout
    assert "only our estimate" in text.stderr, text.stderr

    fallback = float(  # the rate of the offline figures
        project.python(f"from {project.package.name} import cost; print(cost.rate().usd_per_s)")
    )
    rates = tmp_path / "billing-rates.json"
    gpu = project.python(f"from {project.package.name} import rates, settings; print(rates.LIVE_KEYS[settings.GPU])")
    rates.write_text(json.dumps({gpu.strip(): 0.01}))
    project.down()
    project.start_emulator("--billing-rates", str(rates))  # the same state: its runs are billed now
    live = json.loads(project.make("cost", "ARGS=--json").stdout)
    assert live["rates"].startswith("rates: live rates of ") and live["not_compared"] is None, live
    assert live["billed_usd"] > 0, "the emulator billed the two runs"
    # Ours is an upper bound (spawn to end as polled), Modal's the runs alone, both at the live rate.
    assert live["estimate_usd"] >= live["billed_usd"]
    assert live["difference_usd"] == pytest.approx(live["estimate_usd"] - live["billed_usd"], abs=1e-6)
    ratio = 0.01 / fallback  # the same run times, at the live rate: exact but for rounding to 6 decimals
    assert live["estimate_usd"] == pytest.approx(offline["estimate_usd"] * ratio, abs=0.5e-6 * ratio + 1e-6)
    text = project.make("cost")
    assert "Modal billed $" in text.stdout and "difference $" in text.stdout and "live rates of" in text.stdout
