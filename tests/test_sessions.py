"""Session discovery reads names only and explains every folder it passes over."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spacepixels.sessions import DiscoveryError, check_results_root, discover_sessions


def _touch_frames(folder: Path, n: int, suffix: str = ".fits") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        # Not FITS at all: discovery must never open a file.
        (folder / f"light_{i:03d}{suffix}").write_bytes(b"")


def test_sessions_are_folders_with_enough_frames(tmp_path: Path) -> None:
    _touch_frames(tmp_path / "2026-03-14" / "M31", 6)
    _touch_frames(tmp_path / "2026-03-14" / "M42", 5, suffix=".FIT")
    _touch_frames(tmp_path / "2026-03-15" / "Comet C-2026 A1", 7, suffix=".fits.fz")
    _touch_frames(tmp_path / "2026-03-15" / "flats", 2)
    (tmp_path / "2026-03-16" / "nothing").mkdir(parents=True)

    found = discover_sessions(tmp_path, min_frames=5)

    assert list(found.sessions) == [
        "2026-03-14/M31",
        "2026-03-14/M42",
        "2026-03-15/Comet C-2026 A1",
    ]
    assert len(found.sessions["2026-03-14/M31"].frames) == 6
    skipped = dict(found.skipped)
    assert "fewer than min_frames = 5" in skipped["2026-03-15/flats"]
    assert skipped["2026-03-16/nothing"] == "empty of frames"


def test_non_frame_files_are_listed_not_taken(tmp_path: Path) -> None:
    night = tmp_path / "n1" / "M1"
    _touch_frames(night, 5)
    (night / "notes.txt").write_text("seeing good")
    (night / "stack.tif").write_bytes(b"II*")
    (night / ".DS_Store").write_bytes(b"")

    session = discover_sessions(tmp_path, min_frames=5).sessions["n1/M1"]

    assert session.other_files == ("notes.txt", "stack.tif")
    assert all(name.endswith(".fits") for name in session.frames)


def test_root_holding_frames_is_a_session_named_after_it(tmp_path: Path) -> None:
    root = tmp_path / "M101"
    _touch_frames(root, 5)
    assert list(discover_sessions(root, min_frames=5).sessions) == ["M101"]


def test_symlink_loop_is_visited_once(tmp_path: Path) -> None:
    _touch_frames(tmp_path / "n1" / "M1", 5)
    os.symlink(tmp_path, tmp_path / "n1" / "loop")
    found = discover_sessions(tmp_path, min_frames=5)
    assert list(found.sessions) == ["n1/M1"]
    assert any("already visited" in why for _, why in found.skipped)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda _root: None, "does not exist"),
        (lambda root: root.write_text("x"), "is not a folder"),
        (lambda root: root.mkdir(), "holds no session"),
    ],
)
def test_unusable_input_root_is_one_clear_error(tmp_path: Path, make, message: str) -> None:
    root = tmp_path / "nights"
    make(root)
    with pytest.raises(DiscoveryError, match=message):
        discover_sessions(root, min_frames=5)


def test_results_inside_the_input_tree_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError, match="lies inside input_root"):
        check_results_root(tmp_path, tmp_path / "results")
    with pytest.raises(DiscoveryError, match="lies inside input_root"):
        check_results_root(tmp_path, tmp_path)
    check_results_root(tmp_path / "nights", tmp_path / "results")
