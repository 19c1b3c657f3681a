"""Call logs: every line a call's processes print, with its time and stream.

Two files per call: ``logs/<fc-id>.log`` (plain text, for people and tests) and
``logs/<fc-id>.jsonl`` (one entry per line, for ``AppFetchLogs``/``AppCountLogs``,
so that ``modal app logs APP --function-call fc-…`` works).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

from .store import Store


class Logs:
    def __init__(self, store: Store):
        self.store = store

    def append(self, call: dict, idx: str | None, fd: int, *texts: str) -> None:
        """Log lines of a call (of its input ``idx``, or of the call itself): one entry each."""
        plain = self.store.log_path(call["id"])
        with _open(plain) as f:
            f.writelines(texts)
        entry = {
            "ts": time.time(),
            "fd": fd,
            "data": "",
            "app_id": call["app_id"],
            "function_id": call["function_id"],
            "function_call_id": call["id"],
            "input_id": call["inputs"][idx]["input_id"] if idx is not None else "",
        }
        with _open(plain.with_suffix(".jsonl")) as f:
            f.writelines(json.dumps({**entry, "data": text}) + "\n" for text in texts)

    def entries(
        self,
        app_id: str,
        since: float,
        until: float,
        *,
        function_id: str = "",
        function_call_id: str = "",
        source: int = 0,
        search: str = "",
    ) -> Iterator[dict]:
        """Entries of an app in [since, until), oldest first, filtered like Modal's log API."""
        ids = [function_call_id] if function_call_id else self.store.call_ids(app_id=app_id)
        found = []
        for call_id in ids:
            path = self.store.log_path(call_id).with_suffix(".jsonl")
            if not path.exists():
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                if not since <= entry["ts"] < until or entry["app_id"] != app_id:
                    continue
                if function_id and entry["function_id"] != function_id:
                    continue
                if source and entry["fd"] != source:
                    continue
                if search and search not in entry["data"]:
                    continue
                found.append(entry)
        return iter(sorted(found, key=lambda e: e["ts"]))


def _open(path: Path):
    try:  # the folder exists but for the first line: no mkdir per line
        return open(path, "a", encoding="utf-8")
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "a", encoding="utf-8")
