"""The emulator: state, configuration and the call runner, shared by every handler."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from .logs import Logs
from .runner import Runner
from .store import Store

log = logging.getLogger("modal_emu")

SEVEN_DAYS = 7 * 24 * 3600


@dataclass
class Config:
    state_dir: Path
    port: int = 0
    blob_port: int = 0
    latency_ms: float = 0.0
    concurrency: int = 8
    result_ttl_s: float = SEVEN_DAYS
    container_idle_s: float = 60.0
    heartbeat_timeout_s: float = 60.0
    environment: str = "main"
    mount_volumes: bool = True  # Volumes at their mount paths where the machine allows (volumemounts.py)
    billing_rates: dict[str, str] = field(default_factory=dict)  # rate key -> USD/s (handlers/billing.py)


class Emulator:
    def __init__(self, config: Config):
        self.config = config
        self.store = Store(config.state_dir)
        self.logs = Logs(self.store)
        self.blob_url = ""  # set once the blob HTTP server is listening
        self.server_url = ""
        self._outputs_changed: dict[str, asyncio.Event] = {}  # by call id, while someone waits on it
        self.queues_changed = asyncio.Condition()  # a put on a Queue wakes blocking gets
        self.runner = Runner(self)

    async def before_rpc(self, name: str) -> None:
        """Runs before every handler: the simulated network round trip."""
        if self.config.latency_ms:
            await asyncio.sleep(self.config.latency_ms / 1000)

    async def notify_outputs(self, call_id: str) -> None:
        """Wake everyone waiting for the outputs of ``call_id``: the current event fires, later waiters get
        a new one. Only that call's waiters: each wake-up costs a look at the call's inputs."""
        changed = self._outputs_changed.pop(call_id, None)
        if changed is not None:
            changed.set()

    def outputs_changed(self, call_id: str) -> asyncio.Event:
        """Take this before looking at the call's outputs, then wait on it: no change in between is missed."""
        return self._outputs_changed.setdefault(call_id, asyncio.Event())

    def recover(self) -> None:
        """After a restart: fail what was running (the process is gone), requeue what never started."""
        for call_id in self.store.call_ids(input_status=("running", "pending")):
            for idx, item in self.store["calls"][call_id]["inputs"].items():
                if item["status"] == "running":
                    self.runner.finish_lost(call_id, idx)
                elif item["status"] == "pending":
                    self.runner.submit(call_id, idx)
        self.store.save()
