"""Volumes at their mount paths, mounted by the emulator itself, so code written for Modal
(``open("/data/x")``) runs unchanged: as root, as an unprivileged user (a user namespace), and a
deploy refused, in one line, where the machine cannot give a function its mount path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

import modal
import modal.exception
import modal_emu
import pytest
from modal_emu import volumemounts
from modal_emu.local import client_env, free_port
from modal_emu.local import stop as stop_emulator

NOBODY = 65534
APP_SOURCE = textwrap.dedent(
    """
    import os

    import modal

    app = modal.App("{app}")
    volume = modal.Volume.from_name("{app}-vol", create_if_missing=True)


    @app.function(volumes={{"{mount}": volume}})
    def write(name, text):
        with open(os.path.join("{mount}", name), "w") as f:
            f.write(text)
        volume.commit()
        return {{"uid": os.getuid(), "listed": sorted(os.listdir("{mount}"))}}
    """
)


def write_app(folder: Path, app: str, mount: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mounting_app.py"
    path.write_text(APP_SOURCE.format(app=app, mount=mount))
    return path


def test_a_mount_path_that_would_hide_the_emulator_is_refused_at_deploy(emulator, tmp_path):
    """One line naming the function, the path and what to do; nothing is published."""
    mount = str(emulator.state_dir.resolve())
    write_app(tmp_path, "emu-mount-refused", mount)
    out = emulator.modal("deploy", "mounting_app.py", cwd=tmp_path, check=False)
    text = " ".join((out.stdout + out.stderr).replace("│", " ").split())
    assert out.returncode != 0
    expected = f"function 'write': the local emulator cannot mount a Volume at {mount} ({mount} would hide {mount})"
    assert f"{expected}; mount the Volume at another path" in text
    with pytest.raises(modal.exception.NotFoundError):
        modal.Function.from_name("emu-mount-refused", "write").hydrate()


def test_where_no_mount_is_possible_the_deploy_is_refused_with_the_fix(monkeypatch):
    """The decision, for a machine without mount namespaces (this one has them)."""
    volumemounts.unavailable_reason.cache_clear()
    monkeypatch.setattr(sys, "platform", "darwin")
    try:

        class Runner:
            def mount_problems(self, fn):
                return volumemounts.problems(list(fn["volumes"]), [])

        functions = [{"function_name": "cpu", "volumes": {}}, {"function_name": "train", "volumes": {"/data": "v"}}]
        refusal = volumemounts.deploy_refusal(Runner(), functions)
    finally:
        volumemounts.unavailable_reason.cache_clear()
    assert refusal == (
        "function 'train': the local emulator cannot mount a Volume at /data (mount namespaces are Linux only, "
        f"this is darwin); {volumemounts.UNAVAILABLE_FIX}"
    )
    assert "\n" not in refusal and "--no-mount-volumes" in refusal


def test_as_root_a_function_writes_at_its_mount_path(emulator, tmp_path):
    if os.geteuid() != 0 or volumemounts.unavailable_reason() is not None:
        pytest.skip("needs root on a machine that can bind-mount")
    mount = f"/emu-root-mount-{uuid.uuid4().hex[:8]}"
    app = write_app(tmp_path, "emu-mount-root", mount)
    emulator.deploy(app)
    result = modal.Function.from_name("emu-mount-root", "write").remote("a.txt", "as root")
    assert result == {"uid": 0, "listed": ["a.txt"]}
    assert (emulator.state_dir / "volumes" / "emu-mount-root-vol" / "a.txt").read_text() == "as root"


def _python_for_nobody() -> str | None:
    """An interpreter of this Python version that the unprivileged user can start (the venv's may
    live in a folder only root can enter)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, shutil.which(version), f"/usr/bin/{version}"):
        if candidate and Path(candidate).exists():
            probe = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "sh", "-c", '"$0" -c ""']
            if subprocess.run([*probe, candidate], capture_output=True).returncode == 0:
                return candidate
    return None


@pytest.fixture
def unprivileged_emulator():
    """An emulator run by ``nobody``, with the same packages (this venv's, through PYTHONPATH)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to start an emulator as an unprivileged user")
    python = _python_for_nobody()
    if python is None:
        pytest.skip("no Python interpreter that the unprivileged user may run")
    state = Path(tempfile.mkdtemp(prefix="modal-emu-nobody-"))  # not under pytest's root-only tmp folder
    state.chmod(0o777)
    port = free_port()
    packages = [str(Path(modal.__file__).parents[1]), str(Path(modal_emu.__file__).parents[1])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(packages), "HOME": str(state)}
    command = [python, "-m", "modal_emu", "serve", "--detach", "--state-dir", str(state / "s"), "--port", str(port)]
    nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    started = subprocess.run([*nobody, *command], env=env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    try:
        yield state / "s", client_env(f"http://127.0.0.1:{port}", state / "s")
    finally:
        stop_emulator(state / "s")
        shutil.rmtree(state, ignore_errors=True)


def test_as_an_unprivileged_user_a_function_writes_at_its_mount_path(unprivileged_emulator, tmp_path):
    """In a user namespace, with a root of its own: the path is there for the function only,
    nothing is created on the machine, and the function runs with the user's own uid."""
    state, env = unprivileged_emulator
    mount = f"/emu-userns-{uuid.uuid4().hex[:8]}/data"
    write_app(tmp_path, "emu-mount-nobody", mount)
    deploy = subprocess.run(
        [sys.executable, "-m", "modal", "deploy", "mounting_app.py"],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    script = "import modal; print(modal.Function.from_name('emu-mount-nobody', 'write').remote('b.txt', 'as nobody'))"
    out = subprocess.run(
        [sys.executable, "-c", script], env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str({"uid": NOBODY, "listed": ["b.txt"]})
    written = state / "volumes" / "emu-mount-nobody-vol" / "b.txt"
    assert written.read_text() == "as nobody" and written.stat().st_uid == NOBODY
    assert not Path(mount).parent.exists()  # nothing was created on the machine
