"""App versions: `Function.from_name(app, fn, version=N)` runs what deployment N deployed, whatever was
deployed since, as the spawner of a sweep pins it (issue 15); without a version, the newest deployment."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import modal
import modal.exception
import pytest
from conftest import Emulator, free_port
from emu_helpers import wait_for

APP_SOURCE = textwrap.dedent(
    """
    import time
    from pathlib import Path

    import modal

    VERSION = "{version}"
    app = modal.App("{app}")


    @app.function(timeout=120)
    def which(started="", gate=""):
        \"\"\"This version's name; with ``gate``, only once that file exists (after ``started`` is written).\"\"\"
        if started:
            Path(started).write_text("started")
        deadline = time.monotonic() + 100  # a safety net: the test creates the gate
        while gate and not Path(gate).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return VERSION


    @app.cls()
    class Tagged:
        label: str = modal.parameter()

        @modal.method()
        def which(self, started="", gate=""):
            return f"{{self.label}} on {{which.local(started, gate)}}"
    {extra}
    """
)


def deploy(emu, tmp_path: Path, app: str, version: str, tag: str, extra: str = "", check: bool = True):
    """`modal deploy --tag TAG` of the test app with ``VERSION = version``, from a folder of its own."""
    folder = tmp_path / f"{app}-{version}"
    folder.mkdir()
    (folder / "versioned_app.py").write_text(APP_SOURCE.format(version=version, app=app, extra=extra))
    return emu.modal("deploy", "versioned_app.py", "--tag", tag, cwd=folder, check=check)


def which(app: str, version: int | None = None) -> str:
    return modal.Function.from_name(app, "which", version=version).spawn().get(timeout=60)


def test_each_version_runs_its_own_code(emulator, tmp_path):
    deploy(emulator, tmp_path, "emu-versions", "v1", "a")
    started, gate = tmp_path / "started", tmp_path / "gate"
    running = modal.Function.from_name("emu-versions", "which", version=1).spawn(str(started), str(gate))
    unpinned = modal.Function.from_name("emu-versions", "which").hydrate()  # looked up before the redeploy
    assert wait_for(started.exists, timeout=60), "the v1 call never started"

    deploy(emulator, tmp_path, "emu-versions", "v2", "b")
    assert which("emu-versions", version=1) == "v1"
    assert which("emu-versions", version=2) == "v2"
    assert which("emu-versions") == "v2"  # without a version: the newest deployment
    assert unpinned.spawn().get(timeout=60) == "v2"  # a handle follows the app, as on Modal
    assert which("emu-versions", version=1) == "v1"  # v2's warm containers never take v1's inputs
    gate.write_text("open")
    assert running.get(timeout=60) == "v1"  # running through the redeploy, on the code it was spawned on

    history = json.loads(emulator.modal("app", "history", "emu-versions", "--json").stdout)
    assert [(h["version"], h["tag"]) for h in history] == [("v2", "b"), ("v1", "a")]


def test_a_class_instance_follows_the_newest_deployment(emulator, tmp_path):
    """A bound instance (a variant of the class) runs the newest published version at each call;
    a call already spawned keeps the version it was spawned on."""
    deploy(emulator, tmp_path, "emu-versions-cls", "v1", "a")
    tagged = modal.Cls.from_name("emu-versions-cls", "Tagged")(label="x")
    started, gate = tmp_path / "started", tmp_path / "gate"
    running = tagged.which.spawn(str(started), str(gate))
    assert wait_for(started.exists, timeout=60), "the v1 call never started"
    deploy(emulator, tmp_path, "emu-versions-cls", "v2", "b")
    assert tagged.which.remote() == "x on v2"
    gate.write_text("open")
    assert running.get(timeout=60) == "x on v1"


def test_an_unknown_version_is_not_found(emulator, tmp_path):
    deploy(emulator, tmp_path, "emu-versions-99", "v1", "only")
    with pytest.raises(modal.exception.NotFoundError) as failed:
        modal.Function.from_name("emu-versions-99", "which", version=99).hydrate()
    message = str(failed.value)
    assert "Lookup failed for Function 'which' from the 'emu-versions-99' app" in message
    assert "no version 99 (its only version is 1: `modal app history emu-versions-99`)" in message


def test_a_deploy_that_fails_half_way_changes_nothing(emulator, tmp_path):
    """FunctionCreate of `which` succeeds, then the deploy fails (a web endpoint, which the emulator
    refuses): nothing was published, so calls still run v1."""
    deploy(emulator, tmp_path, "emu-versions-half", "v1", "a")
    web = '\n@app.function()\n@modal.fastapi_endpoint()\ndef web():\n    return "web"\n'
    failed = deploy(emulator, tmp_path, "emu-versions-half", "v2", "b", extra=web, check=False)
    assert failed.returncode != 0 and "web endpoints" in failed.stdout + failed.stderr
    assert which("emu-versions-half") == "v1"
    history = json.loads(emulator.modal("app", "history", "emu-versions-half", "--json").stdout)
    assert [h["tag"] for h in history] == ["a"]


def test_versions_survive_a_restart(tmp_path):
    emu = Emulator(tmp_path / "state", free_port())
    emu.start()
    try:
        deploy(emu, tmp_path, "emu-versions-restart", "v1", "a")
        deploy(emu, tmp_path, "emu-versions-restart", "v2", "b")
        emu.stop()
        emu.start()
        deploy(emu, tmp_path, "emu-versions-restart", "v3", "c")
        script = textwrap.dedent(
            """
            import json, modal
            def which(version=None):
                f = modal.Function.from_name("emu-versions-restart", "which", version=version)
                return f.spawn().get(timeout=60)
            print(json.dumps([which(1), which(2), which(3), which()]))
            """
        )
        assert json.loads(emu.python(script)) == ["v1", "v2", "v3", "v3"]
    finally:
        emu.stop()
