"""Volume RPCs. Each Volume is a directory under the state dir, so outputs and
checkpoints persist between calls; commit and reload have nothing to do."""

from __future__ import annotations

from google.protobuf import empty_pb2
from modal_proto import api_pb2

from ..rpc import existing_named, not_found, rpc
from ..store import new_id, now


@rpc
async def VolumeGetOrCreate(emu, request: api_pb2.VolumeGetOrCreateRequest) -> api_pb2.VolumeGetOrCreateResponse:
    name = request.deployment_name
    volume = existing_named(emu.store["volumes"], name, request.object_creation_type, "Volume")
    if volume is None:
        volume = {"id": new_id("vo"), "name": name or new_id("anon"), "created_at": now()}
        emu.store["volumes"][volume["id"]] = volume
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
