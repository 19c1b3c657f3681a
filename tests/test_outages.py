"""A spawned job is tracked until its result is saved, whatever happens after the spawn: the network
drops mid-poll, the emulator (Modal) dies and comes back, a result expires, a container is preempted,
a job is cancelled after it finished. Spawning itself under interruptions is tests/test_never_lose.py.

Through the generated project's own make targets, with the real modal client against the local
emulator. The project runs the test workload (tests/workloads/workload.py): a job given ``hold``
waits for a file, so a test releases it when the job must end, and never guesses how long it takes.
"""

from __future__ import annotations

import csv
import json
import time
from collections import Counter

import pytest

from tests.project import Project, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("own_ledger")]

EMULATOR = ("--latency", "20")


@pytest.fixture(scope="module")
def project(projects) -> Project:
    proj = projects.new("outages", test_workload=True)
    with proj.deployed(*EMULATOR):
        yield proj


def calls_of(project: Project, *tasks: str) -> list[str]:
    return [call for task, call, _ in project.ledger() if task in tasks]


def offline(project: Project) -> dict[str, str]:
    """A laptop that lost its network: the client points at an address where nothing answers."""
    return {
        "MODAL_SERVER_URL": "http://127.0.0.1:9",  # discard port: connection refused
        "MODAL_TOKEN_ID": "local-emulator",
        "MODAL_TOKEN_SECRET": "local-emulator",
        "MODAL_CONFIG_PATH": str(project.emulator_state / "modal.toml"),
        "JOB_API_TIMEOUT": "3",
    }


def test_a_lost_connection_never_ends_a_job(project: Project):
    project.make("spawn", f"TASKS={project.tasks_file('net.jsonl', ['net-ok-1', 'net-ok-2'])}")
    own_error = project.tasks_file("net2.jsonl", ["net-own-error"], raise_connection_error=True)
    project.make("spawn", f"TASKS={own_error}")
    # the jobs finish on the emulator; nobody has polled them yet
    project.wait_for_calls(calls_of(project, "net-ok-1", "net-ok-2", "net-own-error"))

    began = time.monotonic()
    status = project.make("status", "ARGS=--json", local=False, check=False, env=offline(project))
    took = time.monotonic() - began
    assert status.returncode != 0
    assert "could not be reached" in status.stderr and "Traceback" not in status.stderr
    assert took < 30, f"status must give up quickly when the API is unreachable, took {took:.0f} s"
    rows = {task: state for task, _, state in project.ledger()}
    assert {rows[t] for t in ("net-ok-1", "net-ok-2", "net-own-error")} == {"pending"}, rows

    cancel = project.make("cancel", local=False, check=False, env=offline(project))
    assert cancel.returncode != 0
    assert "Traceback" not in cancel.stderr + cancel.stdout
    assert len((cancel.stderr + cancel.stdout).strip().splitlines()) <= 3, cancel.stderr
    assert {state for _, _, state in project.ledger()} <= {"pending", "succeeded"}

    # Back online: the outcomes are collected, and a job's own ConnectionError is its outcome.
    status = project.make("status", "ARGS=--json")
    states = {c["task_id"]: c for c in json.loads(status.stdout)}
    assert states["net-ok-1"]["state"] == states["net-ok-2"]["state"] == "succeeded"
    project.make("results")  # results are saved by `make results` only, never by a poll
    assert (project.results_dir() / "net-ok-1.json").exists()
    assert states["net-own-error"]["state"] == "failed"
    assert "ConnectionError" in states["net-own-error"]["error"]


def test_a_sweep_survives_the_emulator_dying_and_retry_respawns_the_lost(project: Project):
    ids = [f"die-{i:02d}" for i in range(12)]
    project.make("spawn", f"TASKS={project.tasks_file('die.jsonl', ids, hold=project.gate('die'))}")
    # 8 run (the emulator's concurrency), 4 wait for a container; none ends before its file appears,
    # so once 8 have started, status must tell exactly that, from Modal's call graph
    wait_until(lambda: len([t for t, _ in project.started() if t.startswith("die-")]) >= 8, "8 jobs have started")
    status = json.loads(project.make("status", "ARGS=--json").stdout)
    phases = Counter(c.get("phase") for c in status if c["task_id"].startswith("die-"))
    assert phases == {"running": 8, "queued": 4}, phases
    assert "8 running, 4 queued" in project.make("status").stdout
    project.kill_emulator()
    project.start_emulator(*EMULATOR)
    status = project.make("status", "ARGS=--json")  # the restarted emulator answers: exit 0
    assert "Traceback" not in status.stderr and "could not be reached" not in status.stderr
    project.release("die")
    project.make("wait", "ARGS=--interval 0.5 --timeout 150", check=False, timeout=200)
    states = {t: s for t, _, s in project.ledger()}
    lost = sorted(t for t, s in states.items() if s == "lost")
    assert lost and set(states.values()) == {"lost", "succeeded"}, states
    table = project.make("status", "ARGS=--state lost").stdout
    assert all(t in table for t in lost) and "succeeded" not in table

    before = project.ledger()
    retried = project.make("retry")
    assert f"{len(lost)} of {len(lost)} spawned" in retried.stderr
    after = project.ledger()
    assert sorted(t for t, _, _ in after[len(before) :]) == lost, "retry respawns exactly the lost tasks"
    project.make("wait", "ARGS=--interval 0.5")
    newest = {c["task_id"]: c["state"] for c in json.loads(project.make("status", "ARGS=--json").stdout)}
    assert set(newest.values()) == {"succeeded"}
    assert len(after) == len(ids) + len(lost), "earlier attempts stay in the ledger"


