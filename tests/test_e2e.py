"""The whole flow of a generated project with the real modal client and CLI against the emulator:
render -> local-up -> deploy -> spawn (spawner killed) -> wait from a fresh shell -> results,
then edit -> spawn refused by the guard -> deploy -> spawn runs the new code."""

from __future__ import annotations

import math
import subprocess

import pytest

from tests.flow import Project, clean_env, run_flow


@pytest.mark.e2e
def test_full_flow_survives_a_closed_terminal_and_guards_stale_code(projects):
    facts = run_flow(projects.new("e2e", setup=False))  # run_flow sets it up, as `make demo` does
    assert len(facts["spawned"]) == 4
    assert set(facts["states"].values()) == {"succeeded"}
    pi = facts["results"]["pi-1000000"]["pi"]
    assert math.isclose(pi, math.pi, abs_tol=1e-5)
    assert "code" not in facts["results"]["pi-1000"], "the first deployment must run the original code"
    assert facts["refused"].returncode != 0
    assert "deployed code" in facts["refused"].stderr and "make deploy" in facts["refused"].stderr
    assert facts["new_result"]["code"] == "v2"
    final = facts["final"]
    assert facts["final_rc"] != 0, "wait must fail when a task failed"
    assert final["bad"]["state"] == "failed" and "task bad: bad luck" in final["bad"]["error"]
    assert final["long"]["state"] == "cancelled"
    assert all(final[t]["state"] == "succeeded" for t in final if t.startswith("pi-"))


ECHO_MAKEFILE = 'wait spawn:\n\t@printf \'%s|\' $@ "LOCAL=$(LOCAL)" "ARGS=$(ARGS)" "TASKS=$(TASKS)"\n'


def test_demo_prints_each_command_as_it_can_be_pasted_into_a_shell(tmp_path):
    """`make demo` shows every command it runs; pasted into a shell, each must run exactly what the demo ran."""
    (tmp_path / "Makefile").write_text(ECHO_MAKEFILE)
    shown: list[str] = []
    project = Project(tmp_path, say=shown.append)
    ran = [project.make("wait", "ARGS=--json --interval 0.5").stdout]
    background = project.start("spawn", "TASKS=my tasks.jsonl", "ARGS=--force", note="then the terminal is closed")
    ran.append(background.communicate(timeout=60)[0])
    assert len(shown) == len(ran) == 2 and all(line.startswith("$ ") for line in shown), shown
    for line, output in zip(shown, ran, strict=True):
        pasted = subprocess.run(
            ["bash", "-c", line.removeprefix("$ ")], cwd=tmp_path, env=clean_env(), capture_output=True, text=True
        )
        assert pasted.returncode == 0 and pasted.stdout == output, (line, pasted.stdout, pasted.stderr, output)
    assert ran[0] == "wait|LOCAL=1|ARGS=--json --interval 0.5|TASKS=|"
