"""App RPCs: create, look up, publish (deploy) with tag and commit info, history, list, stop."""

from __future__ import annotations

import asyncio
import base64
import difflib
import time

from google.protobuf import empty_pb2
from modal_proto import api_pb2

from .. import versions
from ..definition import warned
from ..rpc import invalid, not_found, rpc
from ..store import new_id, now
from ..volumemounts import deploy_refusal
from ..volumemounts import deploy_warnings as volume_warnings


def deploy_warnings(emu, app: dict) -> list[api_pb2.Warning]:
    """Said once, in the deploy output: where this machine cannot give the app what it asks for."""
    functions = [emu.store["functions"][fid] for fid in app["function_ids"].values()]
    messages = volume_warnings(emu.runner, functions)
    for fn in functions:  # accepted features the emulator does not carry out (definition.py: "warned")
        data = api_pb2.FunctionData.FromString(base64.b64decode(fn["function_data"]))
        messages += warned(data.ranked_functions[0].function)
    return [
        api_pb2.Warning(type=api_pb2.Warning.WARNING_TYPE_FUNCTION_CONFIGURATION, message=message)
        for message in messages
    ]


DEPLOYED = api_pb2.APP_STATE_DEPLOYED
EPHEMERAL = api_pb2.APP_STATE_EPHEMERAL
STOPPED = api_pb2.APP_STATE_STOPPED


def _app(emu, app_id: str) -> dict:
    app = emu.store["apps"].get(app_id)
    if app is None:
        raise not_found(f"App {app_id} not found")
    return app


def deployed_app(emu, name: str, environment: str = "") -> dict | None:
    """The live deployment called ``name`` (there is at most one per name)."""
    for app in emu.store["apps"].values():
        if app["name"] == name and app["state"] == DEPLOYED:
            return app
    return None


def _new_app(emu, description: str, state: int, environment: str) -> dict:
    app = {
        "id": new_id("ap"),
        "name": "",
        "description": description,
        "state": state,
        "environment": environment or emu.config.environment,
        "created_at": now(),
        "stopped_at": 0.0,
        "last_heartbeat": now(),
        "function_ids": {},
        "class_ids": {},
        "deployments": [],
    }
    emu.store["apps"][app["id"]] = app
    emu.store.save()
    return app


def _layout(emu, app: dict) -> api_pb2.AppLayout:
    layout = api_pb2.AppLayout(function_ids=app["function_ids"], class_ids=app["class_ids"])
    for function_id in app["function_ids"].values():
        fn = emu.store["functions"][function_id]
        layout.objects.append(
            api_pb2.Object(
                object_id=function_id,
                function_handle_metadata=api_pb2.FunctionHandleMetadata.FromString(
                    base64.b64decode(fn["handle_metadata"])
                ),
            )
        )
    for class_id in app["class_ids"].values():  # a class's methods are in its service function's metadata
        layout.objects.append(api_pb2.Object(object_id=class_id, class_handle_metadata=api_pb2.ClassHandleMetadata()))
    return layout


@rpc
async def AppCreate(emu, request: api_pb2.AppCreateRequest) -> api_pb2.AppCreateResponse:
    app = _new_app(emu, request.description, request.app_state, request.environment_name)
    return api_pb2.AppCreateResponse(app_id=app["id"], app_page_url=f"{emu.server_url}/apps/{app['id']}")


@rpc
async def AppGetOrCreate(emu, request: api_pb2.AppGetOrCreateRequest) -> api_pb2.AppGetOrCreateResponse:
    app = deployed_app(emu, request.app_name)
    if app is None:
        app = _new_app(emu, request.app_name, DEPLOYED, request.environment_name)
        app["name"] = request.app_name
        emu.store.save()
    return api_pb2.AppGetOrCreateResponse(app_id=app["id"])


@rpc
async def AppGetByDeploymentName(
    emu, request: api_pb2.AppGetByDeploymentNameRequest
) -> api_pb2.AppGetByDeploymentNameResponse:
    app = deployed_app(emu, request.name, request.environment_name)
    return api_pb2.AppGetByDeploymentNameResponse(
        app_id=app["id"] if app else "", environment_name=request.environment_name or emu.config.environment
    )


@rpc
async def AppGetLayout(emu, request: api_pb2.AppGetLayoutRequest) -> api_pb2.AppGetLayoutResponse:
    return api_pb2.AppGetLayoutResponse(app_layout=_layout(emu, _app(emu, request.app_id)))


