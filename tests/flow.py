"""The whole user flow of a generated project, against the local emulator.

Shared by ``make demo`` (tests/demo.py, readable output) and the end-to-end test
(tests/test_e2e.py, which asserts on every step): one implementation of the flow.
"""

from __future__ import annotations

import json

import jinja2

from tests.project import ROOT, FlowError, Project, clean_env, render

# tests/demo.py and tests/test_torch_workload.py import these from here.
__all__ = ["ROOT", "FlowError", "Project", "clean_env", "gpu_types", "render", "run_flow"]

# Tasks that take a moment, so that they are still running when the spawner is killed.
DEMO_TASKS = "\n".join(
    json.dumps({"id": f"pi-{n}", "n": n, "seconds": 1.5}) for n in (1_000, 10_000, 100_000, 1_000_000)
)


def gpu_types() -> list[str]:
    """The GPU types copier.yml offers, from the one place they are written (includes/names.jinja)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROOT))
    return list(env.get_template("includes/names.jinja").module.gpu_types)


def run_flow(project: Project) -> dict:
    """On a freshly rendered project (defaults): set up, start the emulator, deploy, spawn (killed),
    wait, results, then the stale-code guard. Each step is told to ``project.say``."""
    facts: dict = {}
    say, project_dir = project.say, project.path
    (project_dir / "tasks.jsonl").write_text(DEMO_TASKS + "\n")
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
        results = {p.stem: json.loads(p.read_text()) for p in project.results_dir().glob("*.json")}
        facts["results"] = results
        if sorted(results) != sorted(t for t, _, _ in spawned):
            raise FlowError(f"results missing: {sorted(results)}")
        say(f"  {len(results)} results, e.g. pi-1000000 -> {results['pi-1000000']['pi']:.9f}")

        say("Editing the job without redeploying...")
        workload = project.package.relative_to(project_dir) / "workload.py"
        project.edit(str(workload), 'result = {"task_id"', 'result = {"code": "v2", "task_id"')
        before = project.ledger()
        refused = project.make("spawn", "ARGS=--force", check=False)
        facts["refused"] = refused
        message = next((line for line in refused.stderr.splitlines() if "make deploy" in line), "(no message)")
        say("  refused: " + message.strip())
        if refused.returncode == 0 or "make deploy" not in refused.stderr:
            raise FlowError(f"spawn onto a stale deployment was not refused:\n{refused.stdout}\n{refused.stderr}")
        if project.ledger() != before:
            raise FlowError("a refused spawn changed the ledger")

        project.make("deploy")
        project.spawn_then_close_terminal("ARGS=--force")
        project.make("wait", "ARGS=--interval 0.5")
        project.make("results")
        new = json.loads((project.results_dir() / "pi-1000.json").read_text())
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
