"""The blob HTTP endpoint (PUT to upload, GET to download), bound to 127.0.0.1."""

from __future__ import annotations

import hashlib

from aiohttp import web


def make_blob_app(emu) -> web.Application:
    async def put(request: web.Request) -> web.Response:
        blob = emu.store["blobs"].get(request.match_info["blob_id"])
        if blob is None:
            return web.Response(status=404, text="unknown blob")
        data = await request.read()
        sha = hashlib.sha256(data).hexdigest()
        emu.store.put_file(sha, data)
        blob.update(sha256=sha, size=len(data))
        emu.store.save()
        return web.Response(status=200, headers={"ETag": f'"{hashlib.md5(data).hexdigest()}"'})

    async def get(request: web.Request) -> web.Response:
        blob = emu.store["blobs"].get(request.match_info["blob_id"])
        if blob is None or not blob["sha256"]:
            return web.Response(status=404, text="unknown blob")
        return web.Response(body=emu.store.file_path(blob["sha256"]).read_bytes())

    async def volume_block(request: web.Request) -> web.Response:
        """A block of a Volume file (``VolumeGetFile2`` hands out these URLs)."""
        from grpclib import GRPCError

        from .handlers.volumefiles import volume_path

        try:
            _, path = volume_path(emu, request.match_info["volume_id"], request.query.get("path", ""))
        except GRPCError as exc:
            return web.Response(status=404, text=str(exc.message))
        if not path.is_file():
            return web.Response(status=404, text="no such file")
        try:
            offset, length = int(request.query["offset"]), int(request.query["length"])
        except (KeyError, ValueError):
            return web.Response(status=400, text="offset and length are required")
        with open(path, "rb") as f:
            f.seek(offset)
            return web.Response(body=f.read(length))

    app = web.Application(client_max_size=1024**4)
    app.router.add_get("/volumes/{volume_id}/file", volume_block)
    app.router.add_put("/blobs/{blob_id}", put)
    app.router.add_get("/blobs/{blob_id}", get)
    return app
