"""The emulator's own process: the options a detached server gets, what its workers inherit,
what its log shows, and workers that die with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import APP_FILE, Emulator, free_port
from emu_helpers import wait_for
from modal_emu import __main__ as cli
from modal_emu.lifeline import alive

REAL_LOOKING = {"MODAL_TOKEN_ID": "ak-RealLookingTokenId123", "MODAL_TOKEN_SECRET": "as-RealLookingSecret456"}


def test_a_detached_server_gets_every_option(monkeypatch):
    """Every option of `serve`, set to something other than its default, survives --detach."""
    captured = {}
    monkeypatch.setattr(cli, "serve", lambda args: captured.setdefault("args", args) and 0)
    cli.main(["serve", "--state-dir", "s"])
    parser = captured.pop("args").parser
    argv = ["--detach"]
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "detach"):
            continue
        if action.nargs == 0:
            argv.append(action.option_strings[-1])
        else:
            value = "elsewhere" if action.type is None else action.type(action.default or 0) + 3
            argv += [action.option_strings[-1], str(value)]
    args = parser.parse_args(argv)
    again = parser.parse_args(cli.serve_argv(parser, args))
    given = {k: v for k, v in vars(args).items() if k != "detach"}
    assert {k: v for k, v in vars(again).items() if k != "detach"} == given
    assert again.detach is False  # the detached server runs in the foreground of its own process


@pytest.fixture(scope="module")
def extra_emu(tmp_path_factory):
    """An emulator started from a shell with real-looking Modal tokens, verbose, quick to scale down,
    and told not to mount Volumes."""
    saved = {k: os.environ.get(k) for k in REAL_LOOKING}
    os.environ.update(REAL_LOOKING)
    emu = Emulator(
        tmp_path_factory.mktemp("extra"), free_port(), "--verbose", "--scaledown-window", "0.3", "--no-mount-volumes"
    )
    try:
        emu.start()
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    emu.deployed = emu.modal("deploy", APP_FILE.name)
    yield emu
    emu.stop()


def test_verbose_reaches_the_detached_server(extra_emu):
    assert "DEBUG RPC AppPublish" in extra_emu.server_log()


def test_workers_get_placeholder_credentials_only(extra_emu):
    script = "import modal; print(modal.Function.from_name('emu-test', 'tokens').remote())"
    out = extra_emu.python(script)
    assert "local-emulator" in out and "RealLooking" not in out


def test_the_fallback_for_volume_mount_paths_is_said_once_at_deploy(extra_emu):
    text = " ".join((extra_emu.deployed.stdout + extra_emu.deployed.stderr).replace("│", " ").split())
    assert text.count("does not mount Volumes at their mount paths") == 1, text
    assert "MODAL_EMU_VOLUMES" in text and "--no-mount-volumes" in text


def test_idle_containers_are_stopped_without_errors(extra_emu):
    """Containers taken and released again within the short scaledown window, many times over:
    each is stopped once, after it really was idle for the window."""
    out = extra_emu.python(
        "import modal\n"
        "f = modal.Function.from_name('emu-test', 'square')\n"
        "for _ in range(3):\n"
        "    calls = [f.spawn(i) for i in range(40)]\n"
        "    print(sum(c.get(timeout=120) for c in calls))\n"
    )
    assert out.split() == [str(sum(x * x for x in range(40)))] * 3
    time.sleep(1.5)  # past the 0.3 s scaledown window: every container is reaped
    log = extra_emu.server_log()
    assert "Traceback" not in log and "Error" not in log, log[-3000:]


def test_workers_die_with_their_server(tmp_path):
    emu = Emulator(tmp_path / "state", free_port())
    emu.start()
    try:
        emu.modal("deploy", APP_FILE.name)
        marker = tmp_path / "marker"
        emu.python(f"import modal; modal.Function.from_name('emu-test', 'marker_after').spawn({str(marker)!r}, 4)")
        logs = emu.state_dir / "logs"
        running = f"started, will write {marker}"  # printed by the function itself
        assert wait_for(lambda: any(running in p.read_text() for p in logs.glob("*.log")), timeout=60)
        os.kill(emu.pid(), signal.SIGKILL)
        time.sleep(6)
        assert not marker.exists(), "a worker of the killed emulator finished its input"
    finally:
        emu.stop()


def test_a_stopping_server_leaves_files_that_are_not_its_own(tmp_path):
    """Its state folder deleted and another server's files in it by now: the first one's shutdown must
    not delete them (that left the second one unreachable and unstoppable by its files)."""
    emu = Emulator(tmp_path / "state", free_port())
    emu.start()
    pid = emu.pid()
    others = {"server.pid": "4242\n", "url": "http://127.0.0.1:1\n"}  # another server's, as it wrote them
    try:
        for name, text in others.items():
            (emu.state_dir / name).write_text(text)
        os.kill(pid, signal.SIGTERM)
        assert wait_for(lambda: not alive(pid), timeout=30), "the server did not stop"
        assert {name: (emu.state_dir / name).read_text() for name in others} == others
    finally:
        emu.stop()


def test_a_stopping_server_removes_its_own_files(tmp_path):
    emu = Emulator(tmp_path / "state", free_port())
    emu.start()
    emu.stop()
    assert not (emu.state_dir / "server.pid").exists() and not (emu.state_dir / "url").exists()


def test_two_detached_starts_at_once_share_one_server(tmp_path):
    """Two terminals' `make local-up` at the same instant: one server, and both say where it is (the
    second used to take the first, still starting, for a server whose files were deleted)."""
    state = tmp_path / "state"
    command = [sys.executable, "-m", "modal_emu", "serve", "--state-dir", str(state), "--detach"]
    starts = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        answers = [start.communicate(timeout=120) for start in starts]
        assert [start.returncode for start in starts] == [0, 0], answers
        assert len(cli.servers(state)) == 1
        assert sum("already running" in err for _, err in answers) == 1, answers
    finally:
        for pid in cli.servers(state):
            os.kill(pid, signal.SIGTERM)
            wait_for(lambda pid=pid: not alive(pid), timeout=30)
