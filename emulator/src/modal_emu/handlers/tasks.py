"""Task RPCs: an app's containers (``modal app stop`` counts them before asking)."""

from __future__ import annotations

from modal_proto import api_pb2

from ..rpc import rpc


@rpc
async def TaskList(emu, request: api_pb2.TaskListRequest) -> api_pb2.TaskListResponse:
    functions = emu.store["functions"]
    tasks = []
    for container in emu.runner.containers():
        fn = functions.get(container.key[0], {})
        if request.app_id and fn.get("app_id") != request.app_id:
            continue
        app = emu.store["apps"].get(fn.get("app_id"), {})
        tasks.append(
            api_pb2.TaskStats(
                task_id=f"ta-{container.proc.pid}",
                app_id=fn.get("app_id", ""),
                app_description=app.get("name") or app.get("description", ""),
                started_at=container.started_at,
            )
        )
    return api_pb2.TaskListResponse(tasks=tasks)
