"""Function and FunctionCall RPCs: create/publish, look up by name, spawn, poll, cancel."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time

from google.protobuf import empty_pb2
from modal_proto import api_pb2

from .. import versions
from ..definition import check_definition, record
from ..modal_context import task_id
from ..rpc import invalid, not_found, rpc
from ..service_class import add_method_metadata, resolve_variant
from ..store import atomic_write, new_id, now
from .apps import deployed_app
from .images import image_env, image_mount_ids

MAX_OBJECT_SIZE_BYTES = 2 * 1024 * 1024  # outputs larger than this go back as blobs, as on Modal
PICKLE = api_pb2.DATA_FORMAT_PICKLE
GS = api_pb2.GenericResult


def _b64(message) -> str:
    return base64.b64encode(message.SerializeToString()).decode()


def _function(emu, function_id: str) -> dict:
    fn = emu.store["functions"].get(function_id) or resolve_variant(emu.store, function_id)
    if fn is None:
        raise not_found(f"Function {function_id} not found")
    return fn


def _handle_metadata(fn: dict) -> api_pb2.FunctionHandleMetadata:
    return api_pb2.FunctionHandleMetadata.FromString(base64.b64decode(fn["handle_metadata"]))


def _as_function_data(function: api_pb2.Function) -> api_pb2.FunctionData:
    """A single-GPU definition in the shape FunctionGet returns (ranked functions)."""
    data = api_pb2.FunctionData()
    for field in data.DESCRIPTOR.fields:
        other = function.DESCRIPTOR.fields_by_name.get(field.name)
        if other is None or other.type != field.type or other.message_type != field.message_type:
            continue
        value = getattr(function, field.name)
        if field.is_repeated:  # maps and lists
            getattr(data, field.name).MergeFrom(value)
        elif field.message_type is not None:
            if function.HasField(field.name):
                getattr(data, field.name).CopyFrom(value)
        else:
            setattr(data, field.name, value)
    data.ranked_functions.append(api_pb2.FunctionData.RankedFunction(rank=0, function=function))
    return data


def _materialize(emu, root, mount_ids: list[str]) -> None:
    """Write the deployed files where the function's processes will run them."""
    for mount_id in mount_ids:
        mount = emu.store["mounts"].get(mount_id)
        if mount is None:
            raise invalid(f"Mount {mount_id} not found")
        for filename, entry in mount["files"].items():
            target = root / filename.lstrip("/")
            atomic_write(target, emu.store.file_path(entry["sha256"]).read_bytes())
            if entry.get("mode"):
                target.chmod(entry["mode"] & 0o777)
    (root / "root").mkdir(parents=True, exist_ok=True)


@rpc
async def FunctionPrecreate(emu, request: api_pb2.FunctionPrecreateRequest) -> api_pb2.FunctionPrecreateResponse:
    function_id = request.existing_function_id or new_id("fu")
    metadata = api_pb2.FunctionHandleMetadata(
        function_name=request.function_name,
        function_type=request.function_type,
        supported_input_formats=[PICKLE],
        supported_output_formats=[PICKLE],
        app_id=request.app_id,
    )
    return api_pb2.FunctionPrecreateResponse(function_id=function_id, handle_metadata=metadata)


