"""The PyTorch workload of a rendered project, on the CPU: the project's own workload tests, then the
deployed app on the emulator with the real modal client. An attempt that dies after a checkpoint is
retried by the function's retry policy and resumes from that checkpoint; a task that needs several
chained calls completes; both end bit-identical to an uninterrupted run with the same seed. A preempted
attempt (the emulator's `preempt`) saves when interrupted and its restart resumes from that step.

torch is not in the dev environment: `make test-torch` runs this file in .venv-torch (pip, torch==2.13.0)
with REQUIRE_TORCH=1; a plain `make test` skips it and says why.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

if os.environ.get("REQUIRE_TORCH") != "1":
    pytest.importorskip("torch", reason="torch is not installed here: `make test-torch` runs these tests")
else:
    import torch  # noqa: F401 - `make test-torch` must fail, not skip, without torch

from modal_emu import local, preempt  # noqa: E402

from tests.flow import ROOT, clean_env, render  # noqa: E402

pytestmark = pytest.mark.e2e

PACKAGE = "torch_trainer"
SMALL = {
    "batch_size": 8,
    "context": 16,
    "d_model": 32,
    "n_layers": 1,
    "n_heads": 2,
    "lr": 3e-3,
    "warmup_steps": 2,
    "eval_every": 2,
    "checkpoint_every": 2,
}
TASKS = [
    {"id": "whole-6", "steps": 6, **SMALL},
    {"id": "killed", "steps": 6, **SMALL, "crash_once_at_step": 3},
    {"id": "whole-3", "steps": 3, **SMALL},
    {"id": "chained", "steps": 3, **SMALL, "budget_seconds": 0},
]
TRAINING = ("steps", "final", "history", "sample", "weights_sha256")

# Spawns the tasks on the deployed function and follows each call's chain of links to its result.
DRIVER = f"""
import json, sys
import modal
from {PACKAGE} import continuation, guard, settings

fn = modal.Function.from_name(settings.APP_NAME, settings.FUNCTION_NAME)
calls = {{t["id"]: fn.spawn(t, expected_code_hash=guard.code_hash()).object_id for t in json.loads(sys.argv[1])}}
out = {{}}
for task_id, call_id in calls.items():
    links = [call_id]
    while True:
        value = modal.FunctionCall.from_id(links[-1]).get(timeout=600)
        following = continuation.link_target(value)
        if following is None:
            break
        links.append(following)
    out[task_id] = {{"links": links, "result": value}}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return render(
        tmp_path_factory.mktemp("torch") / "project",
        project_name="Torch Trainer",
        workload="pytorch",
        gpu="none",
        timeout_seconds=600,
        retries=2,
    )


def run(cmd: list[str], cwd, env=None, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd[:4])} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def test_the_projects_own_workload_tests_run_and_pass_with_torch(project):
    tests = ["tests/test_workload.py", "tests/test_continuation.py"]
    proc = run([sys.executable, "-m", "pytest", *tests, "-rs", "-p", "no:cacheprovider"], cwd=project)
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout


@pytest.fixture(scope="module")
def deployed(project, tmp_path_factory):
    """The project deployed on an emulator whose containers run this Python (with torch) on one thread."""
    state = tmp_path_factory.mktemp("emulator")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")  # the containers inherit it: quick on a busy machine, same arithmetic
        url = local.start_detached(state)
    env = {**clean_env(), **local.client_env(url, state)}
    try:
        code_hash = run([sys.executable, "-c", f"from {PACKAGE} import guard; print(guard.code_hash())"], project)
        run([sys.executable, "-m", "modal", "deploy", "modal_app.py", "--tag", code_hash.stdout.strip()], project, env)
        yield project, env, state
    finally:
        local.stop(state)


@pytest.fixture(scope="module")
def outcomes(deployed):
    project, env, _ = deployed
    proc = run([sys.executable, "-c", DRIVER, json.dumps(TASKS)], project, env)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def training(result: dict) -> dict:
    return {k: result[k] for k in TRAINING}