@rpc
async def AppPublish(emu, request: api_pb2.AppPublishRequest) -> api_pb2.AppPublishResponse:
    app = _app(emu, request.app_id)
    for tag, function_id in request.function_ids.items():
        if function_id not in emu.store["functions"]:
            raise invalid(f"function {function_id} ({tag}) was not created in app {app['id']}")
    # Refused before anything is published: a Volume this machine cannot put at its mount path
    # (unless --no-mount-volumes says the code does without: then the deploy only warns).
    functions = [emu.store["functions"][fid] for fid in request.function_ids.values()]
    if emu.config.mount_volumes and (refusal := deploy_refusal(emu.runner, functions)):
        raise invalid(refusal)
    deployed_at = now()
    app["function_ids"] = dict(request.function_ids)
    app["class_ids"] = dict(request.class_ids)
    app["state"] = request.app_state or DEPLOYED
    if request.name:
        previous = deployed_app(emu, request.name)
        if previous is not None and previous["id"] != app["id"]:
            previous["state"] = STOPPED
        app["name"] = request.name
    if app["state"] == DEPLOYED:
        version = len(app["deployments"]) + 1
        # what this version runs, frozen: Function.from_name(..., version=N) finds it here
        pinned = {tag: versions.pin(emu.store, fid, version) for tag, fid in request.function_ids.items()}
        app["deployments"].append(
            {
                "version": version,
                "function_ids": pinned,
                "deployed_at": deployed_at,
                "tag": request.deployment_tag,
                "client_version": request.client_version,
                "commit_info": base64.b64encode(request.commit_info.SerializeToString()).decode(),
            }
        )
    emu.store.save()
    return api_pb2.AppPublishResponse(
        url=f"{emu.server_url}/apps/{app['id']}",
        deployed_at=deployed_at,
        server_warnings=deploy_warnings(emu, app),
    )


@rpc
async def AppDeploymentHistory(
    emu, request: api_pb2.AppDeploymentHistoryRequest
) -> api_pb2.AppDeploymentHistoryResponse:
    app = _app(emu, request.app_id)
    history = [
        api_pb2.AppDeploymentHistory(
            app_id=app["id"],
            version=d["version"],
            deployed_at=d["deployed_at"],
            tag=d["tag"],
            client_version=d["client_version"],
            deployed_by="local",
            commit_info=api_pb2.CommitInfo.FromString(base64.b64decode(d["commit_info"])),
        )
        for d in reversed(app["deployments"])  # newest first, as Modal lists them
    ]
    return api_pb2.AppDeploymentHistoryResponse(app_deployment_histories=history)


@rpc
async def AppList(emu, request: api_pb2.AppListRequest) -> api_pb2.AppListResponse:
    running: dict[str, int] = {}
    for call_id in emu.store.call_ids(input_status=("running",)):
        call = emu.store["calls"][call_id]
        count = sum(item["status"] == "running" for item in call["inputs"].values())
        running[call["app_id"]] = running.get(call["app_id"], 0) + count
    items = []
    for app in emu.store["apps"].values():
        items.append(
            api_pb2.AppListResponse.AppListItem(
                app_id=app["id"],
                description=app["name"] or app["description"],
                name=app["name"],
                state=app["state"],
                created_at=app["created_at"],
                stopped_at=app["stopped_at"],
                n_running_tasks=running.get(app["id"], 0),
            )
        )
    return api_pb2.AppListResponse(apps=items)


@rpc
async def AppGetLifecycle(emu, request: api_pb2.AppGetLifecycleRequest) -> api_pb2.AppGetLifecycleResponse:
    app = _app(emu, request.app_id)
    last = app["deployments"][-1] if app["deployments"] else {}
    return api_pb2.AppGetLifecycleResponse(
        lifecycle=api_pb2.AppLifecycle(
            app_state=app["state"],
            created_at=app["created_at"],
            deployed_at=last.get("deployed_at", 0.0),
            version=last.get("version", 0),
            stopped_at=app["stopped_at"],
        )
    )


@rpc
async def AppStop(emu, request: api_pb2.AppStopRequest) -> empty_pb2.Empty:
    app = _app(emu, request.app_id)
    app["state"] = STOPPED
    app["stopped_at"] = now()
    emu.store.save()
    for call_id in emu.store.call_ids(app_id=app["id"], input_status=("pending", "running")):
        await emu.runner.cancel(call_id)
    return empty_pb2.Empty()


@rpc
async def AppClientDisconnect(emu, request: api_pb2.AppClientDisconnectRequest) -> empty_pb2.Empty:
    """An ephemeral app (``modal run``) ends with its client, and so does its work;
    a detached one (``modal run --detach``) and a deployed one carry on."""
    app = emu.store["apps"].get(request.app_id)
    if app is not None:
        app["client_left_at"] = now()  # ends the log streams of the client that left (see AppGetLogs)
        if app["state"] in (EPHEMERAL, api_pb2.APP_STATE_INITIALIZING):
            await AppStop(emu, api_pb2.AppStopRequest(app_id=request.app_id))
    return empty_pb2.Empty()


@rpc
async def AppHeartbeat(emu, request: api_pb2.AppHeartbeatRequest) -> empty_pb2.Empty:
    app = emu.store["apps"].get(request.app_id)
    if app is not None:
        app["last_heartbeat"] = now()
    return empty_pb2.Empty()


async def stop_orphaned_ephemeral_apps(emu) -> None:
    """A closed terminal sends no disconnect: an ephemeral app whose client stopped sending
    heartbeats is stopped, with its work, as Modal does."""
    limit = now() - emu.config.heartbeat_timeout_s
    for app in list(emu.store["apps"].values()):
        if app["state"] == EPHEMERAL and app.get("last_heartbeat", 0) < limit:
            await AppStop(emu, api_pb2.AppStopRequest(app_id=app["id"]))