@rpc
async def FunctionCreate(emu, request: api_pb2.FunctionCreateRequest) -> api_pb2.FunctionCreateResponse:
    if request.HasField("function_data"):
        data = api_pb2.FunctionData()
        data.CopyFrom(request.function_data)
    else:
        data = _as_function_data(request.function)
    definition = data.ranked_functions[0].function
    if definition.definition_type != api_pb2.Function.DEFINITION_TYPE_FILE:
        raise invalid("the local Modal emulator runs functions defined in files only (not serialized=True)")
    check_definition(definition)
    function_id = request.existing_function_id or new_id("fu")
    # Each (re)deploy gets its own copy of the files: a call runs the version it was spawned on.
    version = emu.store["functions"].get(function_id, {}).get("version", 0) + 1
    deploy_dir = emu.store.deploy_dir(function_id) / f"v{version}"
    _materialize(emu, deploy_dir, image_mount_ids(emu, definition.image_id) + list(definition.mount_ids))
    is_generator = definition.function_type == api_pb2.Function.FUNCTION_TYPE_GENERATOR
    metadata = api_pb2.FunctionHandleMetadata(
        function_name=definition.function_name,
        function_type=definition.function_type,
        is_method=definition.is_method,
        supported_input_formats=[PICKLE],
        supported_output_formats=[PICKLE, api_pb2.DATA_FORMAT_GENERATOR_DONE] if is_generator else [PICKLE],
        app_id=request.app_id,
    )
    add_method_metadata(metadata, definition)
    emu.store["functions"][function_id] = {
        "id": function_id,
        "version": version,
        "workdir": str(deploy_dir / "root"),
        "app_id": request.app_id,
        "tag": definition.function_name,
        "module_name": definition.module_name,
        "function_name": definition.function_name,
        "implementation_name": definition.implementation_name or definition.function_name,
        **record(emu.store, definition),  # timeout, retries, GPU, Secrets, Volumes, limits: see definition.py
        "env": image_env(emu, definition.image_id),
        "is_generator": is_generator,
        "handle_metadata": _b64(metadata),
        "function_data": _b64(data),
        "created_at": now(),
    }
    emu.store.save()
    return api_pb2.FunctionCreateResponse(function_id=function_id, handle_metadata=metadata, function_data=data)


@rpc
async def FunctionGet(emu, request: api_pb2.FunctionGetRequest) -> api_pb2.FunctionGetResponse:
    app = deployed_app(emu, request.app_name, request.environment_name)
    # The client prefixes these with "Lookup failed for Function 'f' from the 'a' app:" and adds a period.
    if app is None:
        raise not_found("App not deployed")
    function_id = versions.object_id(app, request.object_tag, request.app_version)
    fn = _function(emu, function_id)
    return api_pb2.FunctionGetResponse(
        function_id=function_id,
        handle_metadata=_handle_metadata(fn),
        function=api_pb2.FunctionData.FromString(base64.b64decode(fn["function_data"])),
    )


@rpc
async def FunctionGetById(emu, request: api_pb2.FunctionGetByIdRequest) -> api_pb2.FunctionGetByIdResponse:
    fn = emu.store["functions"].get(request.function_id)
    if fn is None:  # the client prefixes "Lookup failed for Function 'fu-…':"
        raise not_found("no such Function")
    return api_pb2.FunctionGetByIdResponse(
        function=api_pb2.FunctionData.FromString(base64.b64decode(fn["function_data"])),
    )


# ------------------------------------------------------------------------ calls
def _add_inputs(emu, call_id: str, items) -> list[api_pb2.FunctionPutInputsResponseItem]:
    call = emu.store["calls"][call_id]
    placed = []
    for item in items:
        function_input = api_pb2.FunctionInput()
        function_input.CopyFrom(item.input)
        if function_input.WhichOneof("args_oneof") == "args_blob_id":
            blob = emu.store["blobs"].get(function_input.args_blob_id)
            if blob is None or not blob["sha256"]:
                raise invalid(f"input blob {function_input.args_blob_id} was never uploaded")
            function_input.args = emu.store.file_path(blob["sha256"]).read_bytes()
        idx = str(item.idx)
        if idx in call["inputs"]:  # the client numbers its inputs; never overwrite one
            idx = str(max(map(int, call["inputs"])) + 1)
        input_id = new_id("in")
        emu.store.put_payload(call_id, f"{idx}.in", function_input.SerializeToString())
        call["inputs"][idx] = {"input_id": input_id, "status": "pending", "attempts": 0, "created_at": now()}
        placed.append(api_pb2.FunctionPutInputsResponseItem(idx=int(idx), input_id=input_id, input_jwt=input_id))
    emu.store.save()
    for placed_item in placed:
        emu.runner.submit(call_id, str(placed_item.idx))
    return placed


