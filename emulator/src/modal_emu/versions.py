"""App versions: each deployment of an app keeps the functions it deployed, so that
``Function.from_name(app, fn, version=N)`` runs version N's code whatever was deployed since.

A redeploy reuses the app's function ids (the client passes them back as
``existing_function_id``), and FunctionCreate overwrites that *live* record with the
new definition before the deploy is published. So AppPublish freezes a copy of each
function it publishes: a *pinned* record of its own, ``fu-…`` like any function, that
never changes (its files are the ``deploy/<live id>/v<k>`` directory of that create).
The deployment row lists them by tag (``app["deployments"][i]["function_ids"]``).

Which record a call runs, decided once, when it is spawned (FunctionMap):

* a pinned id (``FunctionGet`` with ``app_version``): that version;
* a live id (``FunctionGet`` without it, as ``from_name(app, fn)`` sends): the newest
  *published* version, so a deploy in progress, or one that failed half-way, changes
  nothing until AppPublish; an app that was never deployed (``modal run``) runs its live record.

Containers are keyed by the record's id and files (``runner``), so warm containers of one
version never get inputs of another; all of it is stored, so it holds after a restart.
"""

from __future__ import annotations

from modal_proto import api_pb2

from .rpc import not_found
from .store import new_id, now

DEPLOYED = api_pb2.APP_STATE_DEPLOYED


def pin(store, function_id: str, app_version: int) -> str:
    """Freeze the function as published in ``app_version``; returns the pinned record's id."""
    pinned_id = new_id("fu")
    store["functions"][pinned_id] = {
        **store["functions"][function_id],
        "id": pinned_id,
        "pinned_from": function_id,
        "app_version": app_version,
        "published_at": now(),
    }
    return pinned_id


def object_id(app: dict, tag: str, app_version: int, kind: str = "Function") -> str:
    """The id ``FunctionGet``/``ClassGet`` answer for ``tag``: the live id, or version ``app_version``'s.
    Raises NOT_FOUND, which the client prefixes with "Lookup failed for Function 'f' from the 'a' app:"."""
    if not app_version:
        found = app["function_ids"].get(tag)
        if found is None:
            raise not_found(f"no {kind} of that name in the App")
        return found
    deployment = next((d for d in app["deployments"] if d["version"] == app_version), None)
    if deployment is None:
        count = len(app["deployments"])
        have = f"its versions are 1 to {count}" if count > 1 else "its only version is 1" if count else "none deployed"
        raise not_found(f"the App has no version {app_version} ({have}: `modal app history {app['name']}`)")
    if "function_ids" not in deployment:  # recorded by an emulator that did not keep versions yet
        raise not_found(f"version {app_version} was deployed before this emulator kept each version's code")
    found = deployment["function_ids"].get(tag)
    if found is None:
        raise not_found(f"no {kind} of that name in version {app_version} of the App")
    return found


def current(store, fn: dict) -> dict:
    """The record a call of ``fn`` runs: itself if pinned or never deployed, else its newest published version."""
    if "pinned_from" in fn:
        return fn
    app = store["apps"].get(fn["app_id"])
    if app is None or app["state"] != DEPLOYED or not app["deployments"]:
        return fn
    for pinned_id in app["deployments"][-1].get("function_ids", {}).values():
        pinned = store["functions"].get(pinned_id)
        if pinned is not None and pinned["pinned_from"] == fn["id"]:
            return pinned
    return fn
