"""Generator functions (``remote_gen()``): the items a call yields, streamed to the caller.

The worker writes each item as a numbered file of the call (``<idx>.chunks/1, 2, ...``)
while the generator runs; its result is a ``GeneratorDone`` with the item count, which
tells the client when it has them all.
"""

from __future__ import annotations

import asyncio
import time

from modal_proto import api_pb2

from ..rpc import invalid, not_found, rpc

POLL_S = 0.02
HOLD_S = 55.0  # after the last item: the client closes the stream once the GeneratorDone arrives


@rpc
async def FunctionCallGetDataOut(emu, request: api_pb2.FunctionCallGetDataRequest):
    if request.WhichOneof("call_info") != "function_call_id":
        raise invalid("the local Modal emulator streams generator data by function call id only")
    call = emu.store["calls"].get(request.function_call_id)
    if call is None:
        raise not_found(f"Function call {request.function_call_id} not found")
    idx = min(call["inputs"], key=int)  # a generator call has a single input
    chunks = emu.store.call_dir(call["id"]) / f"{idx}.chunks"
    sent = request.last_index
    held_since = None
    while True:
        finished = call["inputs"][idx]["status"] == "done"  # read first: no item written before it is missed
        while (chunk := chunks / str(sent + 1)).exists():
            sent += 1
            yield api_pb2.DataChunk(index=sent, data=chunk.read_bytes(), data_format=api_pb2.DATA_FORMAT_PICKLE)
        if finished:
            held_since = held_since or time.monotonic()
            if time.monotonic() - held_since > HOLD_S:
                return
        await asyncio.sleep(POLL_S)
