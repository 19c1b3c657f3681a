"""Image RPCs. Images are recorded, not built: a call runs with the emulator's own
Python environment, plus the ``ENV`` lines of the image and its base images."""

from __future__ import annotations

import base64
import hashlib
import shlex

from modal_proto import api_pb2

from ..rpc import rpc

SUCCESS = api_pb2.GenericResult(status=api_pb2.GenericResult.GENERIC_STATUS_SUCCESS)


def image_env(emu, image_id: str) -> dict[str, str]:
    """The environment variables an image sets, base images first."""
    image = emu.store["images"].get(image_id)
    if image is None:
        return {}
    env: dict[str, str] = {}
    for base_id in image["base_ids"]:
        env.update(image_env(emu, base_id))
    for line in image["commands"]:
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                key, sep, value = pair.partition("=")
                if sep:
                    env[key] = value
    return env


def image_mount_ids(emu, image_id: str) -> list[str]:
    """Mounts attached to an image chain (``add_local_*`` layers), base images first."""
    image = emu.store["images"].get(image_id)
    if image is None:
        return []
    ids = [m for base_id in image["base_ids"] for m in image_mount_ids(emu, base_id)]
    return ids + image["mount_ids"]


@rpc
async def ImageGetOrCreate(emu, request: api_pb2.ImageGetOrCreateRequest) -> api_pb2.ImageGetOrCreateResponse:
    definition = request.image.SerializeToString(deterministic=True)
    image_id = "im-" + hashlib.sha256(definition).hexdigest()[:22]
    emu.store["images"][image_id] = {
        "id": image_id,
        "base_ids": [b.image_id for b in request.image.base_images],
        "commands": list(request.image.dockerfile_commands),
        "mount_ids": [request.image.context_mount_id] if request.image.context_mount_id else [],
        "definition": base64.b64encode(definition).decode(),
    }
    emu.store.save()
    return api_pb2.ImageGetOrCreateResponse(
        image_id=image_id,
        result=SUCCESS,
        metadata=api_pb2.ImageMetadata(image_builder_version=request.builder_version),
    )


@rpc
async def ImageJoinStreaming(emu, request: api_pb2.ImageJoinStreamingRequest):
    yield api_pb2.ImageJoinStreamingResponse(result=SUCCESS, eof=True)
