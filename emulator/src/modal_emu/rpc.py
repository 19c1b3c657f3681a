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


def existing_named(table: dict, name: str, creation_type: int, kind: str, hint: str = "") -> dict | None:
    """The object called ``name`` in ``table``, applying Modal's get-or-create rules:
    CREATE_FAIL_IF_EXISTS on an existing name is ALREADY_EXISTS; a plain lookup
    (UNSPECIFIED) of a missing name is NOT_FOUND. ``None`` means: create it."""
    from modal_proto import api_pb2

    found = next((obj for obj in table.values() if name and obj["name"] == name), None)
    if found is not None and creation_type == api_pb2.OBJECT_CREATION_TYPE_CREATE_FAIL_IF_EXISTS:
        raise GRPCError(Status.ALREADY_EXISTS, f"{kind} '{name}' already exists")
    if found is None and name and creation_type == api_pb2.OBJECT_CREATION_TYPE_UNSPECIFIED:
        raise not_found(f"{kind} '{name}' not found{hint}")
    return found


def page(objects, pagination) -> list[dict]:
    """One page of a listing, newest first, as the client pages through it (``ListPagination``):
    objects created before ``created_before``, at most ``max_objects`` of them."""
    before = pagination.created_before or float("inf")
    newest_first = sorted((o for o in objects if o["created_at"] < before), key=lambda o: -o["created_at"])
    return newest_first[: pagination.max_objects or None]
