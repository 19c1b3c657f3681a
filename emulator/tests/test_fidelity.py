"""A running function is part of its app, as in a Modal container: through the real client, it calls
the rest of its app, gets hydrated objects as arguments and its own ids; a class's ``@modal.enter``
and ``@modal.exit`` run when Modal runs them; ``@modal.batched`` gets lists."""

from __future__ import annotations

import subprocess
import sys

import modal
import modal.exception
import pytest
from conftest import APP_FILE, Emulator
from emu_helpers import wait_for

APP_DIR = APP_FILE.parent
APP = "emu-fidelity"


def deploy_app(emu) -> None:
    """`modal deploy` of the app from a shell with a variable the emulator (and its containers) lack."""
    deploying = {**emu.env(), "FID_ONLY_AT_DEPLOY": "from-the-deploying-shell"}
    command = [sys.executable, "-m", "modal", "deploy", "emu_fidelity_app.py"]
    subprocess.run(command, env=deploying, cwd=APP_DIR, check=True, capture_output=True)


@pytest.fixture(scope="module")
def fidelity_app(emulator):
    deploy_app(emulator)
    return emulator


def test_a_function_calls_the_rest_of_its_app(fidelity_app):
    result = modal.Function.from_name(APP, "fan_out").remote(3)
    assert result == {"remote": 9, "spawn": 16, "map": [0, 1, 4], "cls": "keeper-in"}


def test_objects_passed_as_arguments_arrive_hydrated(fidelity_app):
    with modal.Dict.ephemeral() as d, modal.Queue.ephemeral() as q:
        d["from-caller"] = 41
        vol = modal.Volume.from_name("emu-fidelity-vol", create_if_missing=True).hydrate()
        with vol.batch_upload(force=True) as batch:
            batch.put_file(APP_FILE, "/seen.py")
        square = modal.Function.from_name(APP, "square").hydrate()  # a lookup is lazy: it pickles once hydrated
        result = modal.Function.from_name(APP, "use_objects").remote(d, q, square, vol)
        assert result == {"fn": 49, "vol": ["seen.py"]}
        assert d["from-inside"] == 42 and q.get(timeout=10) == "queued-inside"


def test_current_call_input_and_task_ids(fidelity_app):
    ids = modal.Function.from_name(APP, "ids")
    call = ids.spawn()
    seen = call.get(timeout=60)
    assert seen["call"] == call.object_id
    assert seen["input"].startswith("in-") and seen["task"].startswith("ta-")
    assert seen["local"] is False  # modal.is_local(): False inside a function, as on Modal
    assert seen["deploy_env"] == "from-the-deploying-shell"
    again = ids.remote()
    assert again["input"] != seen["input"] and again["call"] != seen["call"]


def test_batched_function_gets_lists_and_answers_each_input(fidelity_app):
    doubled = modal.Function.from_name(APP, "doubled")
    assert doubled.remote(3, 1) == 7
    assert list(doubled.map([1, 2, 3], [10, 20, 30])) == [12, 24, 36]
    tripled = modal.Cls.from_name(APP, "BatchedMethod")().tripled
    assert (tripled.remote(2), list(tripled.map([1, 5]))) == (6, [3, 15])


def _events(log) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_enter_once_then_exit_on_scale_down(fidelity_app, tmp_path):
    """With ``with_options(scaledown_window=1)``: the session's emulator keeps containers warm for 60 s."""
    log = tmp_path / "hooks.log"
    hooks = modal.Cls.from_name(APP, "Hooks").with_options(scaledown_window=1)(log=str(log))
    assert hooks.work.remote(1) == 2
    last = hooks.work.spawn(2)
    assert last.get(timeout=60) == 3
    assert wait_for(lambda: "exit" in _events(log), timeout=60), log.read_text()
    lines = log.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["enter", "work", "work", "exit"]
    assert len({line.split()[1] for line in lines}) == 1  # one container did all of it
    said = fidelity_app.modal("app", "logs", APP, "--function-call", last.object_id).stdout
    assert f"exit hook of {log} ran" in said  # what @modal.exit prints is in the app's logs


