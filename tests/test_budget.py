"""A sweep's budget stops it by itself (issue 17), through the generated project's make targets, with
the real modal client against the local emulator.

The function may run two containers at once (max_containers=2), so a sweep of four tasks has two
running and two queued. Each job waits for a file (tests/workloads/workload.py ``hold``): the test
decides when a job ends, never how long it takes. The budget is set between the worst case of one
running task and that of two, so the line is crossed as soon as two run, whatever the machine's speed.
"""

from __future__ import annotations

import csv
import json

import pytest

from tests.project import Project, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("own_ledger")]

SWEEP = ["b-1", "b-2", "b-3", "b-4"]


@pytest.fixture(scope="module")
def project(projects) -> Project:
    proj = projects.new("budget", test_workload=True)
    proj.edit(
        "modal_app.py", "    timeout=settings.TIMEOUT_S,\n", "    timeout=settings.TIMEOUT_S,\n    max_containers=2,\n"
    )
    with proj.deployed():
        yield proj


def worst_case_of_one(project: Project) -> float:
    code = f"from {project.package.name} import cost; print(cost.worst_case(1).usd)"
    return float(project.python(code))


def sweep_started(project: Project) -> set[str]:
    return {task for task, _ in project.started() if task in SWEEP}


def rows(project: Project, status) -> dict[str, dict]:
    return {row["task_id"]: row for row in json.loads(status.stdout)}


def test_a_sweep_with_a_budget_stops_by_itself(project: Project):
    worst = worst_case_of_one(project)
    budget = {"JOB_BUDGET_USD": f"{1.5 * worst:.6f}"}  # one running job fits, two do not
    project.make("spawn", f"TASKS={project.tasks_file('sweep.jsonl', SWEEP, hold=project.gate('sweep'))}", env=budget)
    wait_until(lambda: len(sweep_started(project)) == 2, "two jobs of the sweep run (the other two are queued)")
    running = sweep_started(project)

    status = project.make("status", "ARGS=--json", env=budget)
    queued = set(SWEEP) - running
    said = [line for line in status.stderr.splitlines() if "over budget" in line]
    assert len(said) == 1 and "cancelled 2 queued job(s)" in said[0] and "JOB_BUDGET_USD" in said[0], status.stderr
    states = rows(project, status)
    for task in queued:
        assert states[task]["state"] == "cancelled", states[task]
        assert "over budget" in states[task]["error"] and "cancelled while queued" in states[task]["error"]
    assert {states[t]["state"] for t in running} == {"pending"}
    assert states[SWEEP[0]]["sweep"]["over_budget"] is True

    # The spawner starts nothing while the line is crossed, and says how to go past it.
    refused = project.make("spawn", f"TASKS={project.tasks_file('more.jsonl', ['b-5'])}", env=budget, check=False)
    assert refused.returncode != 0
    assert "over budget" in refused.stderr and "ARGS=--over-budget" in refused.stderr, refused.stderr
    assert "b-5" not in {task for task, _, _ in project.ledger()}

    project.release("sweep")
    done = project.make("wait", "ARGS=--interval 0.5 --timeout 150 --json", env=budget, check=False, timeout=200)
    assert done.returncode != 0, "wait fails: two tasks of the sweep were cancelled"
    final = rows(project, done)
    assert {t: final[t]["state"] for t in running} == dict.fromkeys(running, "succeeded"), "nothing finished is lost"
    assert {t: final[t]["state"] for t in queued} == dict.fromkeys(queued, "cancelled")
    assert sweep_started(project) == running, "no queued task started after the line was crossed"
    saved = project.make("results")
    assert all((project.results_dir() / f"{t}.json").exists() for t in running), saved.stdout

    # The per-task costs add up to the sweep's total, and every figure names its rates.
    total = final[SWEEP[0]]["sweep"]["total_usd"]
    assert total > 0
    assert abs(sum(final[t]["cost_usd"] for t in SWEEP) - total) < 0.01
    text = project.make("status", env=budget)
    assert "dated fallback table" in text.stdout and "no live rates fetched" in text.stdout, text.stdout
    watched = json.loads(project.make("watch", "ARGS=--json --interval 0.5", env=budget).stdout.splitlines()[-1])
    assert watched["cost"]["total_usd"] >= total and "fallback" in watched["cost"]["rates"]
    with open(project.results_dir() / "summary.csv", newline="") as f:
        summary = {row["task_id"]: row for row in csv.DictReader(f)}
    assert set(summary) == running
    assert all(float(row["cost_usd"]) > 0 and float(row["sweep_cost_usd"]) >= total for row in summary.values())


def test_retry_refuses_to_pass_the_budget_without_an_override(project: Project):
    project.release("sweep")  # a first test that failed midway left its jobs waiting: they end now
    project.make("spawn", f"TASKS={project.tasks_file('fail.jsonl', ['r-1'], raise_connection_error=True)}")
    project.make("wait", "ARGS=--interval 0.5 --timeout 150", check=False, timeout=200)
    assert {task: state for task, _, state in project.ledger()}["r-1"] == "failed"

    budget = {"JOB_BUDGET_USD": f"{0.5 * worst_case_of_one(project):.6f}"}  # a retry's worst case passes it
    refused = project.make("retry", env=budget, check=False)
    assert refused.returncode != 0
    assert "over budget" in refused.stderr and "make retry ARGS=--over-budget LOCAL=1" in refused.stderr, refused.stderr
    assert [t for t, _, _ in project.ledger()].count("r-1") == 1, "nothing was spawned"

    project.make("retry", "ARGS=--over-budget", env=budget)
    assert [t for t, _, _ in project.ledger()].count("r-1") == 2