@rpc
async def FunctionMap(emu, request: api_pb2.FunctionMapRequest) -> api_pb2.FunctionMapResponse:
    fn = versions.current(emu.store, _function(emu, request.function_id))  # the code this call runs, from now on
    app = emu.store["apps"].get(fn["app_id"], {})
    if app.get("state") == api_pb2.APP_STATE_STOPPED:
        raise invalid(f"App {fn['app_id']} is stopped")
    call_id = new_id("fc")
    emu.store["calls"][call_id] = {
        "id": call_id,
        "function_id": request.function_id,
        "app_id": fn["app_id"],
        "created_at": now(),
        "invocation_type": request.function_call_invocation_type,
        "call_type": request.function_call_type,
        "cancelled": False,
        "inputs": {},
        "spec": {k: v for k, v in fn.items() if k not in ("handle_metadata", "function_data")},
    }
    placed = _add_inputs(emu, call_id, request.pipelined_inputs)
    return api_pb2.FunctionMapResponse(
        function_call_id=call_id,
        pipelined_inputs=placed,
        function_call_jwt=call_id,
        sync_client_retries_enabled=False,  # the emulator retries on its side, like Modal's server
        max_inputs_outstanding=1000,
    )


@rpc
async def FunctionPutInputs(emu, request: api_pb2.FunctionPutInputsRequest) -> api_pb2.FunctionPutInputsResponse:
    if request.function_call_id not in emu.store["calls"]:
        raise not_found(f"Function call {request.function_call_id} not found")
    return api_pb2.FunctionPutInputsResponse(inputs=_add_inputs(emu, request.function_call_id, request.inputs))


@rpc
async def FunctionFinishInputs(emu, request: api_pb2.FunctionFinishInputsRequest) -> empty_pb2.Empty:
    return empty_pb2.Empty()


def _output(emu, call_id: str, idx: str, item: dict) -> api_pb2.FunctionGetOutputsItem:
    result = GS.FromString(emu.store.payload(call_id, f"{idx}.out"))
    if len(result.data) > MAX_OBJECT_SIZE_BYTES:
        blob_id = new_id("bl")
        sha = hashlib.sha256(result.data).hexdigest()
        emu.store.put_file(sha, result.data)
        emu.store["blobs"][blob_id] = {"sha256": sha, "size": len(result.data), "created_at": now()}
        result.data_blob_id = blob_id  # clears the inline data (oneof)
    return api_pb2.FunctionGetOutputsItem(
        result=result,
        idx=int(idx),
        input_id=item["input_id"],
        data_format=_data_format(emu.store["calls"][call_id], result),
        input_started_at=item.get("started_at", 0.0),
        output_created_at=item.get("finished_at", 0.0),
        # The client's own retry count: retries happen here, on the server side, so it stays 0
        # (a map client drops an output whose retry_count differs from its own as stale).
        retry_count=0,
    )


def _data_format(call: dict, result: api_pb2.GenericResult) -> int:
    """A generator's successful result is its ``GeneratorDone``; everything else is pickled."""
    if call["spec"].get("is_generator") and result.status == GS.GENERIC_STATUS_SUCCESS:
        return api_pb2.DATA_FORMAT_GENERATOR_DONE
    return PICKLE


def _is_map_stream(call: dict) -> bool:
    """``.map()``/``.starmap()``/``.for_each()`` read their outputs as a stream: each request
    asks for what finished after ``last_entry_id``, whatever the index."""
    return (
        call.get("call_type") == api_pb2.FUNCTION_CALL_TYPE_MAP
        and call.get("invocation_type") == api_pb2.FUNCTION_CALL_INVOCATION_TYPE_SYNC
    )


def _cursor(last_entry_id: str) -> int:
    try:
        return int(last_entry_id)
    except ValueError:  # "0-0" or "": from the start
        return 0


