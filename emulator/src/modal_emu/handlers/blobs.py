"""Blob RPCs. Payloads over Modal's inline limits travel as blobs: the client PUTs
them to an upload URL and GETs them from a download URL, both served by the
emulator's small HTTP server on 127.0.0.1 (see ``blobserver.py``)."""

from __future__ import annotations

from modal_proto import api_pb2

from ..rpc import not_found, rpc
from ..store import new_id, now


@rpc
async def BlobCreate(emu, request: api_pb2.BlobCreateRequest) -> api_pb2.BlobCreateResponse:
    blob_id = new_id("bl")
    emu.store["blobs"][blob_id] = {"sha256": "", "size": request.content_length, "created_at": now()}
    emu.store.save()
    url = f"{emu.blob_url}/blobs/{blob_id}"
    return api_pb2.BlobCreateResponse(blob_ids=[blob_id], upload_urls=api_pb2.UploadUrlList(items=[url]))


@rpc
async def BlobGet(emu, request: api_pb2.BlobGetRequest) -> api_pb2.BlobGetResponse:
    blob = emu.store["blobs"].get(request.blob_id)
    if blob is None or not blob["sha256"]:
        raise not_found(f"Blob {request.blob_id} not found")
    return api_pb2.BlobGetResponse(download_url=f"{emu.blob_url}/blobs/{request.blob_id}")
