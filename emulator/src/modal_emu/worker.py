"""A container: ``python -m modal_emu.worker ROOT MODULE FUNCTION``.

Imports MODULE from the deployed files in ROOT once, then runs inputs one after
another. Each input is a JSON line on stdin naming its input file, its result
file, a "started" marker file and a directory for generator output; the worker
calls the undecorated FUNCTION with the input's arguments and writes a
``GenericResult`` (the return value, or the exception with its traceback,
serialized as modal's client expects). A generator's items go to numbered files
in that directory, and its result is a ``GeneratorDone``. After each input the
worker writes ``END_OF_INPUT`` on stdout and stderr, so the emulator knows it has
every line the input printed.
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
from modal_proto import api_pb2

from .lifeline import die_with_parent
from .service_class import PARAMS_ENV, PARAMS_FORMAT_ENV
from .store import atomic_write
from .volumemounts import mount_at_paths

GS = api_pb2.GenericResult
END_OF_INPUT = b"\x1emodal-emu: end of input\n"
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


def run_one(load, command: dict) -> api_pb2.GenericResult:
    os.environ.update(command.get("env", {}))
    with open(command["in"], "rb") as f:
        item = api_pb2.FunctionInput.FromString(f.read())
    try:
        args, kwargs = deserialize_data_format(item.args, item.data_format, None)
        fn = load()
        if item.method_name:  # a class: the method of the container's instance
            fn = getattr(fn, item.method_name)
        open(command["started"], "w").close()  # the timeout counts from here, as on Modal
        with warnings.catch_warnings():  # .local() warns that Volumes are not mounted: here they are mapped
            warnings.simplefilter("ignore")
            value = fn.local(*args, **kwargs) if hasattr(fn, "local") else fn(*args, **kwargs)
            if inspect.isawaitable(value):  # an async function: one event loop for the container's life
                value = _event_loop().run_until_complete(value)
            if inspect.isgenerator(value) or inspect.isasyncgen(value):
                done = _drain(value, Path(command["chunks"]))
                data = serialize_data_format(done, api_pb2.DATA_FORMAT_GENERATOR_DONE)
                return GS(status=GS.GENERIC_STATUS_SUCCESS, data=data)
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
        return _failure(exc)
    try:
        return GS(status=GS.GENERIC_STATUS_SUCCESS, data=serialize(value))
    except BaseException as exc:  # noqa: BLE001 - an unpicklable return value
        return _failure(exc)


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
    instance._enter()  # as on Modal, before the first input (and its timeout) starts
    return instance


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
    sys.path.insert(0, root)
    loaded = []

    def load():
        if not loaded:
            target = getattr(importlib.import_module(module), function.removesuffix(".*"))
            if function.endswith(".*"):  # a class service function: one instance per container
                target = class_instance(target)
            loaded.append(target)
        return loaded[0]

    for line in sys.stdin:
        command = json.loads(line)
        result = run_one(load, command)
        # The function has returned: an interrupt (a preemption) arriving now must not lose its result.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            atomic_write(Path(command["out"]), result.SerializeToString())
            _end_of_input()
        finally:
            signal.signal(signal.SIGINT, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
