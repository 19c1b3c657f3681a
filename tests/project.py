"""A generated project as the tests (and `make demo`) drive it.

``Project`` is the one wrapper for running a generated project's commands: its make targets
(``make``, ``start`` for one in the background) and, where a test must look inside, its venv's
Python (``python``). When the project's entry points change, this file is what moves. The
session-scoped factory that renders each answer set once is the ``projects`` fixture in
tests/conftest.py.

Tests that need a job to do more than the template's example (record what ran, wait for a file,
fail like a network) install ``tests/workloads/workload.py`` (``install_test_workload``); a test
that plays a user editing their code goes through ``edit``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from copier import run_copy

ROOT = Path(__file__).resolve().parent.parent
TEST_WORKLOAD = Path(__file__).resolve().parent / "workloads" / "workload.py"
# Where install_test_workload keeps the template's own workload, which the test workload calls.
EXAMPLE_WORKLOAD = "example_workload.py"
LEDGER_ROW = ("task_id", "call_id", "state")


Env = dict[str, str | None]


class FlowError(AssertionError):
    """A command of the generated project failed, or the flow saw something it should not."""


def render(dst: Path, **answers) -> Path:
    """``copier copy --defaults`` of this template, as a user runs it (no --trust)."""
    run_copy(str(ROOT), dst, data=answers, defaults=True, unsafe=False, quiet=True, vcs_ref="HEAD")
    return dst


def clean_env() -> dict[str, str]:
    """The environment of a fresh shell: no emulator variables, no virtualenv of ours, no LOCAL."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MODAL_", "VIRTUAL_ENV", "UV_PROJECT")) and k != "LOCAL"
    }
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    # The emulator costs nothing, and these runs have no terminal to confirm a Modal bill on:
    # spawn's cost check only prints (tests/test_sweeps.py sets a threshold to test it).
    env["JOB_COST_CONFIRM_USD"] = "inf"
    return env


