"""A container: ``python -m modal_emu.worker ROOT MODULE FUNCTION``.

Imports MODULE from the deployed files in ROOT once and, as Modal's container entrypoint
does, hydrates the function's app (``modal_context``: where it reads modal's container
internals); a class's ``@modal.enter`` methods run then. It runs inputs one after
another, each with its call and input ids as the execution context, and when its stdin
ends (scale-down, emulator stop, preemption) runs the class's ``@modal.exit`` methods and
exits. Each input is a JSON line on stdin (its size, a directory for generator
output, its environment) followed by the ``FunctionInput``'s bytes; the worker
calls the undecorated FUNCTION with the input's arguments and sends back a
``GenericResult`` (the return value, or the exception with its traceback,
serialized as modal's client expects). A generator's items go to numbered files in
that directory, and its result is a ``GeneratorDone``.

The worker talks back on a pipe of its own (the file descriptor in
``MODAL_EMU_REPLY_FD``), never on the user's stdout: ``STARTED`` when the function
is called (its timeout counts from there), then ``R <size>`` and the result's
bytes. After each input it writes ``END_OF_INPUT`` on stdout and stderr, so the
emulator knows it has every line the input printed.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import inspect
import json
import os
import signal
import sys
import traceback
import warnings
from pathlib import Path

from modal._serialization import deserialize_data_format, deserialize_params, serialize, serialize_data_format
from modal.exception import InvalidError
from modal_proto import api_pb2

from . import modal_context
from .lifeline import die_with_parent
from .service_class import PARAMS_ENV, PARAMS_FORMAT_ENV
from .store import atomic_write
from .volumemounts import mount_at_paths

GS = api_pb2.GenericResult
END_OF_INPUT = b"\x1emodal-emu: end of input\n"
REPLY_FD_ENV = "MODAL_EMU_REPLY_FD"
STARTED = b"S\n"
_REPLY_FD: list[int] = []
CALL_ID_ENV = "MODAL_EMU_FUNCTION_CALL_ID"  # the input's function call and input ids, in each command's env
INPUT_ID_ENV = "MODAL_EMU_INPUT_ID"
BATCH_ENV = "MODAL_EMU_BATCH_MAX_SIZE"  # > 0: an @modal.batched function
_LOOP: list[asyncio.AbstractEventLoop] = []


def _failure(exc: BaseException) -> api_pb2.GenericResult:
    tb = traceback.format_exc()
    print(tb, file=sys.stderr, flush=True)
    try:
        data = serialize(exc)
    except Exception:
        data = serialize(RuntimeError(f"{type(exc).__name__}: {exc}"))
    return GS(status=GS.GENERIC_STATUS_FAILURE, exception=f"{type(exc).__name__}: {exc}", traceback=tb, data=data)


def _drain(value, chunks: Path) -> api_pb2.GeneratorDone:
    """Each item of a generator as a numbered file (1, 2, ...), as the caller's data stream reads them."""
    count = 0

    def put(item) -> None:
        nonlocal count
        count += 1
        atomic_write(chunks / str(count), serialize(item))

    if inspect.isasyncgen(value):

        async def run() -> None:
            async for item in value:
                put(item)

        _event_loop().run_until_complete(run())
    else:
        for item in value:
            put(item)
    return api_pb2.GeneratorDone(items_total=count)


def run_one(load, command: dict, function_input: bytes) -> api_pb2.GenericResult:
    env = command.get("env", {})
    os.environ.update(env)
    item = api_pb2.FunctionInput.FromString(function_input)
    reset_input = modal_context.set_input(env.get(CALL_ID_ENV, ""), env.get(INPUT_ID_ENV, ""))
    try:
        fn, client = load()
        # with the container's client, so that a Dict, Queue, Function or Volume argument arrives hydrated
        args, kwargs = deserialize_data_format(item.args, item.data_format, client)
        if item.method_name:  # a class: the method of the container's instance
            fn = getattr(fn, item.method_name)
        batched = int(os.environ.get(BATCH_ENV, "0")) > 0
        if batched:  # as Modal calls a batched function: a list of values per parameter (here: a batch of one)
            args, kwargs = (), _as_batch(fn, item.method_name, args, kwargs)
        _reply(STARTED)  # the timeout counts from here, as on Modal
        with warnings.catch_warnings():  # .local() warns that Volumes are not mounted: here they are mapped
            warnings.simplefilter("ignore")
            value = fn.local(*args, **kwargs) if hasattr(fn, "local") else fn(*args, **kwargs)
            if inspect.isawaitable(value):  # an async function: one event loop for the container's life
                value = _event_loop().run_until_complete(value)
            if inspect.isgenerator(value) or inspect.isasyncgen(value):
                done = _drain(value, Path(command["chunks"]))
                data = serialize_data_format(done, api_pb2.DATA_FORMAT_GENERATOR_DONE)
                return GS(status=GS.GENERIC_STATUS_SUCCESS, data=data)
            if batched:
                value = _batch_output(fn, value)
    except KeyboardInterrupt:  # as in Modal's container: not the input's result; the container stops
        raise
    except BaseException as exc:  # noqa: BLE001 - every other failure goes back to the caller
        return _failure(exc)
    finally:
        reset_input()
    try:
        return GS(status=GS.GENERIC_STATUS_SUCCESS, data=serialize(value))
    except BaseException as exc:  # noqa: BLE001 - an unpicklable return value
        return _failure(exc)