def test_exit_runs_when_the_emulator_stops(tmp_path):
    """In a warm container, and in a busy one (its input is interrupted, as by a preemption)."""
    emu = Emulator(tmp_path / "state", 0, "--scaledown-window", "600")
    emu.start()
    try:
        deploy_app(emu)
        idle_log, busy_log = tmp_path / "idle.log", tmp_path / "busy.log"
        script = (
            "import modal\n"
            f"hooks = modal.Cls.from_name({APP!r}, 'Hooks')\n"
            f"hooks(log={str(idle_log)!r}).work.remote(1)\n"
            f"hooks(log={str(busy_log)!r}).wait_for.spawn({str(tmp_path / 'never')!r})\n"
        )
        emu.python(script)
        assert wait_for(lambda: "waiting" in _events(busy_log), timeout=60)
        assert "exit" not in _events(idle_log) + _events(busy_log)  # warm and busy, not stopped
    finally:
        emu.stop()
    assert _events(idle_log)[-2] == "exit" and _events(busy_log)[-2] == "exit"


def test_exit_runs_on_preemption_within_the_grace(fidelity_app, tmp_path):
    log, release = tmp_path / "hooks.log", tmp_path / "release"
    call = modal.Cls.from_name(APP, "Hooks")(log=str(log)).wait_for.spawn(str(release))
    assert wait_for(lambda: "waiting" in _events(log), timeout=60)
    assert fidelity_app.preempt(call.object_id, grace_s=60)
    assert wait_for(lambda: _events(log).count("waiting") == 2, timeout=60), log.read_text()
    release.touch()
    assert call.get(timeout=60) == "released"
    events = [line.split() for line in log.read_text().splitlines()]
    first_pid = events[0][1]
    assert [e for e, pid in events if pid == first_pid] == ["enter", "waiting", "exit"]


def test_with_options_retries_secrets_env_and_volumes(fidelity_app, tmp_path):
    configurable = modal.Cls.from_name(APP, "Configurable")
    log = tmp_path / "flaky.log"
    assert configurable.with_options(retries=2)(log=str(log)).flaky.remote(2) == 3
    vol = modal.Volume.from_name("emu-fidelity-options", create_if_missing=True)
    secret = modal.Secret.from_dict({"FID_SECRET": "from-secret"})
    given = configurable.with_options(secrets=[secret], env={"FID_ENV": "from-env"}, volumes={"/fid-data": vol})
    call = given.with_options(gpu="A100")().env.spawn("FID_SECRET", "FID_ENV")
    assert call.get(timeout=60) == {
        "env": {"FID_SECRET": "from-secret", "FID_ENV": "from-env"},
        "volumes": ["/fid-data"],
    }
    said = fidelity_app.modal("app", "logs", APP, "--function-call", call.object_id).stdout
    assert "asks for GPU A100" in " ".join(said.split())
    assert "Warning" not in said  # the container's start-up (its app's hydration) says nothing of its own
    # the class itself is unchanged
    assert configurable().env.remote("FID_SECRET") == {"env": {"FID_SECRET": None}, "volumes": []}


def test_with_options_refuses_what_it_cannot_honour_by_name(fidelity_app):
    configurable = modal.Cls.from_name(APP, "Configurable")
    bucket = modal.CloudBucketMount("some-bucket")
    with pytest.raises(Exception, match=r"does not support cloud bucket mounts \(modal.CloudBucketMount\)"):
        configurable.with_options(volumes={"/bucket": bucket})().env.remote()


def test_max_containers_runs_one_input_at_a_time(fidelity_app, tmp_path):
    log = tmp_path / "one.log"
    overlaps = list(modal.Function.from_name(APP, "one_at_a_time").map([str(log)] * 2, [5.0] * 2))
    assert overlaps == [False, False]
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["start", "end", "start", "end"]


