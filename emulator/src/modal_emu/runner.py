"""Runs inputs in local "containers", honouring the function's timeout, retries and concurrency.

A container is ``python -m modal_emu.worker`` started in the deploy directory of
the function version a call was spawned on (the uploaded files, not the caller's
working copy), with the image's ENV, the Volume mapping and the secrets in its
environment. It runs inputs one after another and stays warm between them for
``--scaledown-window`` seconds. Its stdout/stderr go to the logs of the input it
is running. Each container is its own session, so cancel and timeout kill
everything it started; a killed or crashed container is replaced by a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from modal_proto import api_pb2

from . import notices, volumemounts
from .local import client_env
from .modal_context import APP_ID_ENV
from .worker import BATCH_ENV, CALL_ID_ENV, END_OF_INPUT, INPUT_ID_ENV, REPLY_FD_ENV, STARTED

if TYPE_CHECKING:
    from .core import Emulator

log = logging.getLogger("modal_emu")
GS = api_pb2.GenericResult
MAX_LINE = 1 << 16  # a container's output without a newline is logged in pieces of this many bytes
# How long a container stopped on purpose has for its @modal.exit methods before SIGKILL: on scale-down
# as on Modal; on emulator stop less, within the 10 s `modal_emu stop` waits for the server.
EXIT_GRACE_S = 30.0
STOP_GRACE_S = 5.0


class Container:
    """A worker process of one function version; like a Modal container it runs
    inputs one after another and stays warm for a while between them."""

    def __init__(
        self,
        key: tuple[str, str],
        proc: asyncio.subprocess.Process,
        notes: list[str],
        replies: asyncio.StreamReader,
        replies_pipe: asyncio.BaseTransport,
        fn: dict,
    ):
        self.key = key
        self.idle_s = fn.get("scaledown_window") or 0  # the function's scaledown_window, else the emulator's
        self.max_inputs = fn.get("max_inputs") or 0  # single_use_containers: 1
        self.inputs_run = 0
        self.proc = proc
        self.replies = replies  # the worker's protocol pipe: "started" and each result (worker.REPLY_FD_ENV)
        self.replies_pipe = replies_pipe
        self.exited = asyncio.ensure_future(proc.wait())
        self.current: tuple[str, str] | None = None
        self.last: tuple[str, str] | None = None  # what it prints after its last input (@modal.exit) goes there
        self.reaper: asyncio.TimerHandle | None = None  # stops it once it has been idle long enough
        self.pumps: list[asyncio.Future] = []
        self.notes = notes  # said once, in the log of the first input it runs
        self.started_at = time.time()
        self.preempted = False  # set by Runner.preempt: whatever this attempt does next, it is a preemption
        self.kill_timer: asyncio.TimerHandle | None = None  # a preemption's SIGKILL at the end of its grace
        self.kill_at = 0.0  # when (loop time)
        # set when the worker's END_OF_INPUT arrives on stdout / stderr: every line of the input is logged
        self.drained = {fd: asyncio.Event() for fd in (api_pb2.FILE_DESCRIPTOR_STDOUT, api_pb2.FILE_DESCRIPTOR_STDERR)}

    async def logs_complete(self, timeout: float = 5.0) -> None:
        if all(event.is_set() for event in self.drained.values()):
            return
        waits = [asyncio.ensure_future(event.wait()) for event in self.drained.values()]
        await asyncio.wait(waits, timeout=timeout)  # a worker that closed its stdout sends no marker
        for wait in waits:
            wait.cancel()

    async def close(self, grace_s: float = 0.0) -> None:
        """Stop the container. With a grace, as Modal stops one: the worker sees the end of its input
        stream and runs the class's ``@modal.exit`` methods; SIGKILL once it exits or the grace is over."""
        if grace_s > 0 and self.proc.returncode is None and self.proc.stdin is not None:
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), grace_s)
            except TimeoutError:
                pass
        if self.kill_timer is not None:  # once the group is gone its number may be reused: never kill it later
            self.kill_timer.cancel()
        _kill(self.proc)
        await self.proc.wait()
        await asyncio.gather(*self.pumps, return_exceptions=True)
        self.replies_pipe.close()


