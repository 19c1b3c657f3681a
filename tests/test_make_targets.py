"""The generated Makefile as a user drives it: with LOCAL=1 exported in the shell, `make local-down`'s
messages, and the certificate setting every uv call gets (here and in the template repo's Makefile)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest
from modal_emu.lifeline import alive

from tests.project import ROOT, Env, Project, clean_env

NOT_RUNNING = "LOCAL=1 but the local emulator is not running: run `make local-up` first"


def make(project: Project, *args: str, env: Env | None = None) -> subprocess.CompletedProcess:
    """`make ARGS` with no LOCAL of ours (a test sets it in ``env`` or ``args`` the way a user does)."""
    return project.make(*args, local=False, check=False, env=env)


@pytest.fixture(scope="module")
def project(projects) -> Project:
    """One rendered project with its environment, shared by the tests below (none starts the emulator)."""
    return projects.new("make")


@pytest.mark.parametrize("target", ["help", "setup", "local-down", "-n lint", "-n test"])
def test_exported_local_leaves_targets_that_do_not_talk_to_modal_alone(project, target):
    """`export LOCAL=1` once in the shell: the targets that manage the project or the emulator still work.
    (lint and test under make -n: the check would fire while make expands the recipes; running them is
    test_generated's job.)"""
    proc = make(project, *target.split(), env={"LOCAL": "1"})
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert "make local-up" not in proc.stderr


def test_local_preempt_without_the_emulator_says_how_to_start_it(project):
    proc = make(project, "local-preempt")
    assert proc.returncode != 0
    assert proc.stderr.splitlines()[0] == "the local emulator is not running: run `make local-up` first", proc.stderr


def test_setup_installs_uv_into_tools_when_the_machine_has_none(projects):
    """A machine with git, python3 and make only: `make setup` gets uv itself (dry run: the real install
    is the template repo's own bootstrap, which every fresh CI clone runs)."""
    project = projects.new("bare", setup=False)
    bare: Env = {"PATH": "/usr/bin:/bin", "UV": None}
    found = subprocess.run(["sh", "-c", "command -v uv"], env=project.command_env(env=bare), capture_output=True)
    if found.returncode == 0:
        pytest.skip("this machine has uv in /usr/bin or /bin")
    proc = make(project, "-n", "setup", env=bare)
    assert proc.returncode == 0, proc.stderr
    assert "python3 -m venv .tools" in proc.stdout and f"{project.path}/.tools/bin/uv sync" in proc.stdout, proc.stdout
    with_uv = make(project, "-n", "setup", env={"UV": "/opt/uv/uv"})  # a uv given (or on PATH): used as it is
    assert with_uv.returncode == 0 and "venv .tools" not in with_uv.stdout, with_uv.stdout


@pytest.mark.parametrize("where", ["environment", "command line"])
@pytest.mark.parametrize("target", ["deploy", "spawn", "status", "wait", "results", "cost", "cancel", "guard"])
def test_local_without_the_emulator_is_one_line_for_targets_that_talk_to_modal(project, target, where):
    if where == "environment":
        proc = make(project, target, env={"LOCAL": "1"})
    else:
        proc = make(project, target, "LOCAL=1")
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and NOT_RUNNING in lines[0], proc.stderr
    assert not (project.path / ".jobs").exists(), "nothing may run before the check"


@pytest.mark.parametrize("value", ["true", "yes", "2"])
def test_a_local_value_other_than_1_or_0_is_refused(project, value):
    """`LOCAL=true make deploy` must not quietly deploy to Modal itself."""
    proc = make(project, "deploy", env={"LOCAL": value})
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f'LOCAL must be 1 (the local emulator) or 0 (Modal), not "{value}"' in lines[0], lines


def test_local_0_means_modal(project):
    """LOCAL=0 is Modal itself: no emulator check (make -n: nothing is run, the check would fire)."""
    proc = make(project, "-n", "deploy", env={"LOCAL": "0"})
    assert proc.returncode == 0, proc.stderr
    assert "python -m modal_jobs deploy" in proc.stdout  # the CLI runs `modal deploy`


def test_local_down_says_not_running(project):
    proc = make(project, "local-down")
    assert proc.returncode == 0
    assert "not running" in proc.stdout + proc.stderr


def test_local_down_before_setup_creates_nothing(projects):
    fresh = projects.new("fresh", setup=False)
    proc = make(fresh, "local-down")
    assert proc.returncode == 0 and "not running" in proc.stdout + proc.stderr
    assert not (fresh.path / ".venv").exists() and not (fresh.path / ".modal-local").exists()


def test_local_down_stops_an_emulator_it_cannot_import(project):
    """`make setup` removes the emulator package from .venv (exact sync); its server.pid still says what to stop."""
    server = subprocess.Popen(["sleep", "120"], start_new_session=True)
    state = project.emulator_state
    try:
        state.mkdir(exist_ok=True)
        (state / "server.pid").write_text(f"{server.pid}\n")
        proc = make(project, "local-down")
        assert proc.returncode == 0, proc.stderr
        assert "stopped" in proc.stdout + proc.stderr
        assert server.wait(timeout=10) == -signal.SIGTERM
    finally:
        if server.poll() is None:
            server.kill()
        (state / "server.pid").unlink(missing_ok=True)


FAKE_UV = textwrap.dedent(
    """\
    #!/bin/sh
    # Stands in for uv: says which version it is, and shows which certificate settings it was given.
    if [ "$1" = "--version" ]; then echo "uv $FAKE_UV_VERSION (fake)"; exit 0; fi
    echo "fake-uv $1: UV_SYSTEM_CERTS=${UV_SYSTEM_CERTS-unset} UV_NATIVE_TLS=${UV_NATIVE_TLS-unset}"
    """
)


@pytest.fixture
def fake_uv(tmp_path) -> Path:
    path = tmp_path / "uv"
    path.write_text(FAKE_UV)
    path.chmod(0o755)
    return path


# A shell where the user set neither certificate variable.
NO_CERT_SETTINGS: Env = {"UV_SYSTEM_CERTS": None, "UV_NATIVE_TLS": None}


def template_repo_make(*args: str, env: Env) -> subprocess.CompletedProcess:
    """`make ARGS` in this template repository (not a generated project)."""
    full = {k: v for k, v in {**clean_env(), **env}.items() if v is not None}
    return subprocess.run(["make", *args], cwd=ROOT, env=full, capture_output=True, text=True, check=False, timeout=300)


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("0.13.9", "UV_SYSTEM_CERTS=1 UV_NATIVE_TLS=unset"),  # today's name only: no deprecation warning
        ("0.11.0", "UV_SYSTEM_CERTS=1 UV_NATIVE_TLS=unset"),  # the first uv that knows UV_SYSTEM_CERTS
        ("0.10.12", "UV_SYSTEM_CERTS=1 UV_NATIVE_TLS=1"),  # an older uv only knows the old name
        ("0.4.30", "UV_SYSTEM_CERTS=1 UV_NATIVE_TLS=1"),
    ],
)
@pytest.mark.parametrize("makefile", ["generated", "template repo"])
def test_uv_uses_the_system_certificate_store(project, fake_uv, version, expected, makefile):
    """Behind a TLS-intercepting proxy only the system store has the proxy's CA: every uv call must use it."""
    env = {**NO_CERT_SETTINGS, "FAKE_UV_VERSION": version}
    if makefile == "generated":
        proc = make(project, "setup", f"UV={fake_uv}", env=env)
    else:  # `make lint` of the template repo, with its environment taken as built (-o: never rebuilt here)
        proc = template_repo_make("-o", ".venv/.synced", "lint", f"UV={fake_uv}", env=env)
    assert proc.returncode == 0, proc.stderr
    calls = [line for line in proc.stdout.splitlines() if line.startswith("fake-uv")]
    assert calls and all(line.endswith(expected) for line in calls), proc.stdout


