"""Volumes through the real CLI (`modal volume ...`) and at their mount paths inside functions."""

from __future__ import annotations

import json

import modal
import modal.exception
import pytest
from modal_emu import volumemounts


def test_put_ls_get_rm_list_delete(emulator, tmp_path):
    """Every CLI call costs seconds: each one here checks something the others do not."""
    vol = modal.Volume.from_name("emu-cli-vol", create_if_missing=True).hydrate()
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("alpha")
    (tree / "sub" / "b.txt").write_text("beta")
    (tree / "big.bin").write_bytes(bytes(range(256)) * (40 * 1024))  # 10 MiB: more than one download block
    emulator.modal("volume", "put", "emu-cli-vol", str(tree), "/tree")
    again = emulator.modal("volume", "put", "emu-cli-vol", str(tree / "a.txt"), "/tree/a.txt", check=False)
    assert again.returncode != 0 and "already exists" in again.stdout + again.stderr

    listed = json.loads(emulator.modal("volume", "ls", "emu-cli-vol", "--json").stdout)
    assert [(e["filename"], e["type"]) for e in listed] == [("tree", "dir")]
    assert sorted(e.path for e in vol.listdir("/tree", recursive=True)) == [
        "tree/a.txt",
        "tree/big.bin",
        "tree/sub",
        "tree/sub/b.txt",
    ]

    out = tmp_path / "out"
    out.mkdir()  # as `modal volume get VOL /tree .`: into an existing directory
    emulator.modal("volume", "get", "emu-cli-vol", "/tree", str(out))
    for name in ("a.txt", "sub/b.txt", "big.bin"):
        assert (out / "tree" / name).read_bytes() == (tree / name).read_bytes(), name

    not_dir = emulator.modal("volume", "rm", "emu-cli-vol", "/tree", check=False)
    assert not_dir.returncode != 0 and "directory" in not_dir.stdout + not_dir.stderr
    emulator.modal("volume", "rm", "-r", "emu-cli-vol", "/tree/sub")
    vol.remove_file("/tree/a.txt")
    assert sorted(e.path for e in vol.listdir("/", recursive=True)) == ["tree", "tree/big.bin"]

    names = [v["name"] for v in json.loads(emulator.modal("volume", "list", "--json").stdout)]
    assert "emu-cli-vol" in names and "emu-test-vol" in names
    emulator.modal("volume", "delete", "--yes", "emu-cli-vol")
    assert "emu-cli-vol" not in [v.name for v in modal.Volume.objects.list()]


def test_a_path_outside_the_volume_is_refused(emulator):
    vol = modal.Volume.from_name("emu-test-vol")
    with pytest.raises(modal.exception.InvalidError, match="outside the Volume"):
        vol.listdir("../../")
    with pytest.raises(Exception, match="outside the Volume"):
        b"".join(vol.read_file("../../state.json"))


@pytest.mark.skipif(volumemounts.unavailable_reason() is not None, reason="this machine cannot bind-mount")
def test_a_function_writes_at_the_mount_path(emulator, tmp_path):
    listed = modal.Function.from_name("emu-test", "write_at_mount").remote("at-mount.txt", "written at /emu-test-mount")
    assert "at-mount.txt" in listed
    emulator.modal("volume", "get", "emu-test-vol", "at-mount.txt", str(tmp_path / "got.txt"))
    assert (tmp_path / "got.txt").read_text() == "written at /emu-test-mount"
