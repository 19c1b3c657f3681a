"""The handler registry: one async function per RPC.

A handler is ``async def Name(emu, request) -> response``; server-streaming RPCs
are async generators that ``yield`` responses. Register one with ``@rpc`` and the
server routes ``/modal.client.ModalClient/Name`` to it. Every RPC without a
handler answers UNIMPLEMENTED and logs its name, so a missing piece is obvious.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from grpclib import GRPCError, Status

HANDLERS: dict[str, Callable[..., Any]] = {}


def rpc(fn: Callable[..., Any]) -> Callable[..., Any]:
    name = fn.__name__
    if name in HANDLERS:
        raise RuntimeError(f"two handlers for RPC {name}")
    HANDLERS[name] = fn
    return fn


def is_streaming(fn: Callable[..., Any]) -> bool:
    return inspect.isasyncgenfunction(fn)


def not_found(what: str) -> GRPCError:
    return GRPCError(Status.NOT_FOUND, what)


def invalid(what: str) -> GRPCError:
    return GRPCError(Status.INVALID_ARGUMENT, what)
