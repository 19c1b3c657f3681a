"""A container: ``python -m modal_emu.worker ROOT MODULE FUNCTION``.

Imports MODULE from the deployed files in ROOT once, then runs inputs one after
another. Each input is a JSON line on stdin naming its input file, its result
file and a "started" marker file; the worker calls the undecorated FUNCTION with
the input's arguments and writes a ``GenericResult`` (the return value, or the
exception with its traceback, serialized as modal's client expects).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
import warnings

from modal._serialization import deserialize_data_format, serialize
from modal_proto import api_pb2

GS = api_pb2.GenericResult


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
        open(command["started"], "w").close()  # the timeout counts from here, as on Modal
        with warnings.catch_warnings():  # .local() warns that Volumes are not mounted: here they are mapped
            warnings.simplefilter("ignore")
            value = fn.local(*args, **kwargs) if hasattr(fn, "local") else fn(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
        return _failure(exc)
    try:
        return GS(status=GS.GENERIC_STATUS_SUCCESS, data=serialize(value))
    except BaseException as exc:  # noqa: BLE001 - an unpicklable return value
        return _failure(exc)


def main(argv: list[str]) -> int:
    root, module, function = argv
    sys.path.insert(0, root)
    loaded = []

    def load():
        if not loaded:
            loaded.append(getattr(importlib.import_module(module), function))
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
