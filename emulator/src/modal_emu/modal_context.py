"""What Modal's container entrypoint does around a function, done with modal's own pieces.

Where the worker reads modal's container internals (it also uses ``modal._serialization``):
it makes a client that talks to the emulator (from the environment the runner gives the
container, never from a file) and hydrates every Function and Cls of the function's app from
the app's layout (``AppGetLayout``), as ``modal._container_entrypoint`` does, so that
``other.remote()``, ``.spawn()``, ``.map()`` and ``SomeCls().method.remote()`` work inside a
function; makes ``modal.is_local()`` False; sets the execution context that
``modal.current_function_call_id()`` and ``modal.current_input_id()`` read; and finds a
class's ``@modal.enter`` and ``@modal.exit`` methods.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from modal._partial_function import _find_callables_for_obj, _PartialFunctionFlags
from modal._runtime import execution_context
from modal._runtime.task_lifecycle_manager import _TaskLifecycleManager
from modal._utils.async_utils import synchronize_api, synchronizer
from modal.client import _Client
from modal.running_app import running_app_from_layout
from modal_proto import api_pb2

APP_ID_ENV = "MODAL_EMU_APP_ID"  # the app whose layout a container hydrates


def task_id(pid: int) -> str:
    """A container's task id (``MODAL_TASK_ID`` inside it, ``task_id`` in the call graph)."""
    return f"ta-{pid}"


def enter_container(pid: int) -> None:
    """From here on this process is a container, before the user's module is imported: ``MODAL_TASK_ID``
    is set, and ``modal.is_local()`` is False (so that ``Secret.from_local_environ`` gives an empty Secret
    and code that asks runs its remote branch), as Modal's entrypoint makes it."""
    os.environ["MODAL_TASK_ID"] = task_id(pid)
    _TaskLifecycleManager(task_id(pid), "", api_pb2.Function(), None, None)  # is_local() looks for it


async def _hydrate_app(target: Any, app_id: str) -> _Client:
    client = await _Client.from_env()
    app = getattr(target, "_app", None)  # a Function's or a Cls's app; None for one made without an app
    if app is not None and app_id:
        request = api_pb2.AppGetLayoutRequest(app_id=app_id)
        response = await client._stub.AppGetLayout(request)  # (.stub would warn, in the user's logs)
        app._init_container(client, running_app_from_layout(app_id, response.app_layout))
    return client


_hydrate_app_blocking = synchronize_api(_hydrate_app)


def hydrate_app(target: Any, app_id: str) -> _Client:
    """Hydrate the app of ``target`` (the Function or Cls the container serves); returns the
    client, the one that objects passed as arguments are deserialized with."""
    return synchronizer._translate_in(_hydrate_app_blocking(target, app_id))


def set_input(call_id: str, input_id: str) -> Callable[[], None]:
    """The current input, as ``modal.current_function_call_id()``/``current_input_id()`` read it;
    returns what resets it."""
    return execution_context._set_current_context_ids([input_id], [call_id], [""])


def lifecycle_methods(obj: Any, hook: str) -> list[Callable[..., Any]]:
    """The ``@modal.enter`` (pre- then post-snapshot) or ``@modal.exit`` methods of a ``Cls(...)`` object."""
    flags = {
        "enter": [_PartialFunctionFlags.ENTER_PRE_SNAPSHOT, _PartialFunctionFlags.ENTER_POST_SNAPSHOT],
        "exit": [_PartialFunctionFlags.EXIT],
    }[hook]
    instance = user_instance(obj)
    return [method for flag in flags for method in _find_callables_for_obj(instance, flag).values()]


def takes_exit_args(method: Callable[..., Any]) -> bool:
    """An old-style ``@modal.exit`` method with ``(exc_type, exc, tb)`` parameters (modal passes Nones)."""
    return bool(inspect.signature(method).parameters)


def user_instance(obj: Any) -> Any:
    """The user's own instance behind a ``Cls(...)`` object (made on first use)."""
    return synchronizer._translate_in(obj)._cached_user_cls_instance()


def mark_entered(obj: Any) -> None:
    """Its ``@modal.enter`` methods have run: ``.local()`` must not run them again."""
    synchronizer._translate_in(obj)._has_entered = True


def raw_function(fn: Any) -> Callable[..., Any]:
    """The user's undecorated function (with ``self`` for a method)."""
    return synchronizer._translate_in(fn)._get_source_info().raw_f
