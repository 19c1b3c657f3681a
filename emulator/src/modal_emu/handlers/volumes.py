"""Volume RPCs. Each Volume is a directory under the state dir, so outputs and
checkpoints persist between calls; commit and reload have nothing to do."""

from __future__ import annotations

from google.protobuf import empty_pb2
from grpclib import GRPCError, Status
from modal_proto import api_pb2

from ..rpc import not_found, rpc
from ..store import new_id, now


@rpc
async def VolumeGetOrCreate(emu, request: api_pb2.VolumeGetOrCreateRequest) -> api_pb2.VolumeGetOrCreateResponse:
    volumes = emu.store["volumes"]
    name = request.deployment_name
    volume = next((v for v in volumes.values() if name and v["name"] == name), None)
    creation = request.object_creation_type
    if volume is not None and creation == api_pb2.OBJECT_CREATION_TYPE_CREATE_FAIL_IF_EXISTS:
        raise GRPCError(Status.ALREADY_EXISTS, f"Volume '{name}' already exists")
    if volume is None:
        if name and creation == api_pb2.OBJECT_CREATION_TYPE_UNSPECIFIED:
            raise not_found(f"Volume '{name}' not found")
        volume = {"id": new_id("vo"), "name": name or new_id("anon"), "created_at": now()}
        volumes[volume["id"]] = volume
        emu.store.volume_dir(volume["name"])
        emu.store.save()
    return api_pb2.VolumeGetOrCreateResponse(
        volume_id=volume["id"],
        version=request.version,
        metadata=api_pb2.VolumeMetadata(name=volume["name"], version=request.version),
    )


@rpc
async def VolumeCommit(emu, request: api_pb2.VolumeCommitRequest) -> api_pb2.VolumeCommitResponse:
    if request.volume_id not in emu.store["volumes"]:
        raise not_found(f"Volume {request.volume_id} not found")
    return api_pb2.VolumeCommitResponse(skip_reload=True)


@rpc
async def VolumeReload(emu, request: api_pb2.VolumeReloadRequest) -> empty_pb2.Empty:
    return empty_pb2.Empty()


@rpc
async def VolumeHeartbeat(emu, request: api_pb2.VolumeHeartbeatRequest) -> empty_pb2.Empty:
    return empty_pb2.Empty()
