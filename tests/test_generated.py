"""Rendered projects pass their own lint and tests (their own make targets), and their
modal_app.py carries the chosen settings as the real modal package reads them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tests.flow import gpu_types

MATRIX = {
    "defaults": {},
    "cpu-no-volume": {
        "project_name": "A Project Name That Is Long Enough To Push Lines Past The Limit",
        "gpu": "none",
        "use_volume": False,
        "python_version": "3.13",
        "retries": 0,
        "timeout_seconds": 86400,
        "function_name": "process_shard",
    },
    "pytorch-multi-gpu": {
        "project_name": "Torch Trainer",
        "workload": "pytorch",
        "gpu": "H100",
        "gpu_count": 2,
        "gpu_fallbacks": ["A100-80GB", "L40S"],
        "secrets": ["wandb"],
        "python_version": "3.10",
    },
    "a10-secrets": {
        "project_name": "Batch Infer",
        "gpu": "A10",
        "gpu_count": 8,
        "python_version": "3.12",
        "volume_name": "infer.cache",
        "secrets": ["hf", "s3-creds"],
        "retries": 10,
        "timeout_seconds": 1,
    },
}


@pytest.mark.parametrize("name", list(MATRIX))
def test_generated_project_passes_its_own_lint_and_tests(projects, name):
    project = projects.new(name, **MATRIX[name])  # rendered from the checkout's HEAD (+ local edits), set up
    project.make("lint", local=False)
    test = project.make("test", local=False)
    assert " passed" in test.stdout


GPUS = ["none", *gpu_types()]

READ_SETTINGS = textwrap.dedent(
    """
    import importlib.util, json, sys
    out = {}
    for path in sys.argv[1:]:
        sys.path.insert(0, path)
        spec = importlib.util.spec_from_file_location("app_" + str(len(out)), path + "/modal_app.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        info = module.run_job.info()
        out[path] = {"gpus": info.gpus, "timeout": info.timeout, "retries": info.max_retries,
                     "app": module.app.name, "volumes": sorted(info.volumes)}
        sys.path.remove(path)
    print(json.dumps(out))
    """
)


def test_every_gpu_choice_reaches_modal(render):
    """Read gpu, timeout and retries back from modal's own Function objects (no network)."""
    projects = {}
    for i, gpu in enumerate(GPUS):
        count = 1 if gpu in ("none", "T4") else (i % 8) + 1
        answers = {"project_name": f"Gpu Project {i}", "gpu": gpu, "timeout_seconds": 60 * (i + 1), "retries": i}
        if gpu != "none":
            answers["gpu_count"] = count
        projects[str(render(**answers))] = (gpu, count, answers)
    proc = subprocess.run([sys.executable, "-c", READ_SETTINGS, *projects], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    for path, (gpu, count, answers) in projects.items():
        got = seen[path]
        assert got["gpus"] == ([] if gpu == "none" else [[gpu, count]]), (gpu, got)
        assert got["timeout"] == answers["timeout_seconds"]
        assert got["retries"] == answers["retries"]
        assert got["app"] == f"gpu-project-{GPUS.index(gpu)}"
        assert got["volumes"] == ["/data"]