def wait_until(condition: Callable[[], object], what: str, timeout: float = 120, interval: float = 0.1):
    """Poll ``condition`` until it is true and return its value. ``timeout`` is only a safety net
    against a hang: it fails the test with ``what`` never happened, it never decides a result."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting until {what}")
        time.sleep(interval)
    return value


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Project:
    """A rendered project: its commands, its ledger, its emulator.

    ``env`` is added to the environment of every command (e.g. a git source's URL redirection; a
    value of None removes that variable, here and in each command's ``env``);
    ``say`` is told each command as a user would type it (`make demo` prints them).
    """

    def __init__(self, path: Path, say: Callable[[str], None] = lambda s: None, env: Env | None = None):
        self.path = path
        self.say = say
        self.env = dict(env or {})

    # ------------------------------------------------------------------ running its commands
    def command_env(self, local: bool = False, env: Env | None = None) -> dict[str, str]:
        full = {**clean_env(), **self.env, **(env or {})}
        if local:
            full["LOCAL"] = "1"
        return {k: v for k, v in full.items() if v is not None}

    def shown(self, args: tuple[str, ...], local: bool) -> str:
        """The command as a user pastes it into a shell."""
        return ("LOCAL=1 " if local else "") + shlex.join(["make", *args])

    def make(
        self,
        *args: str,
        local: bool = True,
        check: bool = True,
        env: Env | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess:
        """`make ARGS...` in the project, as a script runs it (no terminal, nothing on stdin).
        ``local``: with LOCAL=1, i.e. against the project's emulator."""
        self.say("$ " + self.shown(args, local))
        proc = subprocess.run(
            ["make", *args],
            cwd=self.path,
            env=self.command_env(local, env),
            stdin=subprocess.DEVNULL,  # never a prompt that waits for a developer's terminal
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise FlowError(
                f"`{self.shown(args, local)}` failed ({proc.returncode}) in {self.path}:\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )
        return proc

    def start(
        self,
        *args: str,
        local: bool = True,
        merge_stderr: bool = False,
        env: Env | None = None,
        note: str = "",
        **popen,
    ) -> subprocess.Popen:
        """`make ARGS...` in the background, in its own session (as a terminal's foreground job is),
        so that a test can signal the whole group the way Ctrl+C or a closed terminal does."""
        self.say("$ " + self.shown(args, local) + (f"   # {note}" if note else ""))
        popen.setdefault("stdout", subprocess.PIPE)
        popen.setdefault("stderr", subprocess.STDOUT if merge_stderr else subprocess.PIPE)
        popen.setdefault("text", "stdin" not in popen)
        return subprocess.Popen(
            ["make", *args], cwd=self.path, env=self.command_env(local, env), start_new_session=True, **popen
        )

    def python(self, code: str, *args: str, env: Env | None = None, timeout: float = 120) -> str:
        """Run ``code`` with the project's venv (its package importable); its stdout. Fails on an error."""
        proc = subprocess.run(
            [str(self.path / ".venv" / "bin" / "python"), "-c", code, *args],
            cwd=self.path,
            env=self.command_env(env=env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise FlowError(f"python -c {code[:200]!r} failed in {self.path}:\n{proc.stderr[-4000:]}")
        return proc.stdout

    # ------------------------------------------------------------------ its files
    @property
    def package(self) -> Path:
        return next(p.parent for p in self.path.glob("*/workload.py"))

    def tasks_file(self, name: str, ids: list[str], **params) -> str:
        """A tasks file of these ids, each with ``params``; its name, for `TASKS=`."""
        (self.path / name).write_text("".join(json.dumps({"id": i, **params}) + "\n" for i in ids))
        return name

    def install_test_workload(self) -> None:
        """tests/workloads/workload.py in place of the package's workload.py, which it keeps beside it
        (as example_workload.py) and calls for the work itself."""
        package = self.package
        (package / "workload.py").rename(package / EXAMPLE_WORKLOAD)
        shutil.copyfile(TEST_WORKLOAD, package / "workload.py")

    def edit(self, relative: str, old: str, new: str) -> Callable[[], None]:
        """What a user does to their code: ``old`` (found exactly once) becomes ``new``. Returns a
        function that puts the file back."""
        path = self.path / relative
        original = path.read_text()
        count = original.count(old)
        if count != 1:
            raise FlowError(f"{relative}: expected {old!r} once, found it {count} times: the template changed?")
        path.write_text(original.replace(old, new))
        return lambda: path.write_text(original)

    @contextlib.contextmanager
    def edited(self, relative: str, old: str, new: str) -> Iterator[None]:
        restore = self.edit(relative, old, new)
        try:
            yield
        finally:
            restore()

    # ------------------------------------------------------------------ its ledger
    def ledger_path(self) -> Path:
        return Path(os.environ.get("JOB_LEDGER") or self.path / ".jobs" / "ledger.sqlite3")

    def ledger(self, *columns: str) -> list[tuple]:
        """These columns (default: task id, call id, state) of every call the ledger holds, oldest first."""
        path = self.ledger_path()
        if not path.exists():
            return []
        with contextlib.closing(sqlite3.connect(path)) as db:
            try:
                return list(db.execute(f"SELECT {', '.join(columns or LEDGER_ROW)} FROM calls ORDER BY id"))
            except sqlite3.OperationalError:  # the spawner is creating the ledger right now
                return []

    def results_dir(self) -> Path:
        return Path(os.environ.get("JOB_RESULTS_DIR") or self.path / "results")

    def spawn_then_close_terminal(self, *args: str) -> list[tuple[str, str, str]]:
        """Run `make spawn`, and kill it and its children the moment it says the jobs run."""
        before = len(self.ledger())
        note = "...then the terminal is closed (the spawner is killed)"
        proc = self.start("spawn", *args, merge_stderr=True, note=note)
        output = []
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            self.say("  " + line.rstrip())
            if "You can close this terminal" in line:
                os.killpg(proc.pid, signal.SIGKILL)
                break
        proc.wait()
        rows = self.ledger()
        if len(rows) <= before:
            raise FlowError("spawn recorded no call ids:\n" + "".join(output))
        return rows[before:]

    # ------------------------------------------------------------------ its emulator
    @property
    def emulator_state(self) -> Path:
        return self.path / ".modal-local"

    def up(self, *options: str) -> None:
        """`make local-up` (installs the emulator into the project's venv and starts it); with
        ``options``, the emulator is then started again with them."""
        self.make("local-up", local=False)
        if options:
            self.make("local-down", local=False)
            self.start_emulator(*options)

    def down(self) -> None:
        self.make("local-down", local=False, check=False)

    @contextlib.contextmanager
    def deployed(self, *options: str) -> Iterator[Project]:
        """The project's emulator up (with ``options``, see :meth:`up`) and the app deployed on it, for
        the duration; the emulator is stopped after, whatever happened."""
        self.up(*options)
        try:
            self.make("deploy")
            yield self
        finally:
            self.down()

    def start_emulator(self, *options: str) -> None:
        """The project's own emulator (installed by `make local-up`), with extra options."""
        python = self.path / ".venv" / "bin" / "python"
        cmd = [str(python), "-m", "modal_emu", "serve", "--state-dir", ".modal-local", "--detach", *options]
        subprocess.run(cmd, cwd=self.path, env=clean_env(), check=True, capture_output=True, timeout=60)

    def kill_emulator(self) -> None:
        """The emulator dies (SIGKILL): no clean shutdown, as when its machine goes away."""
        pid = int((self.emulator_state / "server.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), f"the emulator (pid {pid}) is gone", timeout=30)

    def emulator_env(self) -> dict[str, str]:
        """What LOCAL=1 sets for the modal client: this project's emulator."""
        return {
            "MODAL_SERVER_URL": (self.emulator_state / "url").read_text().strip(),
            "MODAL_TOKEN_ID": "local-emulator",
            "MODAL_TOKEN_SECRET": "local-emulator",
            "MODAL_CONFIG_PATH": str(self.emulator_state / "modal.toml"),
        }

    def wait_for_calls(self, call_ids: list[str], expired: bool = False, timeout: float = 300) -> None:
        """Until each call has finished (succeeded or failed) on the emulator, or with ``expired`` until
        its result has expired; asked with the real modal client directly, so that the project's
        ledger has not polled them."""
        args = [str(timeout), "expired" if expired else "finished", *call_ids]
        self.python(_AWAIT_CALLS, *args, env=self.emulator_env(), timeout=timeout + 60)

    def gate(self, name: str) -> str:
        """A file for the test workload's ``hold``: a job given it waits until ``release(name)``."""
        return str(self.path / "gates" / name)

    def release(self, name: str) -> None:
        gate = Path(self.gate(name))
        gate.parent.mkdir(exist_ok=True)
        gate.touch()

    def started(self) -> list[tuple[str, str]]:
        """(task, call id) of every execution that began, as the test workload records it."""
        return [
            tuple(marker.name.split("__", 1))  # type: ignore[misc]
            for marker in self.emulator_state.glob("**/started/*")
        ]


# Each call's outcome through modal's public API. A job's own failure, raised again here, also means
# it has finished; the API's failing (unreachable, no such call) stops the wait.
_AWAIT_CALLS = """
import sys, time, modal
from modal.exception import AuthError, ConnectionError, NotFoundError, OutputExpiredError
timeout, until, call_ids = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
expired = until == "expired"
give_up = time.monotonic() + timeout
for call_id in call_ids:
    while True:
        try:
            modal.FunctionCall.from_id(call_id).get(timeout=0 if expired else timeout)
            done = not expired
        except OutputExpiredError:
            done = True
        except (AuthError, ConnectionError, NotFoundError) as exc:
            sys.exit(f"{call_id}: the emulator did not answer: {exc!r}")
        except TimeoutError:  # not finished yet
            done = False
        except Exception:  # the job failed: it has finished
            done = not expired
        if done:
            break
        if time.monotonic() > give_up:
            sys.exit(f"{call_id} had not {until} after {timeout:.0f} s")
        time.sleep(0.1)
"""
