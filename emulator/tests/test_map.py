"""`.map()`, `.starmap()`, `.for_each()` and generators through the real modal client."""

from __future__ import annotations

import time

import modal


def fn(name: str) -> modal.Function:
    return modal.Function.from_name("emu-test", name)


def test_map_returns_every_result_in_order(emulator):
    started = time.monotonic()
    assert list(fn("square").map(range(500))) == [x * x for x in range(500)]
    # a hang would never get here; "reasonable" is generous, the machine is shared
    assert time.monotonic() - started < 90


def test_map_unordered_and_with_exceptions(emulator):
    assert sorted(fn("square").map(range(20), order_outputs=False)) == sorted(x * x for x in range(20))
    results = list(fn("boom").map(["a", "b"], return_exceptions=True))
    assert [str(r) for r in results] == ["a", "b"]


def test_starmap(emulator):
    assert list(fn("add").starmap([(1, 2), (3, 4), (5, 6)])) == [3, 7, 11]


def test_for_each(emulator, tmp_path):
    paths = [tmp_path / f"f{i}" for i in range(5)]
    fn("touch").for_each([str(p) for p in paths])
    assert all(p.read_text() == "touched" for p in paths)


def test_remote_gen(emulator):
    assert list(fn("count_up").remote_gen(4)) == [0, 10, 20, 30]
    assert list(fn("count_up").remote_gen(0)) == []
