"""What happens around the calls: clients that go away, two clients at once, redeploys,
an emulator that crashes and comes back, and the --latency knob."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import grpclib.client
import modal
import modal.call_graph
import modal.exception
import pytest
from conftest import APP_FILE, Emulator, free_port
from emu_helpers import wait_for
from google.protobuf import empty_pb2
from modal_proto import api_grpc

SPAWN_SCRIPT = textwrap.dedent(
    """
    import json, sys, modal
    f = modal.Function.from_name("emu-test", sys.argv[1])
    calls = [f.spawn(*json.loads(a)) for a in sys.argv[2:]]
    print(json.dumps([c.object_id for c in calls]), flush=True)
    if sys.argv[1] == "echo":
        print(json.dumps([modal.FunctionCall.from_id(c.object_id).get(timeout=60) for c in calls]), flush=True)
    """
)


def spawner(emulator, function: str, *args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", SPAWN_SCRIPT, function, *[json.dumps(a) for a in args]],
        env=emulator.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_work_keeps_running_after_the_spawning_client_is_killed(emulator, tmp_path):
    marker = tmp_path / "survived"
    proc = spawner(emulator, "marker_after", [str(marker), 1.5])
    call_ids = json.loads(proc.stdout.readline())
    os.killpg(proc.pid, signal.SIGKILL)  # the terminal closes
    proc.wait()
    assert wait_for(marker.exists, timeout=30), "the spawned work died with its client"
    assert modal.FunctionCall.from_id(call_ids[0]).get(timeout=30) == str(marker)


def test_two_clients_at_once(emulator):
    procs = [spawner(emulator, "echo", *[[f"{who}-{i}"] for i in range(5)]) for who in ("a", "b")]
    outputs = [p.communicate(timeout=120) for p in procs]
    for who, (out, err) in zip("ab", outputs, strict=True):
        lines = out.strip().splitlines()
        assert len(lines) == 2, err
        assert [r["x"] for r in json.loads(lines[1])] == [f"{who}-{i}" for i in range(5)]


def test_a_redeploy_does_not_change_calls_already_spawned(emulator, tmp_path):
    """Spawned calls run the code deployed when they were spawned: stale stays stale."""
    app_v2 = tmp_path / "emu_stale_app.py"
    source = APP_FILE.read_text().replace('App("emu-test"', 'App("emu-stale"')
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / app_v2.name).write_text(source)
    emulator.modal("deploy", app_v2.name, "--tag", "one", cwd=tmp_path / "v1")
    old = modal.Function.from_name("emu-stale", "sleepy").spawn(1.0)
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / app_v2.name).write_text(source.replace('VERSION = "v1"', 'VERSION = "v2"'))
    emulator.modal("deploy", app_v2.name, "--tag", "two", cwd=tmp_path / "v2")
    new = modal.Function.from_name("emu-stale", "sleepy").spawn(0.1)
    assert old.get(timeout=30) == "v1"
    assert new.get(timeout=30) == "v2"
    history = json.loads(emulator.modal("app", "history", "emu-stale", "--json").stdout)
    assert [h["tag"] for h in history] == ["two", "one"]


def test_restart_after_a_crash(tmp_path):
    """Finished calls keep their results; calls that were running are reported lost, never hang."""
    emu = Emulator(tmp_path / "state", free_port())
    emu.start()
    try:
        emu.modal("deploy", APP_FILE.name)
        script = textwrap.dedent(
            """
            import json, modal
            done = modal.Function.from_name("emu-test", "echo").spawn("kept")
            done.get(timeout=60)
            running = modal.Function.from_name("emu-test", "marker_after").spawn("/nonexistent/x", 30)
            print(json.dumps([done.object_id, running.object_id]))
            """
        )
        proc = subprocess.run(
            [sys.executable, "-c", script], env=emu.env(), capture_output=True, text=True, check=True, timeout=120
        )
        done_id, running_id = json.loads(proc.stdout)
        log = emu.state_dir / "logs" / f"{running_id}.log"
        assert wait_for(lambda: log.exists() and "started" in log.read_text(), timeout=30)
        os.kill(emu.pid(), signal.SIGKILL)  # crash: no clean shutdown
        time.sleep(0.3)
        emu.start()
        check = textwrap.dedent(
            f"""
            import modal, modal.exception
            assert modal.FunctionCall.from_id("{done_id}").get(timeout=10) == {{"x": "kept", "version": "v1",
                                                                              "env": "from the image"}}
            try:
                modal.FunctionCall.from_id("{running_id}").get(timeout=10)
            except modal.exception.InternalFailure as exc:
                print("lost:", exc)
            """
        )
        out = subprocess.run([sys.executable, "-c", check], env=emu.env(), capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "lost: lost: the local Modal emulator stopped" in out.stdout
    finally:
        emu.stop()


@pytest.mark.parametrize("latency_ms", [300])
def test_latency_is_added_to_every_rpc(tmp_path, latency_ms):
    emu = Emulator(tmp_path / "state", free_port(), "--latency", str(latency_ms))
    emu.start()
    try:
        import asyncio

        async def hello() -> float:
            channel = grpclib.client.Channel("127.0.0.1", emu.port)
            stub = api_grpc.ModalClientStub(channel)
            started = time.monotonic()
            await stub.ClientHello(empty_pb2.Empty())
            channel.close()
            return time.monotonic() - started

        assert asyncio.run(hello()) >= latency_ms / 1000
    finally:
        emu.stop()


def test_binds_loopback_only(emulator):
    assert emulator.url.startswith("http://127.0.0.1:")
    assert (emulator.state_dir / "url").read_text().startswith("http://127.0.0.1:")


def test_spawn_onto_an_unknown_call_id(emulator):
    with pytest.raises(modal.exception.NotFoundError):
        modal.FunctionCall.from_id("fc-doesnotexist").get(timeout=0)


def test_results_expire_after_the_ttl(tmp_path):
    """Modal keeps results for 7 days; --result-ttl makes that testable."""
    emu = Emulator(tmp_path / "state", free_port(), "--result-ttl", "1")
    emu.start()
    try:
        emu.modal("deploy", APP_FILE.name)
        script = textwrap.dedent(
            """
            import time, modal, modal.exception
            call = modal.Function.from_name("emu-test", "echo").spawn(1)
            assert call.get(timeout=60)["x"] == 1
            time.sleep(1.5)
            try:
                modal.FunctionCall.from_id(call.object_id).get(timeout=0)
            except modal.exception.OutputExpiredError:
                print("expired")
            """
        )
        out = subprocess.run([sys.executable, "-c", script], env=emu.env(), capture_output=True, text=True, timeout=120)
        assert out.stdout.strip() == "expired", out.stderr
    finally:
        emu.stop()


def test_concurrency_limit(tmp_path):
    """With --concurrency 1 two spawned calls run one after the other, never together; meanwhile the
    call graph (FunctionCall.get_call_graph) tells the running input (it has a task) from the queued one."""
    emu = Emulator(tmp_path / "state", free_port(), "--concurrency", "1")
    emu.start()
    try:
        emu.modal("deploy", APP_FILE.name)
        a, b = tmp_path / "a", tmp_path / "b"
        script = textwrap.dedent(
            f"""
            import json, time, modal
            f = modal.Function.from_name("emu-test", "marker_after")
            calls = [f.spawn("{a}", 2.0), f.spawn("{b}", 1.0)]
            def phase(call):
                (info,) = call.get_call_graph()
                return int(info.status), info.task_id, info.function_name
            while not phase(calls[0])[1]:  # until the first input is in a container
                time.sleep(0.1)
            during = [phase(c) for c in calls]
            [c.get(timeout=60) for c in calls]
            print(json.dumps({{"during": during, "after": [phase(c) for c in calls]}}))
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", script], env=emu.env(), check=True, capture_output=True, text=True, timeout=120
        )
        graph = json.loads(out.stdout)
        (running, running_task, name), (queued, queued_task, _) = graph["during"]
        assert (running, queued, queued_task, name) == (0, 0, "", "marker_after")  # both pending, one queued
        assert running_task.startswith("ta-")
        assert [status for status, _, _ in graph["after"]] == [modal.call_graph.InputStatus.SUCCESS] * 2
        first, second = sorted([a, b], key=lambda p: p.stat().st_mtime)
        # each call sleeps 1 s before writing its marker: in series the markers are >= 1 s apart
        assert second.stat().st_mtime - first.stat().st_mtime >= 0.9
    finally:
        emu.stop()


