"""The files in a Volume, for ``modal volume ls / get / put / cp / rm`` and ``Volume.listdir``,
``read_file``, ``batch_upload``, ``remove_file`` and ``copy_files`` (Volumes of version 1:
the emulator creates those).

A Volume is a directory (``volumes/<name>``); paths in requests are relative to it and
may never leave it. Downloads go through the emulator's HTTP server in blocks of
Modal's block size, as the client expects (see ``blobserver.py``).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from urllib.parse import quote

from google.protobuf import empty_pb2
from grpclib import GRPCError, Status
from modal._utils.blob_utils import BLOCK_SIZE
from modal_proto import api_pb2

from ..rpc import invalid, not_found, rpc
from ..store import atomic_write
from .volumes import volume

FileEntry = api_pb2.FileEntry


def volume_root(emu, volume_id: str) -> Path:
    return emu.store.volume_dir(volume(emu, volume_id)["name"]).resolve()


def volume_path(emu, volume_id: str, path: str) -> tuple[Path, Path]:
    """(the Volume's directory, ``path`` inside it); a path that leaves the Volume is refused."""
    root = volume_root(emu, volume_id)
    target = (root / path.lstrip("/")).resolve()
    if target != root and root not in target.parents:
        raise invalid(f"path {path!r} is outside the Volume")
    return root, target


def _entry(root: Path, path: Path) -> api_pb2.FileEntry:
    info = path.lstat()
    kind = (
        FileEntry.FileType.SYMLINK
        if stat.S_ISLNK(info.st_mode)
        else FileEntry.FileType.DIRECTORY
        if stat.S_ISDIR(info.st_mode)
        else FileEntry.FileType.FILE
    )
    return FileEntry(path=path.relative_to(root).as_posix(), type=kind, mtime=int(info.st_mtime), size=info.st_size)


@rpc
async def VolumeListFiles(emu, request: api_pb2.VolumeListFilesRequest):
    root, target = volume_path(emu, request.volume_id, request.path)
    if not target.exists():
        raise not_found(f"No such file or directory: {request.path}")
    if not target.is_dir():
        found = [target]
    elif request.recursive:
        found = sorted(target.rglob("*"))
    else:
        found = sorted(target.iterdir())
    if request.max_entries:
        found = found[: request.max_entries]
    batch = 100
    for start in range(0, len(found), batch):
        yield api_pb2.VolumeListFilesResponse(entries=[_entry(root, p) for p in found[start : start + batch]])
    if not found:
        yield api_pb2.VolumeListFilesResponse()


@rpc
async def VolumeGetFile2(emu, request: api_pb2.VolumeGetFile2Request) -> api_pb2.VolumeGetFile2Response:
    root, target = volume_path(emu, request.volume_id, request.path)
    if not target.is_file():
        raise not_found(f"No such file: {request.path}")
    size = target.stat().st_size
    start = min(request.start, size)
    length = min(request.len or size - start, size - start)
    rel = quote(target.relative_to(root).as_posix())
    urls, pos, end = [], start, start + length
    while pos < end:  # a URL per block-aligned piece of [start, end), as the client splits it
        piece = min(end, (pos // BLOCK_SIZE + 1) * BLOCK_SIZE) - pos
        urls.append(f"{emu.blob_url}/volumes/{request.volume_id}/file?path={rel}&offset={pos}&length={piece}")
        pos += piece
    return api_pb2.VolumeGetFile2Response(get_urls=urls, size=size, start=start, len=length)


@rpc
async def VolumePutFiles(emu, request: api_pb2.VolumePutFilesRequest) -> empty_pb2.Empty:
    targets = [(f, volume_path(emu, request.volume_id, f.filename)[1]) for f in request.files]
    for f, target in targets:  # check everything first: nothing half-done
        if not emu.store.file_path(f.sha256_hex).exists():
            raise invalid(f"file {f.filename} was never uploaded")
        if request.disallow_overwrite_existing_files and target.exists():
            raise GRPCError(Status.ALREADY_EXISTS, f"{f.filename}: already exists (use --force to overwrite)")
    for f, target in targets:
        atomic_write(target, emu.store.file_path(f.sha256_hex).read_bytes())
        if f.mode:
            target.chmod(f.mode & 0o777)
    return empty_pb2.Empty()


@rpc
async def VolumeRemoveFile(emu, request: api_pb2.VolumeRemoveFileRequest) -> empty_pb2.Empty:
    root, target = volume_path(emu, request.volume_id, request.path)
    if not target.exists() and not target.is_symlink():
        raise not_found(f"No such file or directory: {request.path}")
    if target.is_dir() and not target.is_symlink():
        if not request.recursive:
            raise invalid(f"{request.path} is a directory: remove it with recursive=True (-r)")
        if target == root:
            for child in root.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        else:
            shutil.rmtree(target)
    else:
        target.unlink()
    return empty_pb2.Empty()


@rpc
async def VolumeCopyFiles(emu, request: api_pb2.VolumeCopyFilesRequest) -> empty_pb2.Empty:
    sources = [volume_path(emu, request.volume_id, p)[1] for p in request.src_paths]
    _, dst = volume_path(emu, request.volume_id, request.dst_path)
    for src in sources:
        if not src.exists():
            raise not_found(f"No such file or directory: {src.name}")
        if src.is_dir() and not request.recursive:
            raise invalid(f"{src.name} is a directory: copy it with recursive=True (-r)")
    for src in sources:
        into = dst / src.name if dst.is_dir() or len(sources) > 1 else dst
        if src.is_dir():
            shutil.copytree(src, into, dirs_exist_ok=True)
        else:
            os.makedirs(into.parent, exist_ok=True)
            shutil.copy2(src, into)
    return empty_pb2.Empty()
