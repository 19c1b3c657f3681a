"""The whole flow of a generated project with the real modal client and CLI against the emulator:
render -> local-up -> deploy -> spawn (spawner killed) -> wait from a fresh shell -> results,
then edit -> spawn refused by the guard -> deploy -> spawn runs the new code."""

from __future__ import annotations

import math

import pytest

from tests.flow import run_flow

pytestmark = pytest.mark.e2e


def test_full_flow_survives_a_closed_terminal_and_guards_stale_code(tmp_path):
    facts = run_flow(tmp_path, say=lambda line: None)
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