def test_the_real_uv_prints_no_deprecation_warning(project):
    """uv deprecated UV_NATIVE_TLS (it warns on every call); the Makefiles use its replacement."""
    runs = {
        "generated": make(project, "setup", env=NO_CERT_SETTINGS),
        # one uv call through the template repo's Makefile and its exported settings
        "template repo": template_repo_make(
            "--eval", "uv-call: ; @$(UV) pip list >/dev/null", "uv-call", env=NO_CERT_SETTINGS
        ),
    }
    for name, proc in runs.items():
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
        assert "deprecated" not in proc.stderr.lower(), f"{name}: {proc.stderr}"


def _emulator_servers(project: Project) -> list[int]:
    """The emulator servers running for the project's .modal-local, by their command lines (as ps shows them)."""
    script = "import sys; from modal_emu.__main__ import servers; print(*servers(sys.argv[1]))"
    python = str(project.path / ".venv" / "bin" / "python")
    found = subprocess.run([python, "-c", script, str(project.path / ".modal-local")], capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    return [int(pid) for pid in found.stdout.split()]


def test_deleting_the_state_folder_of_a_running_emulator_leaves_it_stoppable(projects):
    """A new user deletes .modal-local while the emulator runs (to start afresh): `make local-up` must not
    start a second server beside the first, and `make local-down` must still find and stop it."""
    project = projects.new("state-deleted")
    up = make(project, "local-up")
    assert up.returncode == 0, up.stderr
    first = int((project.path / ".modal-local" / "server.pid").read_text())
    try:
        shutil.rmtree(project.path / ".modal-local")

        again = make(project, "local-up")
        assert again.returncode != 0, "a second server was started beside the running one"
        error = [line for line in again.stderr.splitlines() if line.startswith("error:")]
        assert len(error) == 1 and f"an emulator (pid {first}) still serves" in error[0], again.stderr
        assert "make local-down" in error[0], error
        assert _emulator_servers(project) == [first]

        down = make(project, "local-down")
        assert down.returncode == 0 and f"stopped (pid {first})" in down.stdout + down.stderr, down.stderr
        assert not alive(first), "make local-down left the server running"

        fresh = make(project, "local-up")  # and now a new one starts, with its own files
        assert fresh.returncode == 0, fresh.stderr
        second = int((project.path / ".modal-local" / "server.pid").read_text())
        assert _emulator_servers(project) == [second] != [first]
        assert "stopped" in make(project, "local-down").stderr
        assert _emulator_servers(project) == []
    finally:
        for pid in (first, *_emulator_servers(project)):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