class Runner:
    def __init__(self, emu: Emulator):
        self.emu = emu
        self._slots: asyncio.Semaphore | None = None
        self._idle: dict[tuple[str, str], list[Container]] = {}
        self._function_slots: dict[str, asyncio.Semaphore] = {}  # a function's max_containers, by id and limit
        self._containers: set[Container] = set()
        self._tasks: set[asyncio.Task] = set()
        self._closing: set[asyncio.Task] = set()  # containers stopping in the background (their exit grace)

    @property
    def slots(self) -> asyncio.Semaphore:
        if self._slots is None:  # created inside the running loop
            self._slots = asyncio.Semaphore(self.emu.config.concurrency)
        return self._slots

    # ---------------------------------------------------------------- public
    def containers(self) -> list[Container]:
        """The live containers, busy or warm."""
        return [c for c in self._containers if c.proc.returncode is None]

    def submit(self, call_id: str, idx: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run_input(call_id, idx))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel(self, call_id: str) -> None:
        call = self.emu.store["calls"][call_id]
        call["cancelled"] = True
        for idx, item in call["inputs"].items():
            if item["status"] != "done":
                self._finish(call_id, idx, GS(status=GS.GENERIC_STATUS_TERMINATED, exception="cancelled"))
            for container in self._containers:
                if container.current == (call_id, idx):
                    _kill(container.proc)
        self.emu.store.save()
        await self.emu.notify_outputs(call_id)

    def preempt(self, call_id: str | None = None, grace_s: float = 30.0) -> list[tuple[str, str]]:
        """Take back the containers running inputs (of ``call_id``, or all), as Modal preempts one: an
        interrupt (SIGINT: KeyboardInterrupt in Python) now, SIGKILL after ``grace_s``, then the input is
        restarted from the beginning. A restart does not use up a retry; a result returned within the
        grace is kept."""
        hits = [c for c in self.containers() if c.current and not c.preempted and call_id in (None, c.current[0])]
        loop = asyncio.get_running_loop()
        for container in hits:
            container.preempted = True
            hit_call, idx = container.current
            self._log(hit_call, f"preempted input {idx} (modal-emu preempt): SIGINT now, SIGKILL in {grace_s:g} s")
            try:
                os.killpg(container.proc.pid, signal.SIGINT)
            except ProcessLookupError:
                continue
            container.kill_timer = loop.call_later(grace_s, _kill, container.proc)
            container.kill_at = loop.time() + grace_s
        return [c.current for c in hits if c.current]

    def finish_lost(self, call_id: str, idx: str) -> None:
        pid = self.emu.store["calls"][call_id]["inputs"][idx].get("pid")
        if pid and self._is_our_worker(pid):  # an orphan of the previous emulator: no one to report to
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        reason = "lost: the local Modal emulator stopped while this input was running; spawn it again"
        self._finish(call_id, idx, GS(status=GS.GENERIC_STATUS_INTERNAL_FAILURE, exception=reason))

    def _is_our_worker(self, pid: int) -> bool:
        """Pids are reused (and wrap around): only a worker of this state directory may be killed,
        never whatever process now has the number a dead emulator recorded."""
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:  # gone, not ours, or no /proc (macOS): workers die with their server anyway
            return False
        return b"modal_emu.worker" in argv and Path(cwd).is_relative_to(self.emu.store.root)

    async def shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for container in self._containers:
            if container.current is not None:  # a busy one is interrupted, as a preemption would (SIGINT)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(container.proc.pid, signal.SIGINT)
        closing = [self._close(c, STOP_GRACE_S) for c in list(self._containers)]
        await asyncio.gather(*closing, *self._closing, return_exceptions=True)

    # --------------------------------------------------------------- private
    def _finish(self, call_id: str, idx: str, result: api_pb2.GenericResult) -> None:
        item = self.emu.store["calls"][call_id]["inputs"][idx]
        if item["status"] == "done":
            return
        self.emu.store.put_payload(call_id, f"{idx}.out", result.SerializeToString())
        call = self.emu.store["calls"][call_id]
        call["finished"] = seq = call.get("finished", 0) + 1  # the order outputs finished in: a map's stream
        item.update(status="done", result_status=int(result.status), finished_at=time.time(), seq=seq)

    async def _run_input(self, call_id: str, idx: str) -> None:
        store = self.emu.store
        call = store["calls"][call_id]
        fn = call["spec"]  # the function as deployed when this call was spawned
        policy = fn.get("retry_policy") or {}
        retries = int(policy.get("retries", 0))
        delay = float(policy.get("initial_delay_ms", 1000)) / 1000
        item = call["inputs"][idx]
        while True:
            async with self._max_containers(fn), self.slots:
                if call.get("cancelled") or item["status"] == "done":
                    return
                # saved with the attempt's container, before the input reaches it (``_attempt``)
                item.update(status="running", started_at=item.get("started_at") or time.time())
                try:
                    result = await self._attempt(call_id, idx, fn)
                except Exception as exc:  # the process could not even start: fail, never hang
                    log.exception("%s: attempt could not start", call_id)
                    result = GS(status=GS.GENERIC_STATUS_FAILURE, exception=f"could not start the function: {exc}")
            if call.get("cancelled"):
                return
            if result is None:  # preempted: restarted on the same input, as Modal does; no retry used up
                item["preemptions"] = item.get("preemptions", 0) + 1
                item["status"] = "pending"
                store.save()
                continue
            failed = result.status != GS.GENERIC_STATUS_SUCCESS
            if failed and item["attempts"] - item.get("preemptions", 0) <= retries:
                self._log(call_id, f"attempt {item['attempts']} failed ({result.exception.strip()}); retrying")
                item["status"] = "pending"
                store.save()
                await asyncio.sleep(delay)
                delay = min(
                    delay * float(policy.get("backoff_coefficient", 2.0)),
                    float(policy.get("max_delay_ms", 60000)) / 1000,
                )
                continue
            if failed and retries:
                self._log(call_id, f"attempt {item['attempts']} failed ({result.exception.strip()}); no retries left")
            self._finish(call_id, idx, result)
            store.save()
            await self.emu.notify_outputs(call_id)
            return

    def _max_containers(self, fn: dict) -> asyncio.Semaphore | contextlib.nullcontext:
        """At most ``max_containers`` inputs of the function at once (one per container, as each runs one)."""
        if not (limit := fn.get("max_containers")):
            return contextlib.nullcontext()
        return self._function_slots.setdefault(f"{fn['id']}:{limit}", asyncio.Semaphore(limit))  # per deploy's limit

    async def _attempt(self, call_id: str, idx: str, fn: dict) -> api_pb2.GenericResult | None:
        """Run the input once in a container: its result, or None if it was preempted before it returned one."""
        emu = self.emu
        item = emu.store["calls"][call_id]["inputs"][idx]
        item["attempts"] = item.get("attempts", 0) + 1
        container = await self._container(fn)
        container.current = (call_id, idx)
        for event in container.drained.values():
            event.clear()
        pid = container.proc.pid
        # The server log's, never the call's: one line per input among the user's would push them out of `--tail`.
        log.debug("%s: attempt %s of input %s started in container %s", call_id, item["attempts"], idx, pid)
        while container.notes:
            self._log(call_id, container.notes.pop(0))
        # A generator's items, as it yields them (the worker creates the folder with the first one).
        chunks = emu.store.call_dir(call_id) / f"{idx}.chunks"
        shutil.rmtree(chunks, ignore_errors=True)  # an earlier attempt's
        item["pid"] = pid
        emu.store.save()  # running, and where: a restarted emulator reports it lost, never runs it twice
        function_input = emu.store.payload(call_id, f"{idx}.in")
        command = {
            "size": len(function_input),
            "chunks": str(chunks),
            "env": {CALL_ID_ENV: call_id, INPUT_ID_ENV: item["input_id"]},
        }
        try:
            container.proc.stdin.write((json.dumps(command) + "\n").encode() + function_input)
            await container.proc.stdin.drain()
            outcome, result = await self._outcome(container, fn["timeout_secs"], fn.get("startup_timeout_secs"))
            if outcome == "done":
                await container.logs_complete()
        finally:
            container.last, container.current = container.current, None
        container.inputs_run += 1
        if outcome == "done" and not container.preempted:
            if self.emu.config.container_idle_s > 0 and container.inputs_run != container.max_inputs:
                self._release(container)
            else:  # no warm containers: one process per input, stopped while its result goes back
                self._close_later(container)
            return result
        if container.preempted:  # what is left of its grace, for its @modal.exit methods
            await self._close(container, container.kill_at - asyncio.get_running_loop().time())
        else:
            await self._close(container)
        if container.preempted:
            return self._preempted(call_id, result, container.proc.returncode, chunks)
        if outcome == "startup timeout":
            message = f"the container did not start within startup_timeout ({fn['startup_timeout_secs']} s)"
            self._log(call_id, message)
            return GS(status=GS.GENERIC_STATUS_TIMEOUT, exception=message)
        if outcome == "timeout":
            message = f"Function timed out after {fn['timeout_secs']} seconds"
            self._log(call_id, message)
            return GS(status=GS.GENERIC_STATUS_TIMEOUT, exception=message)
        message = f"the function's container exited with code {container.proc.returncode} before returning"
        self._log(call_id, message)
        return GS(status=GS.GENERIC_STATUS_FAILURE, exception=message)

    def _preempted(
        self, call_id: str, result: api_pb2.GenericResult | None, returncode: int | None, chunks: Path
    ) -> api_pb2.GenericResult | None:
        """A preempted attempt's outcome: its result if it still returned one in the grace period; else
        None, a restart on the same input, unless it is a generator that has yielded items already (a
        restart would hand the caller a splice of two attempts): that input fails, saying so."""
        if result is not None and result.status == GS.GENERIC_STATUS_SUCCESS:
            self._log(call_id, "preempted, but the input returned within the grace period: its result is kept")
            return result
        why = result.exception.strip() if result is not None else f"exited with code {returncode}"
        if chunks.is_dir() and any(chunks.iterdir()):
            message = f"preempted ({why}) after the generator yielded items: not restarted, since its caller has them"
            self._log(call_id, message)
            return GS(status=GS.GENERIC_STATUS_INTERNAL_FAILURE, exception=message)
        if not self.emu.store["calls"][call_id].get("cancelled"):
            self._log(call_id, f"preempted ({why}); restarting on the same input")
        return None

    async def _outcome(
        self, container: Container, timeout: float, startup: float | None = None
    ) -> tuple[str, api_pb2.GenericResult | None]:
        """Wait for the input's result from the worker: ("done", result); ("exited", None) if the container
        dies before sending one; ("timeout", None) if the input runs past ``timeout`` seconds, or ("startup
        timeout", None) if it does not start within ``startup`` seconds (the container's imports and
        ``@modal.enter``); on a timeout the container is killed. As on Modal, the timeout counts from when
        the function starts executing, not from container start-up, which the worker reports first. A
        result the worker sent just before it died (a preemption's grace) still counts."""
        began, waiting_since = None, time.monotonic()
        reading: asyncio.Future | None = asyncio.ensure_future(_reply(container.replies))
        try:
            while True:
                waits = {container.exited} if reading is None else {reading, container.exited}
                if began is None:
                    left = max(waiting_since + startup - time.monotonic(), 0) if startup else None
                else:
                    left = max(began + timeout - time.monotonic(), 0) if timeout else None
                done, _ = await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                if reading is not None and reading in done:
                    kind, result = reading.result()
                    reading = None if kind == "closed" else asyncio.ensure_future(_reply(container.replies))
                    if kind == "started":
                        began = time.monotonic()
                    elif kind == "result":
                        return "done", result
                elif container.exited in done:
                    _kill(container.proc)  # its children too: then the pipe ends, and what was sent can be read
                    while reading is not None:
                        try:
                            kind, result = await asyncio.wait_for(reading, timeout=5)
                        except TimeoutError:
                            break
                        if kind == "result":
                            return "done", result
                        reading = None if kind == "closed" else asyncio.ensure_future(_reply(container.replies))
                    return "exited", None
                elif not done:
                    _kill(container.proc)
                    await container.exited
                    return ("timeout" if began is not None else "startup timeout"), None
        finally:
            if reading is not None:
                reading.cancel()

    async def _container(self, fn: dict) -> Container:
        """A warm container of this function version if one is idle, else a new one."""
        key = (fn["id"], fn["workdir"])
        idle = self._idle.get(key, [])
        while idle:
            container = idle.pop()
            if container.reaper is not None:
                container.reaper.cancel()
                container.reaper = None
            if container.proc.returncode is None:
                return container
        reply_from, reply_to = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "modal_emu.worker",
                fn["workdir"],
                fn["module_name"],
                fn.get("implementation_name") or fn["function_name"],
                cwd=fn["workdir"],
                env={**self._env(fn), REPLY_FD_ENV: str(reply_to)},
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                pass_fds=(reply_to,),
            )
        except BaseException:
            os.close(reply_from)
            raise
        finally:
            os.close(reply_to)
        replies = asyncio.StreamReader()
        pipe, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(replies), os.fdopen(reply_from, "rb", buffering=0)
        )
        notes = notices.for_container(fn, volumemounts_reason=self.mount_reason(fn))
        container = Container(key, proc, notes, replies, pipe, fn)
        container.pumps = [
            asyncio.ensure_future(self._pump(proc.stdout, container, api_pb2.FILE_DESCRIPTOR_STDOUT)),
            asyncio.ensure_future(self._pump(proc.stderr, container, api_pb2.FILE_DESCRIPTOR_STDERR)),
        ]
        self._containers.add(container)
        return container

    async def _close(self, container: Container, grace_s: float = 0.0) -> None:
        self._containers.discard(container)
        await container.close(grace_s)

    def _release(self, container: Container) -> None:
        """Keep a container warm for the next input; stop it after the idle window
        (taking it for an input cancels that, see ``_container``)."""
        self._idle.setdefault(container.key, []).append(container)
        loop = asyncio.get_running_loop()
        idle_s = container.idle_s or self.emu.config.container_idle_s
        container.reaper = loop.call_later(idle_s, self._reap, container)

    def _reap(self, container: Container) -> None:
        container.reaper = None
        self._idle[container.key].remove(container)
        self._close_later(container)

    def mount_problems(self, fn: dict) -> list[tuple[str, str, str]]:
        """(mount path, why, what to do) for each of this function's Volumes this machine cannot mount."""
        protected = [self.emu.store.root, Path(sys.prefix).resolve(), Path(sys.executable).resolve().parent]
        return volumemounts.problems(list(fn.get("volumes", {})), protected)

    def _close_later(self, container: Container) -> None:
        """Stop a container in the background, giving its ``@modal.exit`` methods their grace."""
        task = asyncio.ensure_future(self._close(container, EXIT_GRACE_S))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def mount_reason(self, fn: dict) -> str | None:
        """None if this function's Volumes appear at their mount paths in its containers, else why not."""
        if not self.emu.config.mount_volumes:
            why = "turned off with --no-mount-volumes"
        else:
            why = next((problem[1] for problem in self.mount_problems(fn)), None)
        return volumemounts.FALLBACK.format(why=why) if why else None

    def _env(self, fn: dict) -> dict[str, str]:
        emu = self.emu
        # Never the real Modal credentials of the shell that started the emulator: the placeholders below.
        env = {k: v for k, v in os.environ.items() if k not in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET")}
        env.update(fn.get("env", {}))
        for secret_id in fn.get("secret_ids", []):
            env.update(emu.store["secrets"].get(secret_id, {}).get("env", {}))
        volumes = {path: str(emu.store.volume_dir(name)) for path, name in fn.get("volumes", {}).items()}
        workdir = fn["workdir"]
        env.update(client_env(emu.server_url, emu.store.root))
        env.update(
            MODAL_EMU_SERVER_PID=str(os.getpid()),
            **{APP_ID_ENV: fn["app_id"], BATCH_ENV: str(fn.get("batch_max_size", 0))},
            MODAL_EMU_VOLUMES=json.dumps(volumes),
            MODAL_EMU_MOUNT_AT_PATHS=json.dumps(
                {"volumes": volumes, "scratch": str(emu.store.root / "mountns")}
                if volumes and self.mount_reason(fn) is None
                else {}
            ),
            PYTHONPATH=os.pathsep.join([workdir, env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            PYTHONUNBUFFERED="1",
        )
        return env

    async def _pump(self, stream: asyncio.StreamReader | None, container: Container, fd: int) -> None:
        """Copy a container's output, line by line, into the logs of the input it is running. Read in chunks
        and cut at newlines here: a line of any length passes (``readline`` gives up past 64 KiB: the pump
        stopped, and nothing more the container printed was read), one without a newline (a progress bar's
        ``\\r`` updates) is logged once it passes ``MAX_LINE``, and lines that arrived together are appended
        together."""
        assert stream is not None
        pending = b""
        while chunk := await stream.read(MAX_LINE):
            data = pending + chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0 and len(data) >= MAX_LINE:  # keep what may be the start of an END_OF_INPUT
                cut = len(data) - len(END_OF_INPUT)
            pending = data[cut:]
            if cut:
                self._log_output(container, fd, data[:cut])
        if pending:
            self._log_output(container, fd, pending)

    def _log_output(self, container: Container, fd: int, data: bytes) -> None:
        lines = [line + b"\n" for line in data.split(b"\n")]
        lines[-1] = lines[-1][:-1]  # what followed the last newline (nothing, or a line cut at MAX_LINE)
        texts = []
        for line in lines:
            if line.endswith(END_OF_INPUT):
                line = line[: -len(END_OF_INPUT)]
                container.drained[fd].set()
            if line:
                texts.append(line.decode(errors="replace"))
        if not texts:
            return
        if (where := container.current or container.last) is None:
            for text in texts:
                log.info("container %s: %s", container.proc.pid, text.rstrip())
            return
        call_id, idx = where
        self.emu.logs.append(self.emu.store["calls"][call_id], idx, fd, *texts)

    def _log(self, call_id: str, message: str) -> None:
        call = self.emu.store["calls"][call_id]
        self.emu.logs.append(call, None, api_pb2.FILE_DESCRIPTOR_INFO, f"[modal-emu] {message}\n")
        log.info("%s: %s", call_id, message)


async def _reply(replies: asyncio.StreamReader) -> tuple[str, api_pb2.GenericResult | None]:
    """The worker's next message: ("started", None), ("result", the input's GenericResult), or ("closed",
    None) once the pipe has ended (the worker is gone, or died while sending)."""
    try:
        header = await replies.readuntil(b"\n")
        if header == STARTED:
            return "started", None
        return "result", GS.FromString(await replies.readexactly(int(header.split()[1])))
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
        return "closed", None


def _kill(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the container's whole process group, even when the worker itself has exited already: a
    child it started must not outlive it (holding its output pipes open, or running beside a retry).
    While a member lives the group id cannot be reused, and an empty group is simply not found."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
