"""Frames measured side by side: a process pool when it pays, else the calls in this process.

sep lets go of the GIL for only part of its work, so stages that measure whole frames one
by one (check, tune) share them out over processes, as many as the rule's ``threads``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["STAR_MODULES", "frame_pool"]

STAR_MODULES = ("sep", "scipy.spatial")
"""What measuring a frame's stars imports (sep; cKDTree for isolated stars): check and tune
preload them, so that their workers do not each import them again."""


class _InProcess:
    """The interface of an executor, running each call here and now."""

    def __enter__(self) -> _InProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn: Any, *iterables: Iterable[Any]) -> Iterable[Any]:
        return map(fn, *iterables)


def frame_pool(workers: int, n_frames: int, *, least: int = 4, preload: Iterable[str] = ()) -> Any:
    """An executor for ``n_frames`` calls: a process pool of ``workers`` (at most one per
    frame) from ``least`` frames on, else the calls in this process, one after another.

    ``preload`` names modules the calls import. With a pool they are imported here, before
    its workers fork from this process, so that each worker does not import them again:
    ``scipy.spatial`` alone is 0.2 to 0.3 s a process."""
    if workers <= 1 or n_frames < max(2, least):
        return _InProcess()
    import importlib
    from concurrent.futures import ProcessPoolExecutor

    for name in preload:
        importlib.import_module(name)

    return ProcessPoolExecutor(max_workers=min(workers, n_frames))
