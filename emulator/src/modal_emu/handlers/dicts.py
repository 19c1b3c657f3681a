"""modal.Dict RPCs. Keys and values arrive pickled by the client; a key is its pickled
bytes (as on Modal, where equal keys must pickle the same), kept in insertion order."""

from __future__ import annotations

from google.protobuf import empty_pb2
from modal_proto import api_pb2

from .. import objects
from ..objects import b64, unb64
from ..rpc import rpc

TABLE, KIND = "dicts", "Dict"
MAX_LEN = 100_000  # DictLen answers at most this, as on Modal


def _dict(emu, dict_id: str) -> dict:
    return objects.by_id(emu, TABLE, dict_id, KIND)


def _metadata(record: dict) -> api_pb2.DictMetadata:
    return api_pb2.DictMetadata(name=record["name"], creation_info=objects.creation_info(record))


@rpc
async def DictGetOrCreate(emu, request: api_pb2.DictGetOrCreateRequest) -> api_pb2.DictGetOrCreateResponse:
    record = objects.get_or_create(emu, TABLE, request, "di", KIND, {"entries": {}})
    if request.data:  # initial contents, applied once, when the Dict is created
        if not record["entries"]:
            record["entries"] = {b64(e.key): b64(e.value) for e in request.data}
            emu.store.save()
    return api_pb2.DictGetOrCreateResponse(dict_id=record["id"], metadata=_metadata(record))


@rpc
async def DictGetById(emu, request: api_pb2.DictGetByIdRequest) -> api_pb2.DictGetByIdResponse:
    record = _dict(emu, request.dict_id)
    return api_pb2.DictGetByIdResponse(dict_id=record["id"], metadata=_metadata(record))


@rpc
async def DictList(emu, request: api_pb2.DictListRequest) -> api_pb2.DictListResponse:
    return api_pb2.DictListResponse(
        dicts=[
            api_pb2.DictListResponse.DictInfo(
                name=r["name"], created_at=r["created_at"], dict_id=r["id"], metadata=_metadata(r)
            )
            for r in objects.page(objects.named(emu, TABLE), request.pagination)
        ],
        environment_name=request.environment_name or emu.config.environment,
    )


@rpc
async def DictDelete(emu, request: api_pb2.DictDeleteRequest) -> empty_pb2.Empty:
    objects.delete(emu, TABLE, request.dict_id, KIND)
    return empty_pb2.Empty()


@rpc
async def DictHeartbeat(emu, request: api_pb2.DictHeartbeatRequest) -> empty_pb2.Empty:
    objects.heartbeat(emu, TABLE, request.dict_id, KIND)
    return empty_pb2.Empty()


@rpc
async def DictClear(emu, request: api_pb2.DictClearRequest) -> empty_pb2.Empty:
    _dict(emu, request.dict_id)["entries"] = {}
    emu.store.save()
    return empty_pb2.Empty()


@rpc
async def DictGet(emu, request: api_pb2.DictGetRequest) -> api_pb2.DictGetResponse:
    value = _dict(emu, request.dict_id)["entries"].get(b64(request.key))
    return api_pb2.DictGetResponse(found=value is not None, value=unb64(value) if value is not None else None)


@rpc
async def DictContains(emu, request: api_pb2.DictContainsRequest) -> api_pb2.DictContainsResponse:
    return api_pb2.DictContainsResponse(found=b64(request.key) in _dict(emu, request.dict_id)["entries"])


@rpc
async def DictLen(emu, request: api_pb2.DictLenRequest) -> api_pb2.DictLenResponse:
    return api_pb2.DictLenResponse(len=min(len(_dict(emu, request.dict_id)["entries"]), MAX_LEN))


@rpc
async def DictUpdate(emu, request: api_pb2.DictUpdateRequest) -> api_pb2.DictUpdateResponse:
    """``put(..., skip_if_exists=True)`` sends ``if_not_exists``: then nothing changes if the key is there."""
    entries = _dict(emu, request.dict_id)["entries"]
    if request.if_not_exists and any(b64(e.key) in entries for e in request.updates):
        return api_pb2.DictUpdateResponse(created=False)
    entries.update({b64(e.key): b64(e.value) for e in request.updates})
    emu.store.save()
    return api_pb2.DictUpdateResponse(created=True)


@rpc
async def DictPop(emu, request: api_pb2.DictPopRequest) -> api_pb2.DictPopResponse:
    value = _dict(emu, request.dict_id)["entries"].pop(b64(request.key), None)
    if value is None:
        return api_pb2.DictPopResponse(found=False)
    emu.store.save()
    return api_pb2.DictPopResponse(found=True, value=unb64(value))


@rpc
async def DictContents(emu, request: api_pb2.DictContentsRequest):
    for key, value in list(_dict(emu, request.dict_id)["entries"].items()):
        yield api_pb2.DictEntry(key=unb64(key), value=unb64(value))  # keys()/values() ignore the other