def _collect(emu, call: dict, request: api_pb2.FunctionGetOutputsRequest):
    """The outputs this request asks for, the stream position after them, and how many inputs are unfinished.

    A map stream gets the outputs finished after its cursor (each input's ``seq`` is its place
    in the order outputs finished); its final ``clear_on_success`` request is only an
    acknowledgement. ``get(index=i)`` and ``FunctionCall.iter()`` ask for an index range;
    ``.remote()`` pops its output with ``clear_on_success`` and gets it once.
    """
    ttl = emu.config.result_ttl_s
    stream = _is_map_stream(call)
    cursor = _cursor(request.last_entry_id) if stream else 0
    popping = request.clear_on_success
    outputs, unfinished, position = [], 0, cursor
    for idx, item in sorted(call["inputs"].items(), key=lambda kv: int(kv[0])):
        if item["status"] != "done":
            unfinished += 1
            continue
        if stream:
            if popping or item.get("seq", 0) <= cursor:
                continue
            position = max(position, item["seq"])
        elif not popping and not request.start_idx <= int(idx) <= max(request.end_idx, request.start_idx):
            continue
        elif popping and item.get("delivered"):
            continue
        if time.time() - item["finished_at"] > ttl:
            continue  # expired: gone, exactly as on Modal after 7 days
        outputs.append(_output(emu, call["id"], idx, item))
        if popping:
            item["delivered"] = True
        if request.max_values and len(outputs) >= request.max_values:
            break
    return outputs, unfinished, position


@rpc
async def FunctionGetOutputs(emu, request: api_pb2.FunctionGetOutputsRequest) -> api_pb2.FunctionGetOutputsResponse:
    call = emu.store["calls"].get(request.function_call_id)
    if call is None:
        raise not_found(f"Function call {request.function_call_id} not found")
    # A map stream waits for new outputs even when nothing is unfinished: its client stops asking
    # once it has them all, and an empty answer at once would make it ask again in a busy loop.
    keep_waiting = _is_map_stream(call) and not request.clear_on_success
    deadline = time.monotonic() + max(request.timeout, 0)
    while True:
        changed = emu.outputs_changed(call["id"])
        outputs, unfinished, position = _collect(emu, call, request)
        remaining = deadline - time.monotonic()
        if outputs or (unfinished == 0 and not keep_waiting) or remaining <= 0:
            break
        try:
            await asyncio.wait_for(changed.wait(), timeout=remaining)
        except TimeoutError:
            pass
    return api_pb2.FunctionGetOutputsResponse(
        outputs=outputs,
        idxs=[o.idx for o in outputs],
        num_unfinished_inputs=unfinished,
        last_entry_id=str(position) if _is_map_stream(call) else "0-0",
    )


@rpc
async def FunctionCallFromId(emu, request: api_pb2.FunctionCallFromIdRequest) -> api_pb2.FunctionCallFromIdResponse:
    call = emu.store["calls"].get(request.function_call_id)
    if call is None:
        raise not_found(f"Function call {request.function_call_id} not found")
    return api_pb2.FunctionCallFromIdResponse(
        function_call_id=call["id"],
        num_inputs=len(call["inputs"]),
        metadata=api_pb2.FunctionCallHandleMetadata(app_id=call["app_id"], function_id=call["function_id"]),
    )


@rpc
async def FunctionCallCancel(emu, request: api_pb2.FunctionCallCancelRequest) -> empty_pb2.Empty:
    if request.function_call_id not in emu.store["calls"]:
        raise not_found(f"Function call {request.function_call_id} not found")
    await emu.runner.cancel(request.function_call_id)
    return empty_pb2.Empty()


@rpc
async def FunctionGetCallGraph(
    emu, request: api_pb2.FunctionGetCallGraphRequest
) -> api_pb2.FunctionGetCallGraphResponse:
    """The call's inputs: finished ones with their status, running ones with the task (container)
    that has them, queued ones with neither. (The emulator records no parent calls: one level.)"""
    call = emu.store["calls"].get(request.function_call_id)
    if call is None:
        raise not_found(f"Function call {request.function_call_id} not found")
    fn = emu.store["functions"].get(call["function_id"], {})
    response = api_pb2.FunctionGetCallGraphResponse(
        function_calls=[
            api_pb2.FunctionCallCallGraphInfo(
                function_call_id=call["id"],
                function_name=fn.get("function_name", ""),
                module_name=fn.get("module_name", ""),
            )
        ]
    )
    for idx in sorted(call["inputs"], key=int):
        item = call["inputs"][idx]
        running = item["status"] == "running" and item.get("pid")
        response.inputs.append(
            api_pb2.InputCallGraphInfo(
                input_id=item["input_id"],
                function_call_id=call["id"],
                status=item.get("result_status", 0) if item["status"] == "done" else 0,
                task_id=task_id(item["pid"]) if running else "",
            )
        )
    return response
