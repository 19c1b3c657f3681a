"""What Dicts and Queues share: a name (or none, for ephemeral ones), get-or-create by
name, lookup by id, listing, deletion, and heartbeats that keep an ephemeral one alive.

A record lives in ``emu.store[table][object_id]``; its contents (entries, items) are
base64 strings inside the record, so it persists with the rest of the state.
"""

from __future__ import annotations

import base64

from modal_proto import api_pb2

from .rpc import existing_named, not_found
from .store import new_id, now

# The client heartbeats an ephemeral object every 300 s; one that missed a few is gone.
EPHEMERAL_GRACE_S = 3 * 300


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def creation_info(record: dict) -> api_pb2.CreationInfo:
    return api_pb2.CreationInfo(created_at=record["created_at"], created_by="local")


def get_or_create(emu, table: str, request, prefix: str, kind: str, empty: dict) -> dict:
    """The record a ``*GetOrCreate`` request names, created (with ``empty`` contents) if the
    creation type allows it; an EPHEMERAL request always gets a new, nameless one."""
    records = emu.store[table]
    _forget_abandoned(records)
    ephemeral = request.object_creation_type == api_pb2.OBJECT_CREATION_TYPE_EPHEMERAL
    name = "" if ephemeral else request.deployment_name
    record = None if ephemeral else existing_named(records, name, request.object_creation_type, kind)
    if record is None:
        record = {
            "id": new_id(prefix),
            "name": name,
            "environment": request.environment_name or emu.config.environment,
            "created_at": now(),
            "last_heartbeat": now() if ephemeral else None,
            **empty,
        }
        records[record["id"]] = record
        emu.store.save()
    return record


def by_id(emu, table: str, object_id: str, kind: str) -> dict:
    record = emu.store[table].get(object_id)
    if record is None:
        raise not_found(f"{kind} {object_id} not found (deleted, or an ephemeral {kind} whose client went away)")
    return record


def named(emu, table: str) -> list[dict]:
    """Named records, newest first, as the ``*List`` RPCs return them."""
    return sorted((r for r in emu.store[table].values() if r["name"]), key=lambda r: -r["created_at"])


def page(records: list[dict], pagination: api_pb2.ListPagination) -> list[dict]:
    if pagination.created_before:
        records = [r for r in records if r["created_at"] < pagination.created_before]
    return records[: pagination.max_objects] if pagination.max_objects else records


def delete(emu, table: str, object_id: str, kind: str) -> None:
    by_id(emu, table, object_id, kind)
    del emu.store[table][object_id]
    emu.store.save()


def heartbeat(emu, table: str, object_id: str, kind: str) -> None:
    by_id(emu, table, object_id, kind)["last_heartbeat"] = now()


def _forget_abandoned(records: dict) -> None:
    limit = now() - EPHEMERAL_GRACE_S
    for object_id, record in list(records.items()):
        if record["last_heartbeat"] is not None and record["last_heartbeat"] < limit:
            del records[object_id]