def _seconds(ts) -> float:
    return ts.seconds + ts.nanos / 1e9


def _log_entries(emu, request):
    until = _seconds(request.until) if request.HasField("until") else now() + 1
    return emu.logs.entries(
        request.app_id,
        _seconds(request.since),
        until,
        function_id=request.function_id,
        function_call_id=request.function_call_id,
        source=request.source,
        search=request.search_text,
    )


def _log_batch(entry: dict, entry_id: str) -> api_pb2.TaskLogsBatch:
    """One log line as the client reads it (a batch of one, from the call's 'task')."""
    item = api_pb2.TaskLogs(
        data=entry["data"],
        file_descriptor=entry["fd"],
        timestamp=entry["ts"],
        timestamp_ns=int(entry["ts"] * 1e9),
        function_call_id=entry["function_call_id"],
        input_id=entry["input_id"],
    )
    return api_pb2.TaskLogsBatch(
        entry_id=entry_id,
        task_id=f"ta-{entry['function_call_id'][3:]}",
        function_id=entry["function_id"],
        input_id=entry["input_id"],
        items=[item],
    )


@rpc
async def AppCountLogs(emu, request: api_pb2.AppCountLogsRequest) -> api_pb2.AppCountLogsResponse:
    _app(emu, request.app_id)
    since, size = _seconds(request.since), max(request.bucket_secs, 1)
    counts: dict[int, list[int]] = {}
    for entry in _log_entries(emu, request):
        bucket = counts.setdefault(int((entry["ts"] - since) // size), [0, 0, 0])
        fd = entry["fd"]
        bucket[0 if fd == api_pb2.FILE_DESCRIPTOR_STDOUT else 1 if fd == api_pb2.FILE_DESCRIPTOR_STDERR else 2] += 1
    response = api_pb2.AppCountLogsResponse()
    for index, (out, err, system) in sorted(counts.items()):
        bucket = response.buckets.add(stdout_logs=out, stderr_logs=err, system_logs=system)
        bucket.bucket_start_at.FromNanoseconds(int((since + index * size) * 1e9))
    return response


@rpc
async def AppFetchLogs(emu, request: api_pb2.AppFetchLogsRequest) -> api_pb2.AppFetchLogsResponse:
    _app(emu, request.app_id)
    entries = list(_log_entries(emu, request))
    if request.limit:  # the newest ones, oldest first: `modal app logs --tail N` asks for the last N lines
        entries = entries[-request.limit :]
    response = api_pb2.AppFetchLogsResponse()
    for n, entry in enumerate(entries):
        response.batches.append(_log_batch(entry, str(n)))
    return response


@rpc
async def AppGetLogs(emu, request: api_pb2.AppGetLogsRequest):
    """Streams an app's log lines after ``last_entry_id`` (used by `modal run` and `modal app logs -f`);
    ends with ``app_done`` once the app is stopped, or after ``timeout`` seconds (the client asks again)."""
    app = _app(emu, request.app_id)
    last = float(request.last_entry_id or 0)
    deadline = time.monotonic() + request.timeout
    opened_at = now()
    while True:
        for entry in emu.logs.entries(
            app["id"],
            last + 1e-6,
            float("inf"),
            function_id=request.function_id,
            function_call_id=request.function_call_id,
            source=request.file_descriptor,
            search=request.search_text,
        ):
            last = entry["ts"]
            yield _log_batch(entry, repr(last))
        # Done when the app stops, and for the client that started a detached app (`modal run --detach`)
        # when it disconnects: the app runs on, but that client waits for no more logs.
        if app["state"] == STOPPED or app.get("client_left_at", 0) > opened_at:
            yield api_pb2.TaskLogsBatch(app_done=True)
            return
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(0.2)


@rpc
async def ObjectSuggest(emu, request: api_pb2.ObjectSuggestRequest) -> api_pb2.ObjectSuggestResponse:
    """ "Did you mean ...?" after a failed lookup: deployed names close to the one asked for."""
    kinds = api_pb2.ObjectSuggestRequest
    deployed = [app for app in emu.store["apps"].values() if app["state"] == DEPLOYED and app["name"]]
    if request.kind == kinds.OBJECT_SUGGEST_KIND_APP:
        candidates = {app["name"]: ("", app["name"]) for app in deployed}
    elif request.kind == kinds.OBJECT_SUGGEST_KIND_FUNCTION:
        candidates = {f"{a['name']}/{tag}": (a["name"], tag) for a in deployed for tag in a["function_ids"]}
    else:
        candidates = {}
    close = difflib.get_close_matches(request.query, list(candidates), n=request.limit or 5, cutoff=0.6)
    return api_pb2.ObjectSuggestResponse(
        suggestions=[api_pb2.ObjectSuggestion(app_name=candidates[c][0], object_name=candidates[c][1]) for c in close]
    )
