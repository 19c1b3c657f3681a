"""The store: every change is saved, saving writes only what changed, and old state dirs still open."""

from __future__ import annotations

import asyncio
import gc
import json

import pytest
from modal_emu.store import Store


def reopened(store: Store) -> Store:
    store.close()
    return Store(store.root)


def test_changes_through_references_held_across_saves_are_saved(tmp_path):
    store = Store(tmp_path)
    store["calls"]["fc-1"] = {"inputs": {"0": {"status": "pending"}}, "log": []}
    call = store["calls"]["fc-1"]
    item = call["inputs"]["0"]
    store.save()
    item.update(status="running", attempts=1)  # the runner holds these across awaits and saves
    call["log"].append({"line": "started"})
    call["log"][0]["line"] += "!"
    store.save()
    item["status"] = "done"
    store.save()
    again = reopened(store)["calls"]["fc-1"]
    assert again == {"inputs": {"0": {"status": "done", "attempts": 1}}, "log": [{"line": "started!"}]}


@pytest.mark.parametrize("where", ["request", "task", "script"])
def test_a_dict_changed_after_it_was_stored_is_saved(tmp_path, where):
    store = Store(tmp_path)

    def handler():
        mount = {"id": "mo-1", "files": {}}
        store["mounts"]["mo-1"] = mount
        store.save()
        mount.update(checksum="abc")  # the pattern of MountGetOrCreate and _new_app
        mount["files"]["a.py"] = {"sha256": "00"}

    async def task():
        handler()
        await asyncio.sleep(0)

    if where == "request":
        with store.request():
            handler()
    elif where == "task":
        asyncio.run(task())  # a task's adoptions are carried over when it ends
    else:
        handler()
    assert reopened(store)["mounts"]["mo-1"] == {"id": "mo-1", "files": {"a.py": {"sha256": "00"}}, "checksum": "abc"}


def test_save_writes_only_the_rows_that_changed(tmp_path):
    store = Store(tmp_path)
    for i in range(1000):
        store["calls"][f"fc-{i}"] = {"inputs": {"0": {"status": "done"}}}
    store.save()
    before = store.db.total_changes
    store["calls"]["fc-7"]["inputs"]["0"]["delivered"] = True
    store["apps"]["ap-1"] = {"name": "new"}
    store.save()
    assert store.db.total_changes - before == 2
    store.save()  # nothing changed since
    assert store.db.total_changes - before == 2


def test_rows_nobody_holds_are_not_all_kept_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr("modal_emu.store.KEEP_RECENT_ROWS", 10)
    store = Store(tmp_path)
    for i in range(100):
        store["calls"][f"fc-{i}"] = {"n": i}
    held = store["calls"]["fc-3"]
    store = reopened(store)
    total = sum(store["calls"][f"fc-{i}"]["n"] for i in range(100))
    gc.collect()
    assert total == sum(range(100))
    assert len(store["calls"]._live) <= 11
    assert store["calls"]["fc-50"] is store["calls"]["fc-50"]
    assert held["n"] == 3


def test_deleted_and_replaced_rows(tmp_path):
    store = Store(tmp_path)
    store["blobs"]["bl-1"] = {"size": 1}
    store["blobs"]["bl-2"] = {"size": 2}
    old = store["blobs"]["bl-2"]
    store.save()
    del store["blobs"]["bl-1"]
    store["blobs"]["bl-2"] = {"size": 3}
    old["size"] = 99  # a replaced row is no longer the stored one
    again = reopened(store)["blobs"]
    assert dict(again.items()) == {"bl-2": {"size": 3}}


def test_only_json_values_are_accepted_where_they_are_stored(tmp_path):
    store = Store(tmp_path)
    store["apps"]["ap-1"] = {"name": "x"}
    with pytest.raises(TypeError, match="JSON values only, not bytes"):
        store["apps"]["ap-1"]["blob"] = b"raw"
    with pytest.raises(TypeError, match="str keys to dicts"):
        store["apps"]["ap-2"] = ["not", "a", "dict"]


def test_an_old_state_json_is_imported_once(tmp_path):
    doc = {"apps": {"ap-1": {"name": "old", "function_ids": {"f": "fu-1"}}}, "calls": {"fc-1": {"inputs": {}}}}
    (tmp_path / "state.json").write_text(json.dumps(doc))
    store = Store(tmp_path)
    assert store["apps"]["ap-1"]["function_ids"] == {"f": "fu-1"}
    assert list(store["calls"]) == ["fc-1"]
    assert not (tmp_path / "state.json").exists() and (tmp_path / "state.json.imported").exists()
    store["apps"]["ap-1"]["name"] = "renamed"
    assert reopened(store)["apps"]["ap-1"]["name"] == "renamed"


def test_calls_are_found_by_app_and_input_status(tmp_path):
    store = Store(tmp_path)
    store["calls"]["fc-1"] = {"app_id": "ap-1", "inputs": {"0": {"status": "done"}, "1": {"status": "running"}}}
    store["calls"]["fc-2"] = {"app_id": "ap-2", "inputs": {"0": {"status": "pending"}}}
    store["calls"]["fc-3"] = {"app_id": "ap-1", "inputs": {"0": {"status": "done"}}}
    assert store.call_ids(app_id="ap-1") == ["fc-1", "fc-3"]
    assert store.call_ids(input_status=("running", "pending")) == ["fc-1", "fc-2"]
    store["calls"]["fc-1"]["inputs"]["1"]["status"] = "done"  # seen without an explicit save
    assert store.call_ids(app_id="ap-1", input_status=("running",)) == []
