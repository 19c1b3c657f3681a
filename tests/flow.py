"""The whole user flow of a generated project, against the local emulator.

Shared by ``make demo`` (tests/demo.py, readable output) and the end-to-end test
(tests/test_e2e.py, which asserts on every step): one implementation of the flow.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import jinja2
import pytest
from copier import run_copy

ROOT = Path(__file__).resolve().parent.parent

# Tasks that take a moment, so that they are still running when the spawner is killed.
DEMO_TASKS = "\n".join(
    json.dumps({"id": f"pi-{n}", "n": n, "seconds": 1.5}) for n in (1_000, 10_000, 100_000, 1_000_000)
)


def gpu_types() -> list[str]:
    """The GPU types copier.yml offers, from the one place they are written (includes/names.jinja)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROOT))
    return list(env.get_template("includes/names.jinja").module.gpu_types)


class FlowError(AssertionError):
    pass


def render(dst: Path, **answers) -> Path:
    """``copier copy --defaults`` of this template, as a user runs it (no --trust)."""
    run_copy(str(ROOT), dst, data=answers, defaults=True, unsafe=False, quiet=True, vcs_ref="HEAD")
    return dst


def clean_env() -> dict[str, str]:
    """The environment of a fresh shell: no emulator variables, no virtualenv of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODAL_", "VIRTUAL_ENV", "UV_PROJECT"))}
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    # The emulator costs nothing, and these runs have no terminal to confirm a Modal bill on:
    # the spawner's cost check only prints (tests/test_sweeps.py sets a threshold to test it).
    env["JOB_COST_CONFIRM_USD"] = "inf"
    return env


class Project:
    def __init__(self, path: Path, say: Callable[[str], None] = lambda s: None):
        self.path = path
        self.say = say

    def make(self, *args: str, local: bool = True, check: bool = True, timeout: float = 180):
        cmd = ["make", *args] + (["LOCAL=1"] if local else [])
        self.say("$ " + ("LOCAL=1 " if local else "") + "make " + " ".join(args))
        proc = subprocess.run(
            cmd,
            cwd=self.path,
            env=clean_env(),
            stdin=subprocess.DEVNULL,  # never a prompt that waits for a developer's terminal
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise FlowError(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def start(self, *args: str, merge_stderr: bool = False) -> subprocess.Popen:
        """`LOCAL=1 make ARGS...` in the background, in its own session (as a terminal's foreground
        job is), so that a test can signal the whole group the way Ctrl+C or a closed terminal does."""
        return subprocess.Popen(
            ["make", *args, "LOCAL=1"],
            cwd=self.path,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def ledger_rows(self) -> list[tuple[str, str, str]]:
        path = self.path / ".jobs" / "ledger.sqlite3"
        if not path.exists():
            return []
        with sqlite3.connect(path) as db:
            return list(db.execute("SELECT task_id, call_id, state FROM calls ORDER BY spawned_at"))

    def spawn_then_close_terminal(self, extra: str = "") -> list[tuple[str, str, str]]:
        """Run `make spawn`, and kill it and its children the moment it says the jobs run."""
        self.say("$ LOCAL=1 make spawn   # ...then the terminal is closed (the spawner is killed)")
        before = len(self.ledger_rows())
        proc = self.start("spawn", *([f"ARGS={extra}"] if extra else []), merge_stderr=True)
        output = []
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            self.say("  " + line.rstrip())
            if "You can close this terminal" in line:
                os.killpg(proc.pid, signal.SIGKILL)
                break
        proc.wait()
        rows = self.ledger_rows()
        if len(rows) <= before:
            raise FlowError("spawn recorded no call ids:\n" + "".join(output))
        return rows[before:]


def run_flow(workdir: Path, say: Callable[[str], None] = print) -> dict:
    """Render, start the emulator, deploy, spawn (killed), wait, results, then the stale-code guard."""
    facts: dict = {}
    project_dir = workdir / "demo-project"
    say(f"Rendering the template with defaults into {project_dir}")
    render(project_dir)
    (project_dir / "tasks.jsonl").write_text(DEMO_TASKS + "\n")
    project = Project(project_dir, say)
    project.make("setup", local=False)
    project.make("local-up", local=False)
    try:
        project.make("deploy")
        spawned = project.spawn_then_close_terminal()
        facts["spawned"] = spawned
        if any(state != "pending" for _, _, state in spawned):
            raise FlowError(f"freshly spawned calls should be pending: {spawned}")
        say("The spawner is gone; the jobs keep running. From a fresh shell:")
        waited = project.make("wait", "ARGS=--json --interval 0.5")
        calls = json.loads(waited.stdout)
        facts["states"] = {c["task_id"]: c["state"] for c in calls}
        if set(facts["states"].values()) != {"succeeded"}:
            raise FlowError(f"not every task succeeded: {facts['states']}")
        project.make("results")
        results = {p.stem: json.loads(p.read_text()) for p in (project_dir / "results").glob("*.json")}
        facts["results"] = results
        if sorted(results) != sorted(t for t, _, _ in spawned):
            raise FlowError(f"results missing: {sorted(results)}")
        say(f"  {len(results)} results, e.g. pi-1000000 -> {results['pi-1000000']['pi']:.9f}")

        say("Editing the job without redeploying...")
        workload = next(project_dir.glob("*/workload.py"))
        workload.write_text(workload.read_text().replace('result = {"task_id"', 'result = {"code": "v2", "task_id"'))
        before = project.ledger_rows()
        refused = project.make("spawn", "ARGS=--force", check=False)
        facts["refused"] = refused
        message = next((line for line in refused.stderr.splitlines() if "make deploy" in line), "(no message)")
        say("  refused: " + message.strip())
        if refused.returncode == 0 or "make deploy" not in refused.stderr:
            raise FlowError(f"spawn onto a stale deployment was not refused:\n{refused.stdout}\n{refused.stderr}")
        if project.ledger_rows() != before:
            raise FlowError("a refused spawn changed the ledger")

        project.make("deploy")
        project.spawn_then_close_terminal("--force")
        project.make("wait", "ARGS=--interval 0.5")
        project.make("results")
        new = json.loads((project_dir / "results" / "pi-1000.json").read_text())
        facts["new_result"] = new
        if new.get("code") != "v2":
            raise FlowError(f"after redeploy the job still ran old code: {new}")
        say("  after `make deploy` the jobs ran the new code (result has code=v2)")

        say("A task that fails, and a long one that is cancelled:")
        more = [{"id": "bad", "fail_with": "bad luck"}, {"id": "long", "seconds": 120}]
        (project_dir / "more.jsonl").write_text("".join(json.dumps(task) + "\n" for task in more))
        project.make("spawn", "TASKS=more.jsonl")
        project.make("cancel", "ARGS=long")
        waited = project.make("wait", "ARGS=--json --interval 0.5", check=False)
        facts["final"] = {c["task_id"]: c for c in json.loads(waited.stdout)}
        facts["final_rc"] = waited.returncode
        for task in ("bad", "long"):
            say(f"  {task}: {facts['final'][task]['state']} ({facts['final'][task]['error']})")
        if waited.returncode == 0 or facts["final"]["bad"]["state"] != "failed":
            raise FlowError(f"a failing task was not reported as failed: {waited.stdout}")
    finally:
        project.make("local-down", local=False, check=False)
    return facts


# ------------------------------------------------- helpers of the e2e tests that break things
def tasks_file(project: Path, name: str, ids: list[str], **params) -> str:
    (project / name).write_text("".join(json.dumps({"id": i, **params}) + "\n" for i in ids))
    return name


def start_emulator(project: Project, *options: str) -> None:
    """The project's own emulator (installed by `make local-up`), with extra options."""
    python = project.path / ".venv" / "bin" / "python"
    cmd = [str(python), "-m", "modal_emu", "serve", "--state-dir", ".modal-local", "--detach", *options]
    subprocess.run(cmd, cwd=project.path, env=clean_env(), check=True, capture_output=True, timeout=60)


@pytest.fixture(autouse=True)
def own_ledger(monkeypatch, tmp_path):
    """Each test keeps its own ledger and results (the generated settings read these variables)."""
    monkeypatch.setenv("JOB_LEDGER", str(tmp_path / "ledger.sqlite3"))
    monkeypatch.setenv("JOB_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path


def ledger(project: Project) -> list[tuple[str, str, str]]:
    path = Path(os.environ["JOB_LEDGER"])
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        try:
            return list(db.execute("SELECT task_id, call_id, state FROM calls ORDER BY id"))
        except sqlite3.OperationalError:  # the spawner is creating the ledger right now
            return []