def test_deploy_records_git_commit_info(emulator, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "emu_git_app.py").write_text(APP_FILE.read_text().replace('App("emu-test"', 'App("emu-git"'))
    (repo / ".gitignore").write_text("__pycache__/\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "init"]):
        subprocess.run([*git, *cmd], cwd=repo, check=True, capture_output=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    emulator.modal("deploy", "emu_git_app.py", "--tag", "g1", cwd=repo)
    history = json.loads(emulator.modal("app", "history", "emu-git", "--json").stdout)
    assert history[0]["tag"] == "g1"
    assert history[0]["commit"] == head[:7]
    with open(repo / "emu_git_app.py", "a") as f:
        f.write("\n# an uncommitted edit\n")
    emulator.modal("deploy", "emu_git_app.py", "--tag", "g2", cwd=repo)
    history = json.loads(emulator.modal("app", "history", "emu-git", "--json").stdout)
    assert [h["commit"] for h in history] == [head[:7] + "*", head[:7]]  # newest first, the dirty one marked


@pytest.fixture(scope="module")
def ephemeral_emu(tmp_path_factory):
    emu = Emulator(tmp_path_factory.mktemp("ephemeral"), free_port(), "--heartbeat-timeout", "2")
    emu.start()
    yield emu
    emu.stop()


class TestEphemeralRuns:
    """The problem this project exists for: `modal run` work dies with its terminal, unless detached."""

    @pytest.fixture
    def emu(self, ephemeral_emu):
        return ephemeral_emu

    def start_run(self, emu, marker, *flags: str, seconds: float = 4) -> subprocess.Popen:
        env = {**emu.env(), "MODAL_HEARTBEAT_INTERVAL": "0.5"}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modal",
                "run",
                *flags,
                APP_FILE.name,
                "--path",
                str(marker),
                "--seconds",
                str(seconds),
            ],
            cwd=APP_FILE.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started = f"started, will write {marker}"
        logs = emu.state_dir / "logs"
        assert wait_for(lambda: any(started in p.read_text() for p in logs.glob("*.log")), timeout=60), "never ran"
        return proc

    def test_a_completed_run_prints_its_result(self, emu, tmp_path):
        env = {**emu.env(), "MODAL_HEARTBEAT_INTERVAL": "0.5"}
        out = subprocess.run(
            [sys.executable, "-m", "modal", "run", APP_FILE.name],
            cwd=APP_FILE.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert "RESULT {'x': 'cli'" in out.stdout

    def test_ctrl_c_kills_the_remote_work(self, emu, tmp_path):
        marker = tmp_path / "marker"
        proc = self.start_run(emu, marker)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
        time.sleep(5)
        assert not marker.exists(), "the ephemeral app's work outlived Ctrl+C"

    def test_a_closed_terminal_kills_the_remote_work(self, emu, tmp_path):
        marker = tmp_path / "marker"
        proc = self.start_run(emu, marker, seconds=8)  # well past the 2 s heartbeat timeout
        os.killpg(proc.pid, signal.SIGKILL)  # no disconnect is sent: only the heartbeats stop
        proc.wait()
        time.sleep(9)
        assert not marker.exists(), "the ephemeral app's work outlived its client"

    def test_a_detached_run_survives_a_closed_terminal(self, emu, tmp_path):
        marker = tmp_path / "marker"
        proc = self.start_run(emu, marker, "--detach")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert wait_for(marker.exists, timeout=30), "the detached run died with its client"


def test_a_state_folder_of_the_previous_layout_still_serves_its_calls(tmp_path):
    """Before call payloads moved into state.sqlite3 they were files (calls/<fc-id>/<idx>.in and .out): a
    finished call of such a folder keeps its result, and an input that had not started runs from its file."""
    emu = Emulator(tmp_path / "state", free_port())
    emu.start()
    try:
        emu.modal("deploy", APP_FILE.name)
        script = (
            "import json, modal; f = modal.Function.from_name('emu-test', 'echo'); "
            "calls = [f.spawn(x) for x in ('kept', 'rerun')]; [c.get(timeout=60) for c in calls]; "
            "print(json.dumps([c.object_id for c in calls]))"
        )
        kept, rerun = json.loads(emu.python(script))
        emu.stop()
        with sqlite3.connect(emu.state_dir / "state.sqlite3") as db:  # back to the previous layout
            for key, data in db.execute("SELECT key, data FROM payloads").fetchall():
                (emu.state_dir / "calls" / key).parent.mkdir(parents=True, exist_ok=True)
                (emu.state_dir / "calls" / key).write_bytes(data)
            db.execute("DELETE FROM payloads")
            (row,) = db.execute("SELECT data FROM rows WHERE tbl = 'calls' AND key = ?", (rerun,)).fetchone()
            call = json.loads(row)  # that emulator stopped before this input started
            first = call["inputs"]["0"]
            call["inputs"]["0"] = {"input_id": first["input_id"], "created_at": first["created_at"]}
            call["inputs"]["0"].update(status="pending", attempts=0)
            db.execute("UPDATE rows SET data = ? WHERE tbl = 'calls' AND key = ?", (json.dumps(call), rerun))
        (emu.state_dir / "calls" / rerun / "0.out").unlink()
        emu.start()
        check = f"import modal; print([modal.FunctionCall.from_id(i).get(timeout=60)['x'] for i in {[kept, rerun]!r}])"
        assert emu.python(check).strip() == "['kept', 'rerun']"
    finally:
        emu.stop()
