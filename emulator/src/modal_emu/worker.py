"""Runs one input in its own process: ``python -m modal_emu.worker ROOT MODULE FUNCTION IN OUT``.

Imports MODULE from the deployed files in ROOT, calls the undecorated FUNCTION
with the input's arguments and writes a ``GenericResult`` (the return value, or
the exception with its traceback, serialized as modal's client expects) to OUT.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
import warnings

from modal._serialization import deserialize_data_format, serialize
from modal_proto import api_pb2

GS = api_pb2.GenericResult


def run(root: str, module: str, function: str, in_path: str, started_path: str) -> api_pb2.GenericResult:
    sys.path.insert(0, root)
    item = api_pb2.FunctionInput.FromString(open(in_path, "rb").read())
    try:
        args, kwargs = deserialize_data_format(item.args, item.data_format, None)
        fn = getattr(importlib.import_module(module), function)
        open(started_path, "w").close()  # the timeout counts from here, as on Modal
        with warnings.catch_warnings():  # .local() warns that Volumes are not mounted: here they are mapped
            warnings.simplefilter("ignore")
            value = fn.local(*args, **kwargs) if hasattr(fn, "local") else fn(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
        tb = traceback.format_exc()
        print(tb, file=sys.stderr, flush=True)
        try:
            data = serialize(exc)
        except Exception:
            data = serialize(RuntimeError(f"{type(exc).__name__}: {exc}"))
        return GS(status=GS.GENERIC_STATUS_FAILURE, exception=f"{type(exc).__name__}: {exc}", traceback=tb, data=data)
    return GS(status=GS.GENERIC_STATUS_SUCCESS, data=serialize(value))


def main(argv: list[str]) -> int:
    root, module, function, in_path, out_path = argv
    result = run(root, module, function, in_path, os.path.splitext(out_path)[0] + ".started")
    tmp = out_path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(result.SerializeToString())
    os.replace(tmp, out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
