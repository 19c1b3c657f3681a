"""Persistent emulator state: one JSON document plus content files, under ``state_dir``.

Everything a client may ask about later lives here (apps and their deployment
history, function definitions, uploaded files, calls and their outputs), so an
emulator restarted after a crash still answers for earlier calls.

Layout::

    state.json          the document below, replaced atomically on every change
    files/<sha256>      content of uploaded mount files and blobs
    calls/<fc-id>/      <idx>.in (FunctionInput) and <idx>.out (GenericResult), protobuf bytes
    deploy/<fu-id>/     the deployed files of a function, as uploaded (what a call runs)
    volumes/<name>/     one directory per modal.Volume
    logs/<fc-id>.log    stdout/stderr of every attempt of a call
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any


def new_id(prefix: str) -> str:
    """Ids look like Modal's (``fu-…``, ``fc-…``): the client checks the prefix."""
    return f"{prefix}-{secrets.token_hex(11)}"


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


class Store:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / "state.json"
        self.doc: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        for table in ("apps", "functions", "mounts", "images", "volumes", "secrets", "calls", "blobs"):
            self.doc.setdefault(table, {})
        for table in ("dicts", "queues", "classes", "variants"):
            self.doc.setdefault(table, {})

    # ------------------------------------------------------------------ tables
    def __getitem__(self, table: str) -> dict[str, Any]:
        return self.doc[table]

    def save(self) -> None:
        """Called from the event loop only (handlers, runner, blob server): no locking needed."""
        atomic_write(self.root / "state.json", json.dumps(self.doc, sort_keys=True).encode())

    # ------------------------------------------------------------------- paths
    def file_path(self, sha256_hex: str) -> Path:
        return self.root / "files" / sha256_hex

    def put_file(self, sha256_hex: str, data: bytes) -> None:
        path = self.file_path(sha256_hex)
        if not path.exists():
            atomic_write(path, data)

    def call_dir(self, call_id: str) -> Path:
        return self.root / "calls" / call_id

    def deploy_dir(self, function_id: str) -> Path:
        return self.root / "deploy" / function_id

    def volume_dir(self, name: str) -> Path:
        path = self.root / "volumes" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def log_path(self, call_id: str) -> Path:
        return self.root / "logs" / f"{call_id}.log"


def now() -> float:
    return time.time()