def _app_file(tmp_path, name: str, decorators: str) -> str:
    """A one-function app with these decorators, written into ``tmp_path``."""
    path = tmp_path / f"{name.replace('-', '_')}.py"
    path.write_text(f"import modal\n\napp = modal.App({name!r})\n\n\n{decorators}\ndef job():\n    return 1\n")
    return path.name


@pytest.mark.parametrize(
    ("decorators", "feature"),
    [
        ('@app.function(volumes={"/b": modal.CloudBucketMount("b")})', "cloud bucket mounts (modal.CloudBucketMount)"),
        ("@app.function()\n@modal.experimental.clustered(size=2)", "clustered functions"),
    ],
)
def test_deploy_refuses_a_feature_by_name(fidelity_app, tmp_path, decorators, feature):
    deploy = fidelity_app.modal("deploy", _app_file(tmp_path, "emu-refused", decorators), cwd=tmp_path, check=False)
    assert deploy.returncode != 0
    said = [line for line in (deploy.stdout + deploy.stderr).splitlines() if "does not support" in line]
    assert len(said) == 1 and feature in said[0] and "function 'job'" in said[0], deploy.stdout + deploy.stderr
    assert "emu-refused" not in fidelity_app.modal("app", "list").stdout  # nothing half-deployed


@pytest.mark.parametrize(
    ("decorators", "feature"),
    [
        ("@app.function(schedule=modal.Period(hours=1))", "schedules (modal.Period, modal.Cron) do not run"),
        ('@app.function(schedule=modal.Cron("0 * * * *"))', "schedules (modal.Period, modal.Cron) do not run"),
        ("@app.function(block_network=True)", "network restrictions"),
    ],
)
def test_deploy_warns_of_an_accepted_feature_it_does_not_carry_out(fidelity_app, tmp_path, decorators, feature):
    deploy = fidelity_app.modal("deploy", _app_file(tmp_path, "emu-warned", decorators), cwd=tmp_path)
    output = " ".join((deploy.stdout + deploy.stderr).split())  # the CLI wraps long warnings
    assert feature in output and "function 'job'" in output, output


def test_function_with_options_retries(fidelity_app, tmp_path):
    flaky = modal.Function.from_name(APP, "flaky")
    with pytest.raises(RuntimeError, match="attempt 1 fails on purpose"):
        flaky.remote(str(tmp_path / "plain.log"), 1)
    assert flaky.with_options(retries=1).remote(str(tmp_path / "retried.log"), 1) == 2


def test_a_function_deployed_under_another_name(fidelity_app):
    assert modal.Function.from_name(APP, "renamed_job").remote() == "renamed"


def test_single_use_containers(fidelity_app):
    pid = modal.Function.from_name(APP, "pid")
    assert pid.remote() != pid.remote()


def test_a_container_ends_as_an_interpreter_does(fidelity_app, tmp_path):
    """Its atexit handlers run and its open files are flushed when the container stops."""
    marker = tmp_path / "atexit"
    assert modal.Function.from_name(APP, "leaves_at_exit").remote(str(marker)) == "registered"
    buffered = tmp_path / "atexit.buffered"
    assert wait_for(lambda: marker.exists() and buffered.exists() and buffered.read_text() == "buffered\n", 60)
    assert wait_for(lambda: marker.read_text() == "atexit ran\n", 60)


def test_a_keyboard_interrupt_in_a_function_is_not_its_result(fidelity_app):
    """The caller gets a failure of the input, never a KeyboardInterrupt of its own."""
    try:
        modal.Function.from_name(APP, "interrupts_itself").remote()
    except KeyboardInterrupt:
        pytest.fail("the function's KeyboardInterrupt was raised in the caller")
    except Exception as exc:  # noqa: BLE001 - any failure of the input is right
        assert "KeyboardInterrupt" not in type(exc).__name__
    else:
        pytest.fail("the input succeeded")


def test_a_start_up_past_its_startup_timeout_fails(fidelity_app):
    with pytest.raises(modal.exception.FunctionTimeoutError, match="did not start within startup_timeout"):
        modal.Cls.from_name(APP, "NeverStarts")().run.remote()
