"""Mount RPCs: the deployed files. Content is stored by sha256, once."""

from __future__ import annotations

import hashlib

from modal_proto import api_pb2

from ..rpc import invalid, rpc
from ..store import new_id, now


@rpc
async def MountBatchedCheckExistence(
    emu, request: api_pb2.MountBatchedCheckExistenceRequest
) -> api_pb2.MountBatchedCheckExistenceResponse:
    missing = [h for h in request.sha256_hex_hashes if not emu.store.file_path(h).exists()]
    return api_pb2.MountBatchedCheckExistenceResponse(missing_sha256_hex_hashes=missing)


@rpc
async def MountPutFile(emu, request: api_pb2.MountPutFileRequest) -> api_pb2.MountPutFileResponse:
    if request.WhichOneof("data_oneof") == "data_blob_id":
        data = emu.store.file_path(emu.store["blobs"][request.data_blob_id]["sha256"]).read_bytes()
    elif request.WhichOneof("data_oneof") == "data":
        data = request.data
    else:
        return api_pb2.MountPutFileResponse(exists=emu.store.file_path(request.sha256_hex).exists())
    if hashlib.sha256(data).hexdigest() != request.sha256_hex:
        raise invalid(f"content of mount file does not match sha256 {request.sha256_hex}")
    emu.store.put_file(request.sha256_hex, data)
    return api_pb2.MountPutFileResponse(exists=True)


@rpc
async def MountGetOrCreate(emu, request: api_pb2.MountGetOrCreateRequest) -> api_pb2.MountGetOrCreateResponse:
    files = {f.filename: {"sha256": f.sha256_hex, "mode": f.mode} for f in request.files}
    for name, entry in files.items():
        if not emu.store.file_path(entry["sha256"]).exists():
            raise invalid(f"mount file {name} was never uploaded")
    checksum = hashlib.sha256(repr(sorted((k, v["sha256"]) for k, v in files.items())).encode()).hexdigest()
    mounts = emu.store["mounts"]
    name = request.deployment_name
    mount = next((m for m in mounts.values() if name and m["name"] == name), None)
    if mount is None:
        mount = {"id": new_id("mo"), "name": name, "created_at": now()}
        mounts[mount["id"]] = mount
    mount.update(files=files, checksum=checksum)
    emu.store.save()
    return api_pb2.MountGetOrCreateResponse(
        mount_id=mount["id"], handle_metadata=api_pb2.MountHandleMetadata(content_checksum_sha256_hex=checksum)
    )
