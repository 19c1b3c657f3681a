"""A job, once spawned, is tracked until its result is saved, whatever the user's machine does.

Each test breaks things the way users do (the network drops mid-poll, a second terminal runs the
same command, Ctrl+C lands at any instant, the code is edited without a redeploy) through the
generated project's own make targets, with the real modal client against the local emulator.
"""

from __future__ import annotations

import csv
import json
import os
import pty
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.flow import Project, clean_env, ledger, own_ledger, render, start_emulator, tasks_file  # noqa: F401

pytestmark = pytest.mark.e2e


def started_markers(project: Project) -> list[tuple[str, str]]:
    """(task, call id) of every execution that actually ran, as the jobs themselves recorded it."""
    found = []
    for marker in project.path.glob(".modal-local/**/started/*"):
        task, call_id = marker.name.split("__")
        found.append((task, call_id))
    return found


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    path = render(tmp_path_factory.mktemp("never-lose") / "proj")
    # The job records each execution (its task and call id) on the Volume: the ground truth of
    # what ran, to compare with what the ledger says was spawned.
    workload = path / "modal_jobs" / "workload.py"
    text = workload.read_text()
    text = text.replace(
        '    time.sleep(float(task.get("seconds", 0)))\n',
        '    started = output_dir / "started"\n'
        "    started.mkdir(parents=True, exist_ok=True)\n"
        "    import os\n"
        "    (started / f\"{task['id']}__{os.environ.get('MODAL_EMU_FUNCTION_CALL_ID')}\").touch()\n"
        '    if task.get("raise_connection_error"):\n'
        '        raise ConnectionError("the job\'s own download failed")\n'
        '    time.sleep(float(task.get("seconds", 0)))\n',
    )
    # ...and its Params (the tasks are checked against them before spawning) take the extra switch.
    text = text.replace("    seconds: float = ", "    raise_connection_error: bool = False\n    seconds: float = ")
    assert "started" in text and "raise_connection_error: bool" in text
    workload.write_text(text)
    proj = Project(path)
    proj.make("setup", local=False)
    proj.make("local-up", local=False)
    proj.make("local-down", local=False)
    start_emulator(proj, "--latency", "20", "--verbose")
    proj.make("deploy")
    yield proj
    proj.make("local-down", local=False, check=False)


def offline_env(project: Project) -> dict[str, str]:
    """A laptop that lost its network: the client points at an address where nothing answers."""
    env = clean_env()
    env.update(
        MODAL_SERVER_URL="http://127.0.0.1:9",  # discard port: connection refused
        MODAL_TOKEN_ID="local-emulator",
        MODAL_TOKEN_SECRET="local-emulator",
        MODAL_CONFIG_PATH=str(project.path / ".modal-local" / "modal.toml"),
        JOB_API_TIMEOUT="3",
    )
    return env


