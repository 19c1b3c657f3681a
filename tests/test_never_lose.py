"""A job, once spawned, is tracked until its result is saved, whatever the user's machine does while
spawning: a second terminal runs the same command, Ctrl+C lands at any instant, the code is edited
without a redeploy. What happens to jobs after they were spawned is tests/test_outages.py.

Through the generated project's own make targets, with the real modal client against the local
emulator; the project runs the test workload (tests/workloads/workload.py), which records each
execution, so that what ran can be compared with what the ledger says was spawned.
"""

from __future__ import annotations

import json
import os
import pty
import random
import signal
import subprocess
from pathlib import Path

import pytest

from tests.project import Project, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("own_ledger")]


@pytest.fixture(scope="module")
def project(projects) -> Project:
    proj = projects.new("never-lose", test_workload=True)
    with proj.deployed("--latency", "20", "--verbose"):
        yield proj


def test_two_terminals_spawn_each_task_once(project: Project):
    ids = [f"two-{i}" for i in range(20)]
    name = project.tasks_file("two.jsonl", ids)
    procs = [project.start("spawn", f"TASKS={name}", "ARGS=--concurrency 1") for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    rows = [r for r in project.ledger() if r[0].startswith("two-")]
    assert sorted(task for task, _, _ in rows) == sorted(ids), "each task spawned exactly once"
    busy = [err for (_, err), p in zip(outputs, procs, strict=True) if p.returncode != 0]
    for err in busy:
        assert "another spawn" in err and "Traceback" not in err
    project.make("wait", "ARGS=--interval 0.5")
    ran = [task for task, _ in project.started() if task.startswith("two-")]
    assert sorted(ran) == sorted(ids), "each task ran exactly once on the emulator"


def test_ctrl_c_at_any_instant_loses_and_doubles_nothing(project: Project):
    rng = random.Random(7)
    for trial in range(3):
        ids = [f"sig{trial}-{i:02d}" for i in range(16)]
        name = project.tasks_file(f"sig{trial}.jsonl", ids)
        proc = project.start("spawn", f"TASKS={name}", "ARGS=--concurrency 4")
        try:  # Ctrl+C at a random instant, from start-up to after the end; what holds must hold at any
            proc.wait(timeout=rng.uniform(0.3, 3.5))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl+C does: the whole foreground group
        _, err = proc.communicate(timeout=120)
        assert "Traceback" not in err, err
        finished = f"{len(ids)} of {len(ids)} spawned and recorded" in err  # Ctrl+C came after the end
        if proc.returncode != 0 and "Re-running `make spawn LOCAL=1` is safe" not in err and not finished:
            # interrupted while starting up: it must say so, or at least have spawned nothing
            assert not [r for r in project.ledger() if r[0].startswith(f"sig{trial}-")], err
        assert "spawning" not in {state for _, _, state in project.ledger()}
        project.make("spawn", f"TASKS={name}")  # the re-run spawns exactly the rest
        project.make("wait", "ARGS=--interval 0.5")
        recorded = sorted((t, c) for t, c, _ in project.ledger() if t.startswith(f"sig{trial}-"))
        ran = sorted(m for m in project.started() if m[0].startswith(f"sig{trial}-"))
        assert [t for t, _ in recorded] == ids, f"trial {trial}: every task recorded once"
        assert ran == recorded, f"trial {trial}: what ran is exactly what the ledger holds"


def rpcs_logged(project: Project) -> int:
    """How many requests the emulator (started with --verbose) has answered so far."""
    return (project.emulator_state / "server.log").read_text().count(" RPC ")


def test_ctrl_c_in_a_sweep_of_a_thousand(project: Project):
    ids = [f"k{i:04d}" for i in range(1000)]
    name = project.tasks_file("k.jsonl", ids)
    proc = project.start("spawn", f"TASKS={name}")
    wait_until(lambda: len(project.ledger()) >= 300 or proc.poll() is not None, "300 calls are recorded", timeout=300)
    if proc.poll() is None:
        # Stopped while it spawns (SIGSTOP: nothing more happens, however fast the machine), Ctrl+C lands,
        # then it goes on: it handles the Ctrl+C long before the other 700 could be spawned.
        os.killpg(proc.pid, signal.SIGSTOP)
        os.killpg(proc.pid, signal.SIGINT)
        os.killpg(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=120)
    first = project.ledger()
    assert proc.returncode != 0 and "Re-running `make spawn LOCAL=1` is safe" in err, err
    assert 300 <= len(first) < 1000 and {state for _, _, state in first} <= {"pending", "succeeded"}
    rerun = project.make("spawn", f"TASKS={name}")
    assert f"{1000 - len(first)} of {1000 - len(first)} spawned" in rerun.stderr
    project.make("wait", "ARGS=--interval 1", check=False, timeout=600)
    recorded = sorted((t, c) for t, c, _ in project.ledger())
    ran = sorted(m for m in project.started() if m[0].startswith("k"))
    assert [t for t, _ in recorded] == ids
    assert ran == recorded, "every call that ran is in the ledger, once"

    # Every call has finished and been recorded: another look polls nothing, so asks Modal nothing.
    before = rpcs_logged(project)
    status = json.loads(project.make("status", "ARGS=--json").stdout)
    assert rpcs_logged(project) == before, "a status with nothing pending must make no request"
    assert {c["state"] for c in status if c["task_id"].startswith("k")} == {"succeeded"}
    table = project.make("status").stdout.splitlines()  # a thousand rows: aligned lines, not a box
    assert table[0].split() == ["task", "state", "call", "id", "age", "cost", "detail"]
    assert any(line.split()[:2] == ["k0999", "succeeded"] for line in table)


def test_a_terminal_gets_a_progress_bar(project: Project):
    ids = [f"tty-{i:03d}" for i in range(200)]
    name = project.tasks_file("tty.jsonl", ids)
    controller, terminal = pty.openpty()
    proc = project.start(
        "spawn", f"TASKS={name}", env={"TERM": "xterm"}, stdin=terminal, stdout=terminal, stderr=terminal
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
    assert sorted(t for t, _, _ in project.ledger() if t.startswith("tty-")) == ids


def test_bad_tasks_files_get_one_line(project: Project):
    (project.path / "latin1.jsonl").write_bytes(b'{"id": "a"}\n{"id": "caf\xe9"}\n')
    (project.path / "adir.jsonl").mkdir(exist_ok=True)
    for name, message in (("latin1.jsonl", "latin1.jsonl:2: not UTF-8"), ("adir.jsonl", "is a directory")):
        proc = project.make("spawn", f"TASKS={name}", check=False)
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


def test_json_output_is_json_even_with_an_empty_ledger(project: Project):
    for target, empty in (("status", []), ("results", {}), ("wait", [])):
        proc = project.make(target, "ARGS=--json", local=False, check=False)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == empty, f"{target}: {proc.stdout!r}"
        assert "no jobs" in proc.stderr


def test_allow_stale_runs_the_deployed_code_and_records_its_hash(project: Project):
    deployed = (project.path / ".jobs" / "deployed-hash").read_text().strip()
    workload = project.package.relative_to(project.path) / "workload.py"
    with project.edited(str(workload), "EDITED: dict[str, Any] = {}", 'EDITED: dict[str, Any] = {"code": "edited"}'):
        name = project.tasks_file("stale.jsonl", ["stale-1", "stale-2"])
        refused = project.make("spawn", f"TASKS={name}", check=False)
        assert refused.returncode != 0 and "make deploy" in refused.stderr
        project.make("spawn", f"TASKS={name}", "ARGS=--allow-stale")
        waited = json.loads(project.make("wait", "ARGS=--json --interval 0.5").stdout)
    stale = {c["task_id"]: c for c in waited if c["task_id"].startswith("stale-")}
    assert {c["state"] for c in stale.values()} == {"succeeded"}, stale
    assert {c["code_hash"] for c in stale.values()} == {deployed}
    project.make("results")  # results are saved by `make results` only, never by a poll
    result = json.loads((project.results_dir() / "stale-1.json").read_text())
    assert "code" not in result, "--allow-stale runs the deployed code, not the local edit"


def test_the_hash_covers_exactly_the_files_modal_ships(project: Project):
    package = project.package
    (package / ".DS_Store").write_bytes(b"\x00\x01finder junk")
    (package / "notes.txt").write_text("a data file that add_local_python_source does not ship\n")
    guard = project.make("guard")
    assert "up to date" in guard.stdout, "files Modal never ships must not make the deployment stale"

    project.make("deploy")
    listing = project.python(
        f"from {package.name} import guard; print('\\n'.join(str(p) for p in guard.deployed_files()))"
    )
    hashed = {Path(p).resolve().relative_to(project.path.resolve()).as_posix() for p in listing.split()}
    roots = sorted(project.emulator_state.glob("deploy/*/v*/root"), key=lambda p: p.stat().st_mtime)
    shipped = {p.relative_to(roots[-1]).as_posix() for p in roots[-1].rglob("*") if p.is_file()}
    assert hashed == shipped, f"hashed but not shipped: {hashed - shipped}; shipped but not hashed: {shipped - hashed}"


def test_the_projects_own_emulator_tests_pass(project: Project):
    """The generated project's tests against its emulator: the Modal adapter's contract (modal_api through
    the real client), the flow through `python -m <package>`, and a deploy of other code in the middle of
    a sweep that changes nothing the sweep runs (every spawn pinned to the version it checked)."""
    command = [str(project.path / ".venv" / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider"]
    proc = subprocess.run(
        [*command, "tests/test_flow_emulator.py"],
        cwd=project.path,
        env=project.command_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    # all of them ran (none skipped for a missing emulator) and passed
    assert proc.returncode == 0 and " passed" in proc.stdout and "skipped" not in proc.stdout, (
        proc.stdout[-3000:] + proc.stderr[-2000:]
    )
