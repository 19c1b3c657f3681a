"""Client handshake, environments, secrets and other small RPCs."""

from __future__ import annotations

from google.protobuf import empty_pb2
from grpclib import GRPCError, Status
from modal_proto import api_pb2

from ..rpc import not_found, rpc
from ..store import new_id, now


@rpc
async def ClientHello(emu, request: empty_pb2.Empty) -> api_pb2.ClientHelloResponse:
    return api_pb2.ClientHelloResponse()


@rpc
async def EnvironmentGetOrCreate(
    emu, request: api_pb2.EnvironmentGetOrCreateRequest
) -> api_pb2.EnvironmentGetOrCreateResponse:
    name = request.deployment_name or emu.config.environment
    return api_pb2.EnvironmentGetOrCreateResponse(
        environment_id=f"en-{name}",
        metadata=api_pb2.EnvironmentMetadata(
            name=name,
            settings=api_pb2.EnvironmentSettings(image_builder_version="2025.06", webhook_suffix="local"),
        ),
    )


@rpc
async def SecretGetOrCreate(emu, request: api_pb2.SecretGetOrCreateRequest) -> api_pb2.SecretGetOrCreateResponse:
    secrets = emu.store["secrets"]
    name = request.deployment_name
    existing = next((s for s in secrets.values() if name and s["name"] == name), None)
    creation = request.object_creation_type
    if existing is not None and creation in (api_pb2.OBJECT_CREATION_TYPE_CREATE_FAIL_IF_EXISTS,):
        raise GRPCError(Status.ALREADY_EXISTS, f"Secret '{name}' already exists")
    if existing is not None and creation == api_pb2.OBJECT_CREATION_TYPE_CREATE_OVERWRITE_IF_EXISTS:
        existing["env"] = dict(request.env_dict)
        emu.store.save()
    if existing is None:
        if name and creation == api_pb2.OBJECT_CREATION_TYPE_UNSPECIFIED:
            raise not_found(
                f"Secret '{name}' not found in the local emulator: "
                f"create it with `modal secret create {name} KEY=VALUE`"
            )
        existing = {"id": new_id("st"), "name": name, "env": dict(request.env_dict), "created_at": now()}
        secrets[existing["id"]] = existing
        emu.store.save()
    return api_pb2.SecretGetOrCreateResponse(secret_id=existing["id"])
