"""Class RPCs (``@app.cls``): create, look up by name, and bind parameter values
(FunctionBindParams). See ``service_class`` for how a class is represented."""

from __future__ import annotations

import base64

from modal_proto import api_pb2

from .. import versions
from ..definition import check_options
from ..rpc import not_found, rpc
from ..store import new_id, now
from .apps import deployed_app
from .functions import _function, _handle_metadata


@rpc
async def ClassCreate(emu, request: api_pb2.ClassCreateRequest) -> api_pb2.ClassCreateResponse:
    """The class gets its name and service function when the app is published (``class_ids``)."""
    class_id = request.existing_class_id or new_id("cs")
    emu.store["classes"].setdefault(class_id, {"id": class_id, "app_id": request.app_id, "created_at": now()})
    emu.store.save()
    return api_pb2.ClassCreateResponse(class_id=class_id, handle_metadata=api_pb2.ClassHandleMetadata())


@rpc
async def ClassGet(emu, request: api_pb2.ClassGetRequest) -> api_pb2.ClassGetResponse:
    app = deployed_app(emu, request.app_name, request.environment_name)
    if app is None:
        raise not_found(f"App '{request.app_name}' not found")
    class_id = app["class_ids"].get(request.object_tag)
    if class_id is None:
        raise not_found(f"Class '{request.object_tag}' not found in the app")
    function_id = versions.object_id(app, f"{request.object_tag}.*", request.app_version, kind="Class")
    return api_pb2.ClassGetResponse(
        class_id=class_id,
        handle_metadata=api_pb2.ClassHandleMetadata(
            class_function_id=function_id,
            class_function_metadata=_handle_metadata(_function(emu, function_id)),
        ),
    )


@rpc
async def FunctionBindParams(emu, request: api_pb2.FunctionBindParamsRequest) -> api_pb2.FunctionBindParamsResponse:
    """``Cls(param=...)``: a variant of the class's service function with those values bound.
    The same values (and options) give the same variant, so its containers are reused."""
    base = _function(emu, _function(emu, request.function_id).get("base_function_id", request.function_id))
    check_options(request.function_options, f"'{base['tag']}'")
    definition = api_pb2.FunctionData.FromString(base64.b64decode(base["function_data"]))
    params = base64.b64encode(request.serialized_params).decode()
    options = base64.b64encode(request.function_options.SerializeToString(deterministic=True)).decode()
    variants = emu.store["variants"]
    variant = next(
        (
            v
            for v in variants.values()
            if (v["base_function_id"], v["params"], v["options"]) == (base["id"], params, options)
        ),
        None,
    )
    if variant is None:
        variant = {
            "id": new_id("fu"),
            "base_function_id": base["id"],
            "params": params,
            "params_format": definition.class_parameter_info.format,
            "options": options,
            "created_at": now(),
        }
        variants[variant["id"]] = variant
        emu.store.save()
    metadata = _handle_metadata(base)
    metadata.base_function_id = base["id"]
    return api_pb2.FunctionBindParamsResponse(bound_function_id=variant["id"], handle_metadata=metadata)
