"""Sweeps through the generated project's own `make spawn`, with the real modal client against the
local emulator: a grid file becomes one job per combination with ids made from the values, a re-run
spawns nothing, a mistyped parameter stops everything before the first spawn, and a batch whose
worst-case cost is above the threshold is refused when there is no terminal to confirm it on."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from tests.flow import gpu_types
from tests.project import ROOT, Project

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("own_ledger")]

GRID = """\
name: pi
grid:
  n: [10, 100, 1000]
  seconds: [0, 0.1]
"""
GRID_IDS = [f"pi_n-{n}_seconds-{s}" for n in (10, 100, 1000) for s in ("0", "0.1")]


@pytest.fixture(scope="module")
def project(projects) -> Project:
    proj = projects.new("sweeps")
    with proj.deployed():
        yield proj


def spawn(project: Project, tasks: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`LOCAL=1 make spawn` as a script or CI runs it: stdin is not a terminal."""
    return project.make("spawn", f"TASKS={tasks}", f"ARGS={' '.join(args)}", env=env, check=False)


def ledger_params(project: Project) -> list[tuple[str, dict]]:
    return [(task, json.loads(params)) for task, params in project.ledger("task_id", "params")]


def test_a_grid_is_costed_then_spawned_once_per_combination(project: Project):
    (project.path / "sweep.yaml").write_text(GRID)

    refused = spawn(project, "sweep.yaml", JOB_COST_CONFIRM_USD="1")
    assert refused.returncode != 0
    assert "worst case $14.39: 6 task(s) x 3 attempt(s) x 1 h timeout on 1 x L4" in refused.stderr, refused.stderr
    assert "above COST_CONFIRM_USD" in refused.stderr and "nothing was spawned" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert ledger_params(project) == [], "a refused batch spawns nothing"

    spawned = spawn(project, "sweep.yaml", "--yes", "--json", JOB_COST_CONFIRM_USD="1")
    assert spawned.returncode == 0, spawned.stderr
    assert sorted(c["task_id"] for c in json.loads(spawned.stdout)) == sorted(GRID_IDS)
    recorded = dict(ledger_params(project))["pi_n-100_seconds-0.1"]
    assert {k: recorded[k] for k in ("n", "seconds")} == {"n": 100, "seconds": 0.1}  # + the workload's defaults

    again = spawn(project, "sweep.yaml")
    assert again.returncode == 0, again.stderr
    assert "nothing to spawn" in again.stderr
    assert sorted(task for task, _ in ledger_params(project)) == sorted(GRID_IDS), "a re-run spawns nothing"


def test_a_mistyped_parameter_spawns_nothing(project: Project):
    (project.path / "typo.jsonl").write_text('{"id": "ok", "n": 10}\n# a comment\n{"id": "bad", "n": "ten"}\n')
    (project.path / "typo.yaml").write_text(GRID.replace("n: [10, 100, 1000]", "nn: [10, 100, 1000]"))
    for name, message in (
        ("typo.jsonl", 'typo.jsonl:3: n: Input should be a valid integer (got "ten")'),
        ("typo.yaml", "typo.yaml:3: nn: unknown parameter (the workload's Params has: budget_seconds, chunk, fail"),
    ):
        proc = spawn(project, name, "--yes")
        assert proc.returncode != 0
        assert message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) <= 2 and "Traceback" not in proc.stderr
    assert ledger_params(project) == [], "nothing is spawned when any task is wrong"


def test_the_rate_table_prices_exactly_the_gpus_the_template_offers():
    choices = yaml.safe_load((ROOT / "copier.yml").read_text())["gpu"]["choices"]
    assert "includes/names.jinja" in choices, "copier.yml reads the GPU list from its one place"
    namespace: dict = {}
    exec((ROOT / "template" / "{{package_name}}" / "rates.py").read_text(), namespace)
    assert sorted(namespace["GPU_USD_PER_S"]) == sorted(gpu_types()), "rates.py prices each GPU type once"
