"""modal.Queue RPCs: FIFO partitions of pickled values, as on Modal (up to 5,000 items a
partition; a partition is cleared ``partition_ttl`` seconds after its last put).

A blocking get waits on ``emu.queues_changed`` (notified by every put), never polls.
"""

from __future__ import annotations

import asyncio
import time

from google.protobuf import empty_pb2
from grpclib import GRPCError, Status
from modal_proto import api_pb2

from .. import objects
from ..objects import b64, unb64
from ..rpc import rpc
from ..store import now

TABLE, KIND = "queues", "Queue"
MAX_PARTITION_ITEMS = 5000
NEXT_ITEMS_BATCH = 100


def _queue(emu, queue_id: str) -> dict:
    record = objects.by_id(emu, TABLE, queue_id, KIND)
    expired = [key for key, part in record["partitions"].items() if part["expires_at"] < now()]
    for key in expired:
        del record["partitions"][key]
    return record


def _partition(record: dict, key: bytes) -> dict:
    return record["partitions"].get(b64(key)) or {"items": [], "next_id": 1, "expires_at": float("inf")}


def _metadata(record: dict) -> api_pb2.QueueMetadata:
    return api_pb2.QueueMetadata(name=record["name"], creation_info=objects.creation_info(record))


async def _wait_for_change(emu, deadline: float) -> bool:
    """Sleep until a put on any queue, or until ``deadline`` (monotonic). False once it has passed."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    async with emu.queues_changed:
        try:
            await asyncio.wait_for(emu.queues_changed.wait(), timeout=remaining)
        except TimeoutError:
            pass
    return True


@rpc
async def QueueGetOrCreate(emu, request: api_pb2.QueueGetOrCreateRequest) -> api_pb2.QueueGetOrCreateResponse:
    record = objects.get_or_create(emu, TABLE, request, "qu", KIND, {"partitions": {}})
    return api_pb2.QueueGetOrCreateResponse(queue_id=record["id"], metadata=_metadata(record))


@rpc
async def QueueGetById(emu, request: api_pb2.QueueGetByIdRequest) -> api_pb2.QueueGetByIdResponse:
    record = _queue(emu, request.queue_id)
    return api_pb2.QueueGetByIdResponse(queue_id=record["id"], metadata=_metadata(record))


@rpc
async def QueueList(emu, request: api_pb2.QueueListRequest) -> api_pb2.QueueListResponse:
    infos = []
    for record in objects.page(objects.named(emu, TABLE), request.pagination):
        size = sum(len(p["items"]) for p in _queue(emu, record["id"])["partitions"].values())
        infos.append(
            api_pb2.QueueListResponse.QueueInfo(
                name=record["name"],
                created_at=record["created_at"],
                num_partitions=len(record["partitions"]),
                total_size=min(size, request.total_size_limit) if request.total_size_limit else size,
                queue_id=record["id"],
                metadata=_metadata(record),
            )
        )
    return api_pb2.QueueListResponse(queues=infos, environment_name=request.environment_name or emu.config.environment)


@rpc
async def QueueDelete(emu, request: api_pb2.QueueDeleteRequest) -> empty_pb2.Empty:
    objects.delete(emu, TABLE, request.queue_id, KIND)
    return empty_pb2.Empty()


@rpc
async def QueueHeartbeat(emu, request: api_pb2.QueueHeartbeatRequest) -> empty_pb2.Empty:
    objects.heartbeat(emu, TABLE, request.queue_id, KIND)
    return empty_pb2.Empty()


@rpc
async def QueuePut(emu, request: api_pb2.QueuePutRequest) -> empty_pb2.Empty:
    """A full partition answers RESOURCE_EXHAUSTED: a blocking put retries, a non-blocking one raises queue.Full."""
    record = _queue(emu, request.queue_id)
    part = _partition(record, request.partition_key)
    if len(part["items"]) + len(request.values) > MAX_PARTITION_ITEMS:
        raise GRPCError(Status.RESOURCE_EXHAUSTED, f"Queue partition is full ({MAX_PARTITION_ITEMS} items)")
    for value in request.values:
        part["items"].append([part["next_id"], b64(value)])
        part["next_id"] += 1
    part["expires_at"] = now() + (request.partition_ttl_seconds or 24 * 3600)
    record["partitions"][b64(request.partition_key)] = part
    emu.store.save()
    async with emu.queues_changed:
        emu.queues_changed.notify_all()
    return empty_pb2.Empty()


@rpc
async def QueueGet(emu, request: api_pb2.QueueGetRequest) -> api_pb2.QueueGetResponse:
    """Removes up to ``n_values`` items; with a ``timeout``, waits that long for the first one."""
    deadline = time.monotonic() + max(request.timeout, 0)
    while True:
        record = _queue(emu, request.queue_id)
        items = _partition(record, request.partition_key)["items"]
        if items:
            taken = items[: max(request.n_values, 1)]
            del items[: len(taken)]
            emu.store.save()
            return api_pb2.QueueGetResponse(values=[unb64(value) for _, value in taken])
        if not await _wait_for_change(emu, deadline):
            return api_pb2.QueueGetResponse()


@rpc
async def QueueNextItems(emu, request: api_pb2.QueueNextItemsRequest) -> api_pb2.QueueNextItemsResponse:
    """``iterate()``: the items after ``last_entry_id``, without removing them."""
    after = int(request.last_entry_id or 0)
    deadline = time.monotonic() + max(request.item_poll_timeout, 0)
    while True:
        items = _partition(_queue(emu, request.queue_id), request.partition_key)["items"]
        newer = [api_pb2.QueueItem(value=unb64(v), entry_id=str(i)) for i, v in items if i > after]
        if newer or not await _wait_for_change(emu, deadline):
            return api_pb2.QueueNextItemsResponse(items=newer[:NEXT_ITEMS_BATCH])


@rpc
async def QueueLen(emu, request: api_pb2.QueueLenRequest) -> api_pb2.QueueLenResponse:
    record = _queue(emu, request.queue_id)
    if request.total:
        return api_pb2.QueueLenResponse(len=sum(len(p["items"]) for p in record["partitions"].values()))
    return api_pb2.QueueLenResponse(len=len(_partition(record, request.partition_key)["items"]))


@rpc
async def QueueClear(emu, request: api_pb2.QueueClearRequest) -> empty_pb2.Empty:
    record = _queue(emu, request.queue_id)
    if request.all_partitions:
        record["partitions"] = {}
    else:
        record["partitions"].pop(b64(request.partition_key), None)
    emu.store.save()
    return empty_pb2.Empty()
