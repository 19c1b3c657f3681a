"""What the emulator does with each field of a function's definition, and of ``with_options``.

Every field of ``api_pb2.Function`` (sent at FunctionCreate; a class is a service function whose
methods are ``MethodDefinition``\\ s) and of ``api_pb2.FunctionOptions`` (``Cls.with_options``,
``with_concurrency``, ``with_batching``) is in a table below, as one of:

- **emulated**: the emulator does what Modal does with it (how, in the note);
- **refused**: a definition that sets it fails at deploy (an option: at the call), with one line
  that names the feature: nothing accepted is then silently ignored;
- **warned**: accepted, and ``modal deploy`` prints a warning naming it (the note says why it is
  accepted rather than refused);
- **irrelevant**: it has no meaning on one local machine (the note says why).

``tests/test_definition_audit.py`` fails when the installed modal has a field that is not in a table,
so a new modal release cannot add a feature that the emulator ignores without anyone deciding.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message
from modal_proto import api_pb2

from .unsupported import unimplemented

EMULATED, REFUSED, WARNED, IRRELEVANT = "emulated", "refused", "warned", "irrelevant"


@dataclass(frozen=True)
class Field:
    status: str
    note: str  # refused and warned: the feature, as a user would name it; else how, or why not


def _e(note: str) -> Field:
    return Field(EMULATED, note)


def _r(feature: str) -> Field:
    return Field(REFUSED, feature)


def _w(feature: str) -> Field:
    return Field(WARNED, feature)


def _i(note: str) -> Field:
    return Field(IRRELEVANT, note)


_SCALING = "autoscaling: the emulator starts a container per input on demand, up to `--concurrency` at once"
_SNAPSHOT = "memory snapshots only make start-up faster; every `@modal.enter` method runs at container start"
_PLACEMENT = "where a container runs: here, on this machine"
_SERVER_SET = "filled in by Modal's server for web endpoints (refused), never by a client"
_FORMATS = "the emulator answers in pickle, and says so in every handle"
_RUNTIME = "the container runtime Modal uses; here a local process"
_CONCURRENT = (
    "`@modal.concurrent`: inputs run at once in separate local containers (up to `--concurrency`), "
    "not side by side in one; results are the same, in-memory state is per container"
)
_NETWORK = (
    "network restrictions (block_network, restrict_modal_access, network access rules) are not enforced: "
    "the function runs with this machine's network"
)
_CLUSTER = "clustered functions (@modal.experimental.clustered)"

FUNCTION_FIELDS: dict[str, Field] = {
    "module_name": _e("the container imports this module from the deployed files"),
    "function_name": _e("the function's tag in the app"),
    "implementation_name": _e("the name the container looks up in the module (`name=` overrides the tag only)"),
    "mount_ids": _e("the deployed files, copied per deployment: a call runs the version it was spawned on"),
    "image_id": _e("the image's ENV and added files; its packages are this machine's Python environment"),
    "function_serialized": _r("serialized functions (serialized=True)"),
    "class_serialized": _r("serialized classes (serialized=True)"),
    "definition_type": _e("functions defined in files; serialized ones are refused"),
    "function_type": _e("functions and generators"),
    "resources": _e(
        "a GPU request is noted in the input's log against this machine's GPUs; CPU, memory and disk are the machine's"
    ),
    "secret_ids": _e("each Secret's variables in the container's environment"),
    "rate_limit": _r("rate limits"),
    "webhook_config": _r(
        "web endpoints (@modal.fastapi_endpoint, @modal.asgi_app, @modal.wsgi_app, @modal.web_server)"
    ),
    "shared_volume_mounts": _r("Network File Systems (modal.NetworkFileSystem)"),
    "proxy_id": _r("proxies (modal.Proxy)"),
    "retry_policy": _e("retries with their backoff, counted on the emulator's side"),
    "concurrency_limit": _e("`max_containers`: at most this many of the function's inputs run at once"),
    "timeout_secs": _e("counted from when the input starts executing; the container is killed at the limit"),
    "pty_info": _r("interactive functions (modal run --interactive, modal shell)"),
    "task_idle_timeout_secs": _e("`scaledown_window`: how long an idle container stays warm"),
    "cloud_provider": _i(_PLACEMENT),
    "cloud_provider_str": _i(_PLACEMENT),
    "warm_pool_size": _i("`min_containers`: " + _SCALING),
    "_experimental_buffer_containers": _i("`buffer_containers`: " + _SCALING),
    "_experimental_custom_scaling": _i(_SCALING),
    "autoscaler_settings": _i("the same limits as concurrency_limit and task_idle_timeout_secs, read there"),
    "web_url": _i(_SERVER_SET),
    "web_url_info": _i(_SERVER_SET),
    "custom_domain_info": _i(_SERVER_SET),
    "runtime": _i(_RUNTIME),
    "runtime_debug": _i(_RUNTIME),
    "runtime_perf_record": _i(_RUNTIME),
    "app_name": _i("the app is known by its id"),
    "volume_mounts": _e("each Volume at its mount path where the machine allows, else in MODAL_EMU_VOLUMES"),
    "max_concurrent_inputs": _i(_CONCURRENT),
    "target_concurrent_inputs": _i(_CONCURRENT),
    "worker_id": _i("an id of Modal's own workers"),
    "is_builder_function": _r("image build steps that run a function (Image.run_function)"),
    "is_auto_snapshot": _i(_SNAPSHOT),
    "is_checkpointing_function": _i(_SNAPSHOT),
    "checkpointing_enabled": _i(_SNAPSHOT),
    "checkpoint": _i(_SNAPSHOT),
    "snapshot_debug": _i(_SNAPSHOT),
    "_experimental_enable_gpu_snapshot": _i(_SNAPSHOT),
    "enable_gpu_snapshot": _i(_SNAPSHOT),
    "is_method": _e("a method of a class, called through the class's service function"),
    "object_dependencies": _e(
        "the app's Functions and Classes are hydrated from its layout in each container; other objects "
        "(Volumes, Dicts, Queues, ...) are looked up by name when used, with the container's client"
    ),
    "block_network": _w(_NETWORK),
    "untrusted": _w(_NETWORK),
    "network_access": _w(_NETWORK),
    "i6pn_enabled": _i("containers talk over this machine's network"),
    "max_inputs": _e("`single_use_containers`: a container stops after this many inputs"),
    "single_use_containers": _e("a container stops after one input (max_inputs carries it)"),
    "s3_mounts": _r("cloud bucket mounts (modal.CloudBucketMount)"),
    "cloud_bucket_mounts": _r("cloud bucket mounts (modal.CloudBucketMount)"),
    "scheduler_placement": _i("`region`: " + _PLACEMENT),
    "routing_region": _i(_PLACEMENT),
    "is_class": _e(
        "an `@app.cls` class: one instance per container, `@modal.enter` before inputs, `@modal.exit` at its stop"
    ),
    "class_parameter_info": _e("`modal.parameter()` values: each set of values gets containers of its own"),
    "batch_max_size": _e("`@modal.batched`: the function gets lists and returns one result per input (batches of one)"),
    "batch_linger_ms": _e("no wait: every batch holds one input"),
    "_experimental_concurrent_cancellations": _i("a cancelled call's container is killed, with all its inputs"),
    "_experimental_task_templates_enabled": _r("task templates"),
    "_experimental_task_templates": _r("task templates"),
    "_experimental_group_size": _r(_CLUSTER),
    "_experimental_fabric_size": _r(_CLUSTER),
    "schedule": _w(
        "schedules (modal.Period, modal.Cron) do not run under the local emulator: call the function yourself "
        "(a warning, not a refusal, so an app with a scheduled job still deploys and its other functions run)"
    ),
    "method_definitions": _e("the methods of a class"),
    "method_definitions_set": _e("the methods of a class"),
    "function_schema": _i("type information for other clients; handed back as it came"),
    "experimental_options": _w("experimental options are not emulated"),
    "mount_client_dependencies": _i("the modal client in a container is this machine's"),
    "flash_service_urls": _r("web servers (modal.experimental.flash)"),
    "flash_service_label": _r("web servers (modal.experimental.flash)"),
    "startup_timeout_secs": _e(
        "`startup_timeout`, when given: a container must import and run `@modal.enter` within it, or the attempt "
        "fails (when not given, modal sends the timeout; a local cold start is then not counted)"
    ),
    "supported_input_formats": _i(_FORMATS),
    "supported_output_formats": _i(_FORMATS),
    "http_config": _r("web servers (modal.experimental.flash)"),
    "is_server": _r("modal.Server"),
    "is_sessioned": _r("sessioned functions"),
}

METHOD_FIELDS: dict[str, Field] = {
    "function_name": _e("the method's name"),
    "function_type": _e("methods and generator methods"),
    "webhook_config": FUNCTION_FIELDS["webhook_config"],
    "web_url": _i(_SERVER_SET),
    "web_url_info": _i(_SERVER_SET),
    "custom_domain_info": _i(_SERVER_SET),
    "function_schema": _i("type information for other clients; handed back as it came"),
    "supported_input_formats": _i(_FORMATS),
    "supported_output_formats": _i(_FORMATS),
}

OPTION_FIELDS: dict[str, Field] = {
    "secret_ids": _e("the Secrets (and `env=`) replace the class's"),
    "replace_secret_ids": _e("the Secrets (and `env=`) replace the class's"),
    "mount_ids": _r("mounts given in options"),
    "resources": FUNCTION_FIELDS["resources"],
    "retry_policy": FUNCTION_FIELDS["retry_policy"],
    "concurrency_limit": FUNCTION_FIELDS["concurrency_limit"],
    "timeout_secs": FUNCTION_FIELDS["timeout_secs"],
    "task_idle_timeout_secs": FUNCTION_FIELDS["task_idle_timeout_secs"],
    "warm_pool_size": FUNCTION_FIELDS["warm_pool_size"],
    "volume_mounts": _e("the Volumes replace the class's"),
    "replace_volume_mounts": _e("the Volumes replace the class's"),
    "target_concurrent_inputs": FUNCTION_FIELDS["target_concurrent_inputs"],
    "max_concurrent_inputs": FUNCTION_FIELDS["max_concurrent_inputs"],
    "buffer_containers": FUNCTION_FIELDS["_experimental_buffer_containers"],
    "batch_max_size": FUNCTION_FIELDS["batch_max_size"],
    "batch_linger_ms": FUNCTION_FIELDS["batch_linger_ms"],
    "scheduler_placement": FUNCTION_FIELDS["scheduler_placement"],
    "cloud_provider_str": FUNCTION_FIELDS["cloud_provider_str"],
    "replace_cloud_bucket_mounts": FUNCTION_FIELDS["cloud_bucket_mounts"],
    "cloud_bucket_mounts": FUNCTION_FIELDS["cloud_bucket_mounts"],
    "pinned_app_version": _r("options pinned to an app version"),
    "routing_region": FUNCTION_FIELDS["routing_region"],
}

TABLES: dict[str, tuple[type[Message], dict[str, Field]]] = {
    "Function": (api_pb2.Function, FUNCTION_FIELDS),
    "MethodDefinition": (api_pb2.MethodDefinition, METHOD_FIELDS),
    "FunctionOptions": (api_pb2.FunctionOptions, OPTION_FIELDS),
}


def is_set(message: Message, name: str) -> bool:
    """The field has a value other than its default."""
    field = message.DESCRIPTOR.fields_by_name[name]
    if field.is_repeated:
        return len(getattr(message, name)) > 0
    if field.message_type is not None or field.has_presence:
        return message.HasField(name)
    return getattr(message, name) != field.default_value


def _set_fields(message: Message, table: dict[str, Field], status: str) -> list[tuple[str, Field]]:
    return [(name, f) for name, f in table.items() if f.status == status and is_set(message, name)]


def check_definition(definition: api_pb2.Function) -> None:
    """Refuse, at deploy, a function that sets a field the emulator refuses: one line naming the feature."""
    where = f"function '{definition.function_name}'"
    refused = _set_fields(definition, FUNCTION_FIELDS, REFUSED)
    for method_name, method in definition.method_definitions.items():
        refused += [(f"{method_name}.{n}", f) for n, f in _set_fields(method, METHOD_FIELDS, REFUSED)]
    if refused:
        name, field = refused[0]
        raise unimplemented(f"{field.note} in {where} ({name})")


def check_options(options: api_pb2.FunctionOptions, where: str) -> None:
    """Refuse ``with_options`` values the emulator cannot honour: one line naming the option."""
    refused = _set_fields(options, OPTION_FIELDS, REFUSED)
    if refused:
        name, field = refused[0]
        raise unimplemented(f"{field.note} in with_options of {where} ({name})")


def warned(definition: api_pb2.Function) -> list[str]:
    """What ``modal deploy`` prints for this function: each accepted feature the emulator does not carry out."""
    notes = dict.fromkeys(f.note for _, f in _set_fields(definition, FUNCTION_FIELDS, WARNED))  # once each
    return [f"function '{definition.function_name}': {note}" for note in notes]


def record(store, message: api_pb2.Function | api_pb2.FunctionOptions) -> dict:
    """The emulated settings of a definition for the runner's record; of ``with_options``, only those
    it gives, which override the definition's."""
    definition = isinstance(message, api_pb2.Function)

    def given(name: str) -> bool:
        return definition or is_set(message, name)

    out: dict = {}
    if given("timeout_secs"):
        out["timeout_secs"] = message.timeout_secs
    if given("retry_policy"):
        policy = message.retry_policy
        out["retry_policy"] = {
            "retries": policy.retries,
            "backoff_coefficient": policy.backoff_coefficient or 2.0,
            "initial_delay_ms": policy.initial_delay_ms,
            "max_delay_ms": policy.max_delay_ms or 60000,
        }
    gpu = message.resources.gpu_config
    if definition or gpu.gpu_type:  # options with only cpu= or memory= keep the definition's GPU
        out["gpu"] = gpu.gpu_type + (f":{gpu.count}" if gpu.count > 1 else "") if gpu.gpu_type else ""
    for name, key in (
        ("concurrency_limit", "max_containers"),
        ("task_idle_timeout_secs", "scaledown_window"),
        ("batch_max_size", "batch_max_size"),
    ):
        if given(name):
            out[key] = getattr(message, name)
    if definition or message.replace_secret_ids:
        out["secret_ids"] = list(message.secret_ids)
    if definition or message.replace_volume_mounts:
        out["volumes"] = _volumes(store, message.volume_mounts)
    if definition:
        # modal sends the timeout when no startup_timeout is given: only one given is counted, since a cold
        # start here (a local process importing modal, on a loaded machine) is not what a timeout measures
        startup = message.startup_timeout_secs if message.startup_timeout_secs != message.timeout_secs else 0
        out.update(max_inputs=message.max_inputs, startup_timeout_secs=startup)
    return out


def _volumes(store, mounts) -> dict[str, str]:
    from .rpc import invalid

    volumes = {}
    for vm in mounts:
        volume = store["volumes"].get(vm.volume_id)
        if volume is None:
            raise invalid(f"Volume {vm.volume_id} not found")
        volumes[vm.mount_path] = volume["name"]
    return volumes