def run_make(project: Project, *args: str, env: dict[str, str], timeout: float = 120):
    return subprocess.run(
        ["make", *args], cwd=project.path, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_a_lost_connection_never_ends_a_job(project: Project):
    project.make("spawn", f"TASKS={tasks_file(project.path, 'net.jsonl', ['net-ok-1', 'net-ok-2'])}")
    own_error = tasks_file(project.path, "net2.jsonl", ["net-own-error"], raise_connection_error=True)
    project.make("spawn", f"TASKS={own_error}")
    time.sleep(3)  # the jobs finish on the emulator; nobody has polled them yet

    env = offline_env(project)
    began = time.monotonic()
    status = run_make(project, "status", "ARGS=--json", env=env)
    took = time.monotonic() - began
    assert status.returncode != 0
    assert "could not be reached" in status.stderr and "Traceback" not in status.stderr
    assert took < 30, f"status must give up quickly when the API is unreachable, took {took:.0f} s"
    rows = {task: state for task, _, state in ledger(project)}
    assert {rows[t] for t in ("net-ok-1", "net-ok-2", "net-own-error")} == {"pending"}, rows

    cancel = run_make(project, "cancel", env=env)
    assert cancel.returncode != 0
    assert "Traceback" not in cancel.stderr + cancel.stdout
    assert len((cancel.stderr + cancel.stdout).strip().splitlines()) <= 3, cancel.stderr
    assert {state for _, _, state in ledger(project)} <= {"pending", "succeeded"}

    # Back online: the outcomes are collected, and a job's own ConnectionError is its outcome.
    status = project.make("status", "ARGS=--json")
    states = {c["task_id"]: c for c in json.loads(status.stdout)}
    assert states["net-ok-1"]["state"] == states["net-ok-2"]["state"] == "succeeded"
    project.make("results")  # results are saved by `make results` only, never by a poll
    assert (Path(os.environ["JOB_RESULTS_DIR"]) / "net-ok-1.json").exists()
    assert states["net-own-error"]["state"] == "failed"
    assert "ConnectionError" in states["net-own-error"]["error"]


def test_two_terminals_spawn_each_task_once(project: Project):
    ids = [f"two-{i}" for i in range(20)]
    name = tasks_file(project.path, "two.jsonl", ids)
    procs = [project.start("spawn", f"TASKS={name}", "ARGS=--concurrency 1") for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    rows = [r for r in ledger(project) if r[0].startswith("two-")]
    assert sorted(task for task, _, _ in rows) == sorted(ids), "each task spawned exactly once"
    busy = [err for (_, err), p in zip(outputs, procs, strict=True) if p.returncode != 0]
    for err in busy:
        assert "another spawn" in err and "Traceback" not in err
    project.make("wait", "ARGS=--interval 0.5")
    ran = [task for task, _ in started_markers(project) if task.startswith("two-")]
    assert sorted(ran) == sorted(ids), "each task ran exactly once on the emulator"


def test_ctrl_c_at_any_instant_loses_and_doubles_nothing(project: Project):
    rng = random.Random(7)
    for trial in range(3):
        ids = [f"sig{trial}-{i:02d}" for i in range(16)]
        name = tasks_file(project.path, f"sig{trial}.jsonl", ids)
        proc = project.start("spawn", f"TASKS={name}", "ARGS=--concurrency 4")
        time.sleep(rng.uniform(0.3, 3.5))  # from start-up to the middle of spawning
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl+C does: the whole foreground group
        _, err = proc.communicate(timeout=120)
        assert "Traceback" not in err, err
        finished = f"{len(ids)} of {len(ids)} spawned and recorded" in err  # Ctrl+C came after the end
        if proc.returncode != 0 and "Re-running `make spawn LOCAL=1` is safe" not in err and not finished:
            # interrupted while starting up: it must say so, or at least have spawned nothing
            assert not [r for r in ledger(project) if r[0].startswith(f"sig{trial}-")], err
        assert "spawning" not in {state for _, _, state in ledger(project)}
        project.make("spawn", f"TASKS={name}")  # the re-run spawns exactly the rest
        project.make("wait", "ARGS=--interval 0.5")
        recorded = sorted((t, c) for t, c, _ in ledger(project) if t.startswith(f"sig{trial}-"))
        ran = sorted(m for m in started_markers(project) if m[0].startswith(f"sig{trial}-"))
        assert [t for t, _ in recorded] == ids, f"trial {trial}: every task recorded once"
        assert ran == recorded, f"trial {trial}: what ran is exactly what the ledger holds"


def test_allow_stale_runs_the_deployed_code_and_records_its_hash(project: Project):
    deployed = (project.path / ".jobs" / "deployed-hash").read_text().strip()
    workload = project.path / "modal_jobs" / "workload.py"
    original = workload.read_text()
    workload.write_text(original.replace('result = {"task_id"', 'result = {"code": "edited", "task_id"'))
    try:
        name = tasks_file(project.path, "stale.jsonl", ["stale-1", "stale-2"])
        refused = project.make("spawn", f"TASKS={name}", check=False)
        assert refused.returncode != 0 and "make deploy" in refused.stderr
        project.make("spawn", f"TASKS={name}", "ARGS=--allow-stale")
        waited = json.loads(project.make("wait", "ARGS=--json --interval 0.5").stdout)
    finally:
        workload.write_text(original)
    stale = {c["task_id"]: c for c in waited if c["task_id"].startswith("stale-")}
    assert {c["state"] for c in stale.values()} == {"succeeded"}, stale
    assert {c["code_hash"] for c in stale.values()} == {deployed}
    project.make("results")
    result = json.loads((Path(os.environ["JOB_RESULTS_DIR"]) / "stale-1.json").read_text())
    assert "code" not in result, "--allow-stale runs the deployed code, not the local edit"


def test_the_hash_covers_exactly_the_files_modal_ships(project: Project):
    package = project.path / "modal_jobs"
    (package / ".DS_Store").write_bytes(b"\x00\x01finder junk")
    (package / "notes.txt").write_text("a data file that add_local_python_source does not ship\n")
    guard = project.make("guard")
    assert "up to date" in guard.stdout, "files Modal never ships must not make the deployment stale"

    project.make("deploy")
    listing = subprocess.run(
        [
            str(project.path / ".venv" / "bin" / "python"),
            "-c",
            "from modal_jobs import guard; print('\\n'.join(str(p) for p in guard.deployed_files()))",
        ],
        cwd=project.path,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    hashed = {Path(p).resolve().relative_to(project.path.resolve()).as_posix() for p in listing.stdout.split()}
    roots = sorted(project.path.glob(".modal-local/deploy/*/v*/root"), key=lambda p: p.stat().st_mtime)
    shipped = {p.relative_to(roots[-1]).as_posix() for p in roots[-1].rglob("*") if p.is_file()}
    assert hashed == shipped, f"hashed but not shipped: {hashed - shipped}; shipped but not hashed: {shipped - hashed}"


def test_bad_tasks_files_get_one_line(project: Project):
    (project.path / "latin1.jsonl").write_bytes(b'{"id": "a"}\n{"id": "caf\xe9"}\n')
    (project.path / "adir.jsonl").mkdir(exist_ok=True)
    for name, message in (("latin1.jsonl", "latin1.jsonl:2: not UTF-8"), ("adir.jsonl", "is a directory")):
        proc = project.make("spawn", f"TASKS={name}", check=False)
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


def test_json_output_is_json_even_with_an_empty_ledger(project: Project):
    env = clean_env()
    for target, empty in (("status", []), ("results", {}), ("wait", [])):
        proc = run_make(project, target, "ARGS=--json", env=env)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == empty, f"{target}: {proc.stdout!r}"
        assert "no jobs" in proc.stderr


def rpcs_logged(project: Project) -> int:
    """How many requests the emulator (started with --verbose) has answered so far."""
    return (project.path / ".modal-local" / "server.log").read_text().count(" RPC ")


def test_ctrl_c_in_a_sweep_of_a_thousand(project: Project):
    ids = [f"k{i:04d}" for i in range(1000)]
    name = tasks_file(project.path, "k.jsonl", ids)
    proc = project.start("spawn", f"TASKS={name}")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(ledger(project)) < 300:  # well into the spawning
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    first = ledger(project)
    assert proc.returncode != 0 and "Re-running `make spawn LOCAL=1` is safe" in err, err
    assert 300 <= len(first) < 1000 and {state for _, _, state in first} <= {"pending", "succeeded"}
    rerun = project.make("spawn", f"TASKS={name}")
    assert f"{1000 - len(first)} of {1000 - len(first)} spawned" in rerun.stderr
    project.make("wait", "ARGS=--interval 1", check=False, timeout=600)
    recorded = sorted((t, c) for t, c, _ in ledger(project))
    ran = sorted(m for m in started_markers(project) if m[0].startswith("k"))
    assert [t for t, _ in recorded] == ids
    assert ran == recorded, "every call that ran is in the ledger, once"

    # Every call has finished and been recorded: another look polls nothing, so asks Modal nothing.
    before = rpcs_logged(project)
    status = json.loads(project.make("status", "ARGS=--json").stdout)
    assert rpcs_logged(project) == before, "a status with nothing pending must make no request"
    assert {c["state"] for c in status if c["task_id"].startswith("k")} == {"succeeded"}
    table = project.make("status").stdout.splitlines()  # a thousand rows: aligned lines, not a box
    assert table[0].split() == ["task", "state", "call", "id", "age", "detail"]
    assert any(line.split()[:2] == ["k0999", "succeeded"] for line in table)


def test_a_sweep_survives_the_emulator_dying_and_retry_respawns_the_lost(project: Project):
    ids = [f"die-{i:02d}" for i in range(12)]
    project.make("spawn", f"TASKS={tasks_file(project.path, 'die.jsonl', ids, seconds=6)}")
    # 8 run (the emulator's concurrency), 4 wait: status tells which, from Modal's call graph
    deadline, phases = time.monotonic() + 4, {}
    while time.monotonic() < deadline and phases != {"running": 8, "queued": 4}:
        status = json.loads(project.make("status", "ARGS=--json").stdout)
        phases = Counter(c.get("phase") for c in status if c["task_id"].startswith("die-"))
    assert phases == {"running": 8, "queued": 4}, phases
    assert "8 running, 4 queued" in project.make("status").stdout
    pid = int((project.path / ".modal-local" / "server.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    start_emulator(project, "--latency", "20", "--verbose")
    status = project.make("status", "ARGS=--json")  # the restarted emulator answers: exit 0
    assert "Traceback" not in status.stderr and "could not be reached" not in status.stderr
    project.make("wait", "ARGS=--interval 0.5 --timeout 150", check=False, timeout=200)
    states = {t: s for t, _, s in ledger(project)}
    lost = sorted(t for t, s in states.items() if s == "lost")
    assert lost and set(states.values()) == {"lost", "succeeded"}, states
    table = project.make("status", "ARGS=--state lost").stdout
    assert all(t in table for t in lost) and "succeeded" not in table

    before = ledger(project)
    retried = project.make("retry")
    assert f"{len(lost)} of {len(lost)} spawned" in retried.stderr
    after = ledger(project)
    assert sorted(t for t, _, _ in after[len(before) :]) == lost, "retry respawns exactly the lost tasks"
    project.make("wait", "ARGS=--interval 0.5")
    newest = {c["task_id"]: c["state"] for c in json.loads(project.make("status", "ARGS=--json").stdout)}
    assert set(newest.values()) == {"succeeded"}
    assert len(after) == len(ids) + len(lost), "earlier attempts stay in the ledger"


def test_monitor_commands_tell_what_happened(project: Project):
    project.make("spawn", f"TASKS={tasks_file(project.path, 'mon.jsonl', ['mon-ok'], n=500)}")
    project.make("spawn", f"TASKS={tasks_file(project.path, 'mon2.jsonl', ['mon-bad'], fail_with='bad luck')}")
    watched = [json.loads(line) for line in project.make("watch", "ARGS=--json --interval 0.5").stdout.splitlines()]
    assert watched[-1]["counts"]["succeeded"] == 1 and watched[-1]["counts"]["failed"] == 1

    logs = json.loads(project.make("logs", "ARGS=mon-bad --json").stdout)
    assert any("task mon-bad: bad luck" in line for line in logs["lines"]), logs

    doctor = {c["check"]: c for c in json.loads(project.make("doctor", "ARGS=--json").stdout)}
    assert doctor["deployment"]["status"] == doctor["code hash"]["status"] == "ok", doctor

    project.make("results")
    with open(Path(os.environ["JOB_RESULTS_DIR"]) / "summary.csv", newline="") as f:
        rows = {row["task_id"]: row for row in csv.DictReader(f)}
    assert rows["mon-ok"]["param.n"] == "500" and float(rows["mon-ok"]["pi"]) > 3.1, rows


def test_an_expired_result_shows_as_expired(project: Project):
    project.make("local-down", local=False)
    start_emulator(project, "--result-ttl", "1")
    try:
        project.make("spawn", f"TASKS={tasks_file(project.path, 'exp.jsonl', ['exp-1'])}")
        time.sleep(4)
        status = json.loads(project.make("status", "ARGS=--json").stdout)
        assert status[0]["state"] == "expired" and "7 days" in status[0]["error"]
    finally:
        project.make("local-down", local=False)
        start_emulator(project, "--latency", "20", "--verbose")


def test_a_task_longer_than_one_attempt_is_reported_once(project: Project):
    # budget_seconds=0: each call sums one chunk, saves its progress and hands over to the next call
    name = tasks_file(project.path, "chain.jsonl", ["chain-1"], n=300_000, chunk=100_000, budget_seconds=0)
    project.make("spawn", f"TASKS={name}")
    waited = json.loads(project.make("wait", "ARGS=--json --interval 0.5").stdout)
    (task,) = [c for c in waited if c["task_id"] == "chain-1"]
    assert task["state"] == "succeeded" and len(task["chain"]) == 2, task  # three calls, one task
    assert [t for t, _, _ in ledger(project)] == ["chain-1"], "the ledger follows the chain in one row"
    project.make("results")
    result = json.loads((Path(os.environ["JOB_RESULTS_DIR"]) / "chain-1.json").read_text())
    assert result["n"] == 300_000 and abs(result["pi"] - 3.14159) < 1e-4


def test_a_running_job_is_pending_not_an_api_failure(project: Project):
    project.make("spawn", f"TASKS={tasks_file(project.path, 'run.jsonl', ['run-long'], seconds=300)}")
    project.make("spawn", f"TASKS={tasks_file(project.path, 'run2.jsonl', ['run-quick'])}")
    time.sleep(3)
    status = project.make("status", "ARGS=--json")  # exit 0: nothing is wrong with the API
    states = {c["task_id"]: c["state"] for c in json.loads(status.stdout)}
    assert states == {"run-long": "pending", "run-quick": "succeeded"}, states
    assert "could not be reached" not in status.stderr
    project.make("cancel", "ARGS=run-long")


def test_a_preempted_job_is_restarted_and_succeeds(project: Project):
    """make local-preempt takes the container back as Modal preempts one: the job gets SIGINT, Modal
    restarts it on the same input, and the ledger ends with the restart's result."""
    project.make("spawn", f"TASKS={tasks_file(project.path, 'pre.jsonl', ['pre-1'], seconds=3)}")
    deadline = time.monotonic() + 60
    while not any(task == "pre-1" for task, _ in started_markers(project)):
        assert time.monotonic() < deadline, "pre-1 never started"
        time.sleep(0.2)
    preempt = project.make("local-preempt", "ARGS=--grace 1", local=False)
    assert "preempted fc-" in preempt.stdout and "SIGINT now" in preempt.stdout, preempt.stdout
    deadline = time.monotonic() + 90
    while (state := {t: s for t, _, s in ledger(project)}["pre-1"]) == "pending":
        assert time.monotonic() < deadline, "pre-1 never finished after its preemption"
        time.sleep(1)
        project.make("status", check=False)  # polls the pending calls into the ledger
    assert state == "succeeded", state
    log = project.make("logs", "ARGS=pre-1").stdout
    assert "KeyboardInterrupt" in log and "; restarting on the same input" in log, log


def test_cancel_keeps_the_outcome_of_a_job_that_already_finished(project: Project):
    project.make("spawn", f"TASKS={tasks_file(project.path, 'cx.jsonl', ['cx-done'])}")
    project.make("spawn", f"TASKS={tasks_file(project.path, 'cx2.jsonl', ['cx-long'], seconds=60)}")
    time.sleep(4)  # cx-done has finished on the emulator; nobody has polled it
    project.make("cancel")
    states = {t: s for t, _, s in ledger(project)}
    assert states == {"cx-done": "succeeded", "cx-long": "cancelled"}, states
    project.make("results")
    assert (Path(os.environ["JOB_RESULTS_DIR"]) / "cx-done.json").exists()


def test_a_terminal_gets_a_progress_bar(project: Project):
    ids = [f"tty-{i:03d}" for i in range(200)]
    name = tasks_file(project.path, "tty.jsonl", ids)
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        ["make", "spawn", "LOCAL=1", f"TASKS={name}"],
        cwd=project.path,
        env={**clean_env(), "TERM": "xterm"},
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the last writer has gone
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert proc.wait(timeout=60) == 0
    screen = shown.decode(errors="replace")
    assert "spawning" in screen and "200/200" in screen, screen[-2000:]
    assert "spawned 100/200" not in screen, "a terminal gets the bar, not the log lines"
    assert sorted(t for t, _, _ in ledger(project) if t.startswith("tty-")) == ids


def test_the_projects_own_emulator_tests_pass(project: Project):
    """The generated project's tests against its emulator: the Modal adapter's contract (modal_api through
    the real client), the flow through `python -m modal_jobs`, and a deploy of other code in the middle of
    a sweep that changes nothing the sweep runs (every spawn pinned to the version it checked)."""
    python = str(project.path / ".venv" / "bin" / "python")
    command = [python, "-m", "pytest", "-p", "no:cacheprovider", "tests/test_flow_emulator.py"]
    proc = subprocess.run(command, cwd=project.path, env=clean_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and "3 passed" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