def test_monitor_commands_tell_what_happened(project: Project):
    project.make("spawn", f"TASKS={project.tasks_file('mon.jsonl', ['mon-ok'], n=500)}")
    project.make("spawn", f"TASKS={project.tasks_file('mon2.jsonl', ['mon-bad'], fail_with='bad luck')}")
    watched = [json.loads(line) for line in project.make("watch", "ARGS=--json --interval 0.5").stdout.splitlines()]
    assert watched[-1]["counts"]["succeeded"] == 1 and watched[-1]["counts"]["failed"] == 1

    logs = json.loads(project.make("logs", "ARGS=mon-bad --json").stdout)
    assert any("task mon-bad: bad luck" in line for line in logs["lines"]), logs

    doctor = {c["check"]: c for c in json.loads(project.make("doctor", "ARGS=--json").stdout)}
    assert doctor["deployment"]["status"] == doctor["code hash"]["status"] == "ok", doctor

    project.make("results")
    with open(project.results_dir() / "summary.csv", newline="") as f:
        rows = {row["task_id"]: row for row in csv.DictReader(f)}
    assert rows["mon-ok"]["param.n"] == "500" and float(rows["mon-ok"]["pi"]) > 3.1, rows


def test_an_expired_result_shows_as_expired(project: Project):
    project.make("local-down", local=False)
    project.start_emulator("--result-ttl", "1")
    try:
        project.make("spawn", f"TASKS={project.tasks_file('exp.jsonl', ['exp-1'])}")
        project.wait_for_calls(calls_of(project, "exp-1"), expired=True)  # asked without the ledger
        status = json.loads(project.make("status", "ARGS=--json").stdout)
        assert status[0]["state"] == "expired" and "7 days" in status[0]["error"]
    finally:
        project.make("local-down", local=False)
        project.start_emulator(*EMULATOR)


def test_a_task_longer_than_one_attempt_is_reported_once(project: Project):
    # budget_seconds=0: each call sums one chunk, saves its progress and hands over to the next call
    name = project.tasks_file("chain.jsonl", ["chain-1"], n=300_000, chunk=100_000, budget_seconds=0)
    project.make("spawn", f"TASKS={name}")
    waited = json.loads(project.make("wait", "ARGS=--json --interval 0.5").stdout)
    (task,) = [c for c in waited if c["task_id"] == "chain-1"]
    assert task["state"] == "succeeded" and len(task["chain"]) == 2, task  # three calls, one task
    assert [t for t, _, _ in project.ledger()] == ["chain-1"], "the ledger follows the chain in one row"
    project.make("results")  # results are saved by `make results` only, never by a poll
    result = json.loads((project.results_dir() / "chain-1.json").read_text())
    assert result["n"] == 300_000 and abs(result["pi"] - 3.14159) < 1e-4


def test_a_running_job_is_pending_not_an_api_failure(project: Project):
    project.make("spawn", f"TASKS={project.tasks_file('run.jsonl', ['run-long'], hold=project.gate('run-long'))}")
    project.make("spawn", f"TASKS={project.tasks_file('run2.jsonl', ['run-quick'])}")
    project.wait_for_calls(calls_of(project, "run-quick"))  # run-long waits for a file that never comes
    status = project.make("status", "ARGS=--json")  # exit 0: nothing is wrong with the API
    states = {c["task_id"]: c["state"] for c in json.loads(status.stdout)}
    assert states == {"run-long": "pending", "run-quick": "succeeded"}, states
    assert "could not be reached" not in status.stderr
    project.make("cancel", "ARGS=run-long")


def test_a_preempted_job_is_restarted_and_succeeds(project: Project):
    """make local-preempt takes the container back as Modal preempts one: the job gets SIGINT, Modal
    restarts it on the same input, and the ledger ends with the restart's result."""
    project.make("spawn", f"TASKS={project.tasks_file('pre.jsonl', ['pre-1'], hold=project.gate('pre'))}")
    wait_until(lambda: any(task == "pre-1" for task, _ in project.started()), "pre-1 has started")
    preempt = project.make("local-preempt", "ARGS=--grace 1", local=False)
    assert "preempted fc-" in preempt.stdout and "SIGINT now" in preempt.stdout, preempt.stdout
    project.release("pre")  # the restart may now finish
    project.make("wait", "ARGS=--interval 0.5 --timeout 150", check=False, timeout=200)
    state = {t: s for t, _, s in project.ledger()}["pre-1"]
    assert state == "succeeded", state
    log = project.make("logs", "ARGS=pre-1").stdout
    assert "KeyboardInterrupt" in log and "; restarting on the same input" in log, log


def test_cancel_keeps_the_outcome_of_a_job_that_already_finished(project: Project):
    project.make("spawn", f"TASKS={project.tasks_file('cx.jsonl', ['cx-done'])}")
    project.make("spawn", f"TASKS={project.tasks_file('cx2.jsonl', ['cx-long'], hold=project.gate('cx-long'))}")
    project.wait_for_calls(calls_of(project, "cx-done"))  # cx-done has finished on the emulator; nobody has polled it
    project.make("cancel")
    states = {t: s for t, _, s in project.ledger()}
    assert states == {"cx-done": "succeeded", "cx-long": "cancelled"}, states
    project.make("results")  # results are saved by `make results` only, never by a poll
    assert (project.results_dir() / "cx-done.json").exists()
