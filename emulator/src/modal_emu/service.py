"""Starting and stopping the gRPC server, the blob server and the runner together."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

from aiohttp import web

from . import preempt
from .blobserver import make_blob_app
from .core import Config, Emulator
from .server import make_server
from .store import atomic_write

log = logging.getLogger("modal_emu")
HOST = "127.0.0.1"


class Service:
    """An emulator with its servers; ``await start()``, then ``await stop()``."""

    def __init__(self, config: Config):
        self.config = config
        self.emu = Emulator(config)
        self._grpc = make_server(self.emu)
        self._blob_runner: web.AppRunner | None = None

    async def start(self) -> str:
        self._blob_runner = web.AppRunner(make_blob_app(self.emu), access_log=None)
        await self._blob_runner.setup()
        site = web.TCPSite(self._blob_runner, HOST, self.config.blob_port)
        await site.start()
        blob_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.emu.blob_url = f"http://{HOST}:{blob_port}"
        await self._grpc.start(HOST, self.config.port)
        port = self._grpc._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.emu.server_url = f"http://{HOST}:{port}"
        self.emu.recover()
        self._watchdog = asyncio.ensure_future(self._watch_heartbeats())
        root = self.emu.store.root
        atomic_write(root / "server.pid", str(os.getpid()).encode())
        atomic_write(root / "url", self.emu.server_url.encode())
        log.info("local Modal emulator listening on %s (state in %s)", self.emu.server_url, root)
        return self.emu.server_url

    async def _watch_heartbeats(self) -> None:
        from .handlers.apps import stop_orphaned_ephemeral_apps

        while True:
            await asyncio.sleep(min(1.0, self.config.heartbeat_timeout_s / 4))
            try:
                await stop_orphaned_ephemeral_apps(self.emu)
            except Exception:
                log.exception("heartbeat watchdog failed")

    async def stop(self) -> None:
        self._watchdog.cancel()
        root = self.emu.store.root
        _remove_if_unchanged(root / "url", self.emu.server_url.encode())
        _remove_if_unchanged(root / "server.pid", str(os.getpid()).encode())
        await self.emu.runner.shutdown()
        self._grpc.close()
        await self._grpc.wait_closed()
        if self._blob_runner is not None:
            await self._blob_runner.cleanup()
        self.emu.store.close()


def _remove_if_unchanged(path, written: bytes) -> None:
    """Remove a file this server wrote, unless it holds something else by now: if its state folder was
    deleted while it ran, these may be another server's files, which must outlive this one."""
    try:
        if path.read_bytes() == written:
            path.unlink()
    except FileNotFoundError:
        pass


async def run_forever(config: Config, on_ready: Callable[[str], None] = lambda url: None) -> None:
    service = Service(config)
    loop = asyncio.get_running_loop()
    # Before server.pid exists: a preempt sent at once must find its handler, not SIGUSR1's default (exit).
    loop.add_signal_handler(signal.SIGUSR1, preempt.answer, service.emu)  # python -m modal_emu preempt
    url = await service.start()
    on_ready(url)
    stopped = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopped.set)
    await stopped.wait()
    log.info("shutting down")
    await service.stop()
