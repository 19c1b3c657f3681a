"""The gRPC server: routes each Modal RPC to its handler in ``handlers/``."""

from __future__ import annotations

import logging
from typing import Any

import grpclib.const
from grpclib import GRPCError, Status
from grpclib.server import Server, Stream
from modal_proto import api_grpc

from . import handlers  # noqa: F401  (registers the handlers)
from .rpc import HANDLERS, is_streaming

log = logging.getLogger("modal_emu")


class _Routes:
    """Builds the grpclib mapping from modal_proto's generated service description."""

    def __init__(self, emu: Any):
        self.emu = emu

    def __getattr__(self, name: str):
        handler = HANDLERS.get(name)
        if handler is None:
            return self._unimplemented(name)
        if is_streaming(handler):
            return self._streaming(name, handler)
        return self._unary(name, handler)

    def _unimplemented(self, name: str):
        async def call(stream: Stream) -> None:
            await stream.recv_message()
            log.warning("UNIMPLEMENTED RPC %s", name)
            raise GRPCError(Status.UNIMPLEMENTED, f"the local Modal emulator does not implement {name}")

        return call

    def _unary(self, name: str, handler):
        async def call(stream: Stream) -> None:
            request = await stream.recv_message()
            await self.emu.before_rpc(name)
            log.debug("RPC %s", name)
            try:
                response = await handler(self.emu, request)
            except GRPCError:
                raise
            except Exception:
                log.exception("RPC %s failed", name)
                raise GRPCError(Status.INTERNAL, f"emulator error in {name}") from None
            await stream.send_message(response)

        return call

    def _streaming(self, name: str, handler):
        async def call(stream: Stream) -> None:
            request = await stream.recv_message()
            await self.emu.before_rpc(name)
            log.debug("RPC %s (stream)", name)
            async for response in handler(self.emu, request):
                await stream.send_message(response)

        return call

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        return api_grpc.ModalClientBase.__mapping__(self)  # type: ignore[arg-type]


def make_server(emu: Any) -> Server:
    return Server([_Routes(emu)])
