"""How an ``@app.cls`` class lives in the emulator.

The client deploys a class as one *service function* tagged ``Name.*`` whose
definition lists the methods; a call names its method in ``FunctionInput.method_name``.
``Name(param=...)`` binds parameter values with FunctionBindParams: that gives a
*variant*, a function id of its own whose calls run in containers of their own
(like Modal, where each parameter set gets its own containers and ``@modal.enter``
runs once per container). A variant stores only its base function and the bound
values, so it follows the base function when the app is redeployed (or stays on the version
``ClassGet`` pinned it to).
"""

from __future__ import annotations

import base64

from modal_proto import api_pb2

from . import versions
from .definition import record

PARAMS_ENV = "MODAL_EMU_CLASS_PARAMS"  # base64 of the serialized parameter values
PARAMS_FORMAT_ENV = "MODAL_EMU_CLASS_PARAMS_FORMAT"  # a ClassParameterInfo format number


def add_method_metadata(metadata: api_pb2.FunctionHandleMetadata, definition: api_pb2.Function) -> None:
    """A service function's handle lists each method's handle: the client calls a method
    through it, naming the method (``use_method_name``)."""
    for method_name, method in definition.method_definitions.items():
        metadata.method_handle_metadata[method_name].CopyFrom(
            api_pb2.FunctionHandleMetadata(
                function_name=method.function_name,
                function_type=method.function_type,
                is_method=True,
                use_method_name=method_name,
                class_parameter_info=definition.class_parameter_info,
                function_schema=method.function_schema,
                supported_input_formats=method.supported_input_formats,
                supported_output_formats=method.supported_output_formats,
                app_id=metadata.app_id,
            )
        )
    if definition.is_class:
        metadata.class_parameter_info.CopyFrom(definition.class_parameter_info)


def resolve_variant(store, function_id: str) -> dict | None:
    """The function record a variant id stands for: the version of its base function a call runs
    now (``versions.current``), with the bound parameter values (for the worker) and what
    ``with_options(...)`` sets."""
    variant = store["variants"].get(function_id)
    base = store["functions"].get(variant["base_function_id"]) if variant else None
    if base is None:
        return None
    fn = {**versions.current(store, base), "id": function_id, "base_function_id": base["id"]}
    fn["env"] = {**fn["env"], PARAMS_ENV: variant["params"], PARAMS_FORMAT_ENV: str(variant["params_format"])}
    options = api_pb2.FunctionOptions.FromString(base64.b64decode(variant["options"]))
    fn.update(record(store, options))  # what with_options(...) gives overrides the class's definition
    return fn
