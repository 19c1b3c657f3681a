"""A container: ``python -m modal_emu.worker ROOT MODULE FUNCTION``.

Imports MODULE from the deployed files in ROOT once, then runs inputs one after
another. Each input is a JSON line on stdin naming its input file, its result
file and a "started" marker file; the worker calls the undecorated FUNCTION with
the input's arguments and writes a ``GenericResult`` (the return value, or the
exception with its traceback, serialized as modal's client expects).
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import inspect
import json
import os
import sys
import traceback
import warnings

from modal._serialization import deserialize_data_format, deserialize_params, serialize
from modal_proto import api_pb2

from .service_class import PARAMS_ENV, PARAMS_FORMAT_ENV

GS = api_pb2.GenericResult
_LOOP: list[asyncio.AbstractEventLoop] = []


def _failure(exc: BaseException) -> api_pb2.GenericResult:
    tb = traceback.format_exc()
    print(tb, file=sys.stderr, flush=True)
    try:
        data = serialize(exc)
    except Exception:
        data = serialize(RuntimeError(f"{type(exc).__name__}: {exc}"))
    return GS(status=GS.GENERIC_STATUS_FAILURE, exception=f"{type(exc).__name__}: {exc}", traceback=tb, data=data)


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


def main(argv: list[str]) -> int:
    root, module, function = argv
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
        tmp = command["out"] + ".tmp"
        with open(tmp, "wb") as f:
            f.write(result.SerializeToString())
        os.replace(tmp, command["out"])
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