def test_a_killed_attempt_is_retried_and_resumes_from_its_checkpoint(deployed, outcomes):
    _, _, state = deployed
    killed, whole = outcomes["killed"], outcomes["whole-6"]
    assert len(killed["links"]) == 1, "a retry, not a continuation"
    result = killed["result"]
    assert result["calls"] == 2 and result["resumed_from"] == 2, "the retry started from the step-2 checkpoint"
    assert list(state.glob("volumes/*/outputs/killed/crashed-at-step-3")), "the first attempt really died"
    assert training(result) == training(whole["result"])
    assert whole["result"]["history"][-1]["val_loss"] < whole["result"]["history"][0]["val_loss"]
    # What ran, as the result tells it through the real client: the corpus, throughput and MFU fields.
    assert whole["result"]["corpus"]["name"].endswith("-stdlib") and whole["result"]["corpus"]["val_bytes"] > 0
    assert whole["result"]["mfu"] is None and "GPU's peak" in whole["result"]["mfu_basis"], "blank on the CPU"
    assert whole["result"]["flops_per_token"] > 0 and whole["result"]["tokens_per_second"] is None, "6 steps < warm-up"


def test_a_task_longer_than_its_deadline_completes_in_a_chain_of_calls(outcomes):
    chained, whole = outcomes["chained"], outcomes["whole-3"]
    assert len(chained["links"]) == 3 and len(set(chained["links"])) == 3, "three calls, one step each"
    assert chained["result"]["resumed_from"] == 2 and chained["result"]["calls"] == 3
    assert training(chained["result"]) == training(whole["result"])
    result = chained["result"]
    assert result["device"] == "cpu" and result["warmup_steps"] == 3 and result["warmup_seconds"] > 0
    assert result["tokens_per_second"] is None, "one step a call is all warm-up: no steady state to report"


PREEMPTED = {"id": "preempted", "steps": 3000, **SMALL, "eval_every": 1000, "checkpoint_every": 25}
SPAWN = f"""
import json, sys
import modal
from {PACKAGE} import guard, settings

fn = modal.Function.from_name(settings.APP_NAME, settings.FUNCTION_NAME)
print(fn.spawn(json.loads(sys.argv[1]), expected_code_hash=guard.code_hash()).object_id)
"""
GET = "import sys, json, modal; print(json.dumps(modal.FunctionCall.from_id(sys.argv[1]).get(timeout=600)))"


def test_a_preempted_attempt_saves_when_interrupted_and_the_restart_resumes_there(deployed):
    """`make local-preempt` mid-training: SIGINT, a checkpoint at the step reached, Interrupted, then
    the restart resumes from that step instead of from the last periodic checkpoint or from zero."""
    project, env, state = deployed
    call_id = run([sys.executable, "-c", SPAWN, json.dumps(PREEMPTED)], project, env).stdout.strip().splitlines()[-1]
    deadline = time.monotonic() + 300
    while not list(state.glob("volumes/*/outputs/preempted/checkpoints/*")):  # training has begun
        assert time.monotonic() < deadline, "the task never saved its first checkpoint"
        time.sleep(0.02)
    pid = int((state / "server.pid").read_text())
    assert [c for c, _ in preempt.ask(state, pid, call_id, grace_s=60)] == [call_id]
    result = json.loads(run([sys.executable, "-c", GET, call_id], project, env).stdout.strip().splitlines()[-1])
    log = (state / "logs" / f"{call_id}.log").read_text()
    stopped = re.search(r"stopped by SIGINT after step (\d+)", log)
    assert stopped, log[-3000:]
    assert result["calls"] == 2 and result["resumed_from"] == int(stopped.group(1)) and result["steps"] == 3000
    assert "; restarting on the same input" in log


def test_the_gpu_benchmark_measures_through_the_projects_own_workload(project, tmp_path):
    """bench/bench_torch.py --cpu: the same measurement as on a GPU, where MFU stays blank."""
    figures = tmp_path / "bench.json"
    bench = [sys.executable, "bench/bench_torch.py", "--cpu", "--presets", "tiny", "--steps", "3"]
    proc = run(
        [*bench, "--project", str(project), "--json", str(figures)],
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    (row,) = json.loads(figures.read_text())
    assert (row["preset"], row["device"], row["steady_steps"], row["warmup_steps"]) == ("tiny", "cpu", 3, 10)
    assert row["tokens_per_second"] > 0 and row["mfu"] is None and "tokens/s over 3 steps" in proc.stdout
