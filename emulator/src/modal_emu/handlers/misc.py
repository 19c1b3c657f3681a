"""Client handshake, environments, secrets and other small RPCs."""

from __future__ import annotations

from google.protobuf import empty_pb2
from modal_proto import api_pb2

from ..rpc import existing_named, page, rpc
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
    name = request.deployment_name
    hint = f" in the local emulator: create it with `modal secret create {name} KEY=VALUE`"
    secret = existing_named(emu.store["secrets"], name, request.object_creation_type, "Secret", hint)
    if secret is None:
        secret = {"id": new_id("st"), "name": name, "env": dict(request.env_dict), "created_at": now()}
        emu.store["secrets"][secret["id"]] = secret
    elif request.object_creation_type == api_pb2.OBJECT_CREATION_TYPE_CREATE_OVERWRITE_IF_EXISTS:
        secret["env"] = dict(request.env_dict)
    emu.store.save()
    return api_pb2.SecretGetOrCreateResponse(secret_id=secret["id"])


@rpc
async def SecretList(emu, request: api_pb2.SecretListRequest) -> api_pb2.SecretListResponse:
    environment = request.environment_name or emu.config.environment
    items = [
        api_pb2.SecretListItem(
            label=secret["name"],
            created_at=secret["created_at"],
            environment_name=environment,
            secret_id=secret["id"],
            metadata=api_pb2.SecretMetadata(
                name=secret["name"],
                keys=sorted(secret["env"]),
                environment_name=environment,
                creation_info=api_pb2.CreationInfo(created_at=secret["created_at"], created_by="local"),
            ),
        )
        for secret in page(emu.store["secrets"].values(), request.pagination)
        if secret["name"]
    ]
    return api_pb2.SecretListResponse(items=items, environment_name=environment)
