"""spacepixels.pool: frames shared out over processes, or measured here when that is cheaper."""

from __future__ import annotations

import os
import sys

from spacepixels.pool import frame_pool


def _pid_and_loaded(name: str) -> tuple[int, bool]:
    return os.getpid(), name in sys.modules


def test_a_pool_measures_in_other_processes_with_the_preloaded_modules(monkeypatch):
    # colorsys: a small standard module nothing here imports; forgotten first so that the
    # pool has to import it before its workers fork.
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    with frame_pool(2, 6, preload=("colorsys",)) as pool:
        assert "colorsys" in sys.modules
        seen = list(pool.map(_pid_and_loaded, ["colorsys"] * 6))
    assert all(loaded for _, loaded in seen)
    assert {pid for pid, _ in seen} - {os.getpid()}, "no call ran in a worker process"


def test_one_worker_or_few_frames_run_here_without_preloading(monkeypatch):
    monkeypatch.delitem(sys.modules, "colorsys", raising=False)
    for workers, frames in ((1, 20), (2, 3)):
        with frame_pool(workers, frames, preload=("colorsys",)) as pool:
            seen = list(pool.map(_pid_and_loaded, ["colorsys"] * frames))
        assert {pid for pid, _ in seen} == {os.getpid()}
        assert not any(loaded for _, loaded in seen)
    # least lowers the count from which a pool pays.
    with frame_pool(2, 3, least=2) as pool:
        assert {pid for pid, _ in pool.map(_pid_and_loaded, ["x"] * 3)} - {os.getpid()}
