"""The gRPC server: routes each Modal RPC to its handler in ``handlers/``."""

from __future__ import annotations

import logging
from typing import Any

import grpclib.const
from grpclib import GRPCError, Status
from grpclib.server import Server, Stream
from modal_proto import api_grpc

from . import handlers, unsupported  # noqa: F401  (importing handlers registers them)
from .rpc import HANDLERS, is_streaming

log = logging.getLogger("modal_emu")


class _Routes:
    """Builds the grpclib mapping from modal_proto's generated service description."""

    def __init__(self, emu: Any):
        self.emu = emu

    def __getattr__(self, name: str):
        handler = HANDLERS.get(name)
        return self._unimplemented(name) if handler is None else self._route(name, handler)

    def _unimplemented(self, name: str):
        async def call(stream: Stream) -> None:
            await stream.recv_message()
            log.warning("UNIMPLEMENTED RPC %s", name)
            raise GRPCError(Status.UNIMPLEMENTED, unsupported.message(name))

        return call

    def _route(self, name: str, handler):
        """Unary handlers return one response, streaming ones yield several: both are sent the same way."""
        streaming = is_streaming(handler)

        async def responses(request):
            if streaming:
                async for response in handler(self.emu, request):
                    yield response
            else:
                yield await handler(self.emu, request)

        async def call(stream: Stream) -> None:
            request = await stream.recv_message()
            await self.emu.before_rpc(name)
            log.debug("RPC %s", name)
            try:
                async for response in responses(request):
                    await stream.send_message(response)
            except GRPCError:
                raise
            except Exception:
                log.exception("RPC %s failed", name)
                raise GRPCError(Status.INTERNAL, f"emulator error in {name}") from None

        return call

    def __mapping__(self) -> dict[str, grpclib.const.Handler]:
        return api_grpc.ModalClientBase.__mapping__(self)  # type: ignore[arg-type]


def make_server(emu: Any) -> Server:
    return Server([_Routes(emu)])
