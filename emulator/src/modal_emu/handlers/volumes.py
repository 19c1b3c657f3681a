"""Volume RPCs. Each Volume is a directory under the state dir, so outputs and
checkpoints persist between calls; commit and reload have nothing to do."""

from __future__ import annotations

import shutil

from google.protobuf import empty_pb2
from modal_proto import api_pb2

from ..rpc import existing_named, not_found, page, rpc
from ..store import new_id, now


def volume(emu, volume_id: str) -> dict:
    found = emu.store["volumes"].get(volume_id)
    if found is None:
        raise not_found(f"Volume {volume_id} not found")
    return found


def _metadata(found: dict, version: int = 0) -> api_pb2.VolumeMetadata:
    return api_pb2.VolumeMetadata(
        name=found["name"],
        version=version,
        creation_info=api_pb2.CreationInfo(created_at=found["created_at"], created_by="local"),
    )


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
        volume_id=volume["id"], version=request.version, metadata=_metadata(volume, request.version)
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


@rpc
async def VolumeGetById(emu, request: api_pb2.VolumeGetByIdRequest) -> api_pb2.VolumeGetByIdResponse:
    found = volume(emu, request.volume_id)
    return api_pb2.VolumeGetByIdResponse(volume_id=found["id"], metadata=_metadata(found))


@rpc
async def VolumeList(emu, request: api_pb2.VolumeListRequest) -> api_pb2.VolumeListResponse:
    named = [v for v in emu.store["volumes"].values() if not v["name"].startswith("anon-")]
    return api_pb2.VolumeListResponse(
        items=[
            api_pb2.VolumeListItem(
                label=v["name"], volume_id=v["id"], created_at=v["created_at"], metadata=_metadata(v)
            )
            for v in page(named, request.pagination)
        ],
        environment_name=request.environment_name or emu.config.environment,
    )


@rpc
async def VolumeDelete(emu, request: api_pb2.VolumeDeleteRequest) -> empty_pb2.Empty:
    found = volume(emu, request.volume_id)
    del emu.store["volumes"][found["id"]]
    emu.store.save()
    shutil.rmtree(emu.store.volume_dir(found["name"]), ignore_errors=True)
    return empty_pb2.Empty()