def _as_batch(fn, method_name: str, args: tuple, kwargs: dict) -> dict[str, list]:
    """One input's arguments as a batch of one: each parameter's value in a list, by name."""
    raw = modal_context.raw_function(fn)
    params, name = list(inspect.signature(raw).parameters)[1 if method_name else 0 :], raw.__name__
    if len(args) + len(kwargs) != len(params):
        given = len(args) + len(kwargs)
        raise InvalidError(f"Modal batched function {name} takes {len(params)} arguments, but got {given}")
    named = dict(zip(params, args, strict=False))
    for key, value in kwargs.items():
        if key not in params or key in named:
            raise InvalidError(f"Modal batched function {name} got an unexpected or repeated keyword argument {key}")
        named[key] = value
    return {param: [named[param]] for param in params}


def _batch_output(fn, value):
    """The input's result out of the batch's: a batched function returns a list, one result per input."""
    if not isinstance(value, list) or len(value) != 1:
        name = modal_context.raw_function(fn).__name__
        raise InvalidError(f"Output of batched function {name} must be a list of equal length as its inputs.")
    return value[0]


def _event_loop() -> asyncio.AbstractEventLoop:
    if not _LOOP:
        _LOOP.append(asyncio.new_event_loop())
    return _LOOP[0]


def class_instance(cls):
    """The instance this container serves, built from the parameter values bound to the
    container's function variant; its ``@modal.enter`` methods run once, here."""
    serialized = base64.b64decode(os.environ.get(PARAMS_ENV, ""))
    args, kwargs = (), {}
    if serialized:
        info = api_pb2.ClassParameterInfo(format=int(os.environ[PARAMS_FORMAT_ENV]))
        args, kwargs = deserialize_params(serialized, api_pb2.Function(class_parameter_info=info), None)
    instance = cls(*args, **kwargs)
    _run_hooks(instance, "enter")  # as on Modal, before the first input (and its timeout) starts
    modal_context.mark_entered(instance)
    return instance


def _reply(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(_REPLY_FD[0], view) :]


def _run_hooks(instance, hook: str) -> None:
    """The instance's ``@modal.enter`` or ``@modal.exit`` methods, sync or async, in order."""
    for method in modal_context.lifecycle_methods(instance, hook):
        value = method(None, None, None) if hook == "exit" and modal_context.takes_exit_args(method) else method()
        if inspect.isawaitable(value):
            _event_loop().run_until_complete(value)


def _end_of_input() -> None:
    for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):
        try:
            stream.flush()
            os.write(fd, END_OF_INPUT)
        except (OSError, ValueError):  # the function closed or replaced the stream: nothing more to wait for
            pass


def main(argv: list[str]) -> int:
    root, module, function = argv
    mounts = json.loads(os.environ.pop("MODAL_EMU_MOUNT_AT_PATHS", "{}"))
    if mounts:  # first: a new mount (and user) namespace needs a process without threads
        mount_at_paths(mounts["volumes"], mounts["scratch"])
    die_with_parent(int(os.environ.get("MODAL_EMU_SERVER_PID", "0")))
    _REPLY_FD.append(int(os.environ.pop(REPLY_FD_ENV)))
    os.set_inheritable(_REPLY_FD[0], False)  # the function's own subprocesses have no business with it
    modal_context.enter_container(os.getpid())
    sys.path.insert(0, root)
    loaded = []

    def load():
        if not loaded:
            target = getattr(importlib.import_module(module), function.removesuffix(".*"))
            # as Modal's container does: every Function and Cls of the app usable from inside the function
            client = modal_context.hydrate_app(target, os.environ.get(modal_context.APP_ID_ENV, ""))
            if function.endswith(".*"):  # a class service function: one instance per container
                target = class_instance(target)
            loaded.append((target, client))
        return loaded[0]

    commands = sys.stdin.buffer
    try:
        while line := commands.readline():
            command = json.loads(line)
            function_input = commands.read(command["size"])
            result = run_one(load, command, function_input)
            # The function has returned: an interrupt (a preemption) arriving now must not lose its result.
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                data = result.SerializeToString()
                _reply(b"R %d\n" % len(data) + data)
                _end_of_input()
            finally:
                signal.signal(signal.SIGINT, previous)
    except KeyboardInterrupt:  # preempted (during an input or between them): stop as after the last one
        traceback.print_exc()  # in the input's logs, as Modal's container shows it
    # The end of the input stream: the emulator stops this container (scale-down, stop, preemption).
    if loaded and function.endswith(".*"):
        try:
            _run_hooks(loaded[0][0], "exit")
        except BaseException:  # noqa: BLE001 - said in the logs; the container stops anyway
            traceback.print_exc()
            return 1
    return 0


if __name__ == "__main__":
    # A normal interpreter exit, as Modal's container ends: the user's atexit handlers run and files it
    # left open are flushed (skipping the teardown with os._exit saved CPU once per container, not per input).
    sys.exit(main(sys.argv[1:]))
