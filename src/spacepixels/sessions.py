"""Find the sessions in a tree of nights, by file names alone.

A *session* is a folder that directly holds at least ``min_frames`` frames (``.fit``,
``.fits``, ``.fts``, ``.fz``, ``.xisf``, in any case). Its id is the folder's path relative
to the input root, written with ``/`` (``2026-03-14/M31``); a root that itself holds frames
is a session named after the root folder. Discovery never opens a file, so that Snakemake
can build its plan for thousands of frames in seconds; what is inside the files is the check
stage's business.

Folders that hold some frames but too few, and files beside the frames that are not frames,
are reported, never silently dropped. Hidden entries (``.name``) are passed over, symbolic
links are followed, and a link that loops back into the tree is visited once.

Snakemake (9.x) reads ``<name>`` (lower-case letters, digits, ``_``) anywhere in a rule's
input or output paths as a *path variable* and replaces it, or stops the whole workflow
when it is not defined. A frame whose name holds one (``light <script>.fits``) is therefore
never handed to Snakemake: it is kept among the folder's other entries, and the check
stage lists it as a rejected frame saying why. A folder whose path holds one is not taken
as a session, and is named with the reason, so that the other sessions still run.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from spacepixels.names import is_frame_name

__all__ = [
    "Session",
    "Discovery",
    "DiscoveryError",
    "discover_sessions",
    "check_results_root",
    "snakemake_path_variable",
]

logger = logging.getLogger(__name__)

_PATH_VARIABLE = re.compile(r"<[a-z][a-z0-9_]*>")
"""What Snakemake reads as a path variable in any input or output path (``<results>``)."""


def snakemake_path_variable(name: str) -> str | None:
    """The first part of ``name`` that Snakemake would read as a path variable, or None.

    Such a part (``<script>``, ``<logs>``) would be replaced by Snakemake, or would stop
    the whole workflow as undefined, in any path handed to a rule.
    """
    match = _PATH_VARIABLE.search(name)
    return match.group(0) if match else None


class DiscoveryError(ValueError):
    """The input tree cannot be used; the message says why in one line."""


@dataclass(frozen=True)
class Session:
    """One folder of frames.

    Attributes
    ----------
    id : str
        Path of the folder relative to the input root, with ``/`` separators.
    folder : Path
        The folder itself.
    frames : tuple of str
        File names of the frames, sorted.
    other_files : tuple of str
        Names in the folder that are not frames: other files (listed in the check
        summary) and entries named like frames that are not regular files, such as a
        dangling link or a named pipe (rows the check rejects as unreadable).
    """

    id: str
    folder: Path
    frames: tuple[str, ...]
    other_files: tuple[str, ...] = ()

    @property
    def frame_paths(self) -> list[Path]:
        """Full paths of the frames."""
        return [self.folder / name for name in self.frames]


@dataclass
class Discovery:
    """What discovery found.

    Attributes
    ----------
    sessions : dict of str to Session
        Sessions by id, in sorted order of id.
    skipped : list of (str, str)
        Folders that were not taken as sessions, each with the reason.
    """

    sessions: dict[str, Session] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _scan(folder: Path) -> tuple[list[str], list[str], list[Path]]:
    """Frame names, other file names and sub-folders of one folder (hidden ones left out)."""
    frames: list[str] = []
    others: list[str] = []
    subfolders: list[Path] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=True):
                    subfolders.append(Path(entry.path))
                    continue
                is_file = entry.is_file(follow_symlinks=True)
            except OSError:
                is_file = False
            if is_file and is_frame_name(entry.name) and not snakemake_path_variable(entry.name):
                frames.append(entry.name)
            else:
                others.append(entry.name)
    return sorted(frames), sorted(others), sorted(subfolders)


def discover_sessions(input_root: str | os.PathLike[str], min_frames: int) -> Discovery:
    """Walk a tree of nights and list its sessions.

    Parameters
    ----------
    input_root : path-like
        The top of the tree of nights.
    min_frames : int
        The fewest frames a folder must hold directly to be a session.

    Returns
    -------
    Discovery
        The sessions and the folders passed over, with reasons.

    Raises
    ------
    DiscoveryError
        When ``input_root`` does not exist, is not a folder, or holds no session.
    """
    root = Path(input_root)
    if not root.exists():
        raise DiscoveryError(f"input_root {str(root)!r} does not exist")
    if not root.is_dir():
        raise DiscoveryError(f"input_root {str(root)!r} is not a folder")
    variable = snakemake_path_variable(str(root.absolute()))
    if variable:
        raise DiscoveryError(
            f"input_root {str(root)!r} holds {variable!r}, which Snakemake reads as a path "
            "variable: rename it, or link it from a path without one"
        )

    found = Discovery()
    seen: set[tuple[int, int]] = set()
    pending = [root]
    while pending:
        folder = pending.pop()
        session_id = root.resolve().name if folder == root else folder.relative_to(root).as_posix()
        try:
            stat = folder.stat()
        except OSError as exc:
            found.skipped.append((session_id, f"cannot be read ({exc.strerror})"))
            continue
        key = (stat.st_dev, stat.st_ino)
        if key in seen:
            found.skipped.append((session_id, "a link back to a folder already visited"))
            continue
        seen.add(key)
        try:
            frames, others, subfolders = _scan(folder)
        except OSError as exc:
            found.skipped.append((session_id, f"cannot be listed ({exc.strerror})"))
            continue
        pending.extend(reversed(subfolders))
        variable = snakemake_path_variable(session_id)
        if variable and frames:
            found.skipped.append(
                (
                    session_id,
                    f"its path holds {variable!r}, which Snakemake reads as a path variable: "
                    "rename the folder",
                )
            )
            continue
        if len(frames) >= min_frames:
            found.sessions[session_id] = Session(session_id, folder, tuple(frames), tuple(others))
        elif frames:
            found.skipped.append(
                (session_id, f"only {len(frames)} frame(s), fewer than min_frames = {min_frames}")
            )
        elif not subfolders and folder != root:
            found.skipped.append((session_id, "empty of frames"))

    if not found.sessions:
        detail = "; ".join(f"{name}: {why}" for name, why in found.skipped[:5])
        raise DiscoveryError(
            f"input_root {str(root)!r} holds no session (a folder with at least {min_frames} "
            f"frames)" + (f" ({detail})" if detail else "")
        )
    found.sessions = dict(sorted(found.sessions.items()))
    return found


def check_results_root(
    input_root: str | os.PathLike[str], results_root: str | os.PathLike[str]
) -> None:
    """Refuse a results folder that lies inside (or is) the input tree.

    Raises
    ------
    DiscoveryError
        When ``results_root`` is ``input_root`` or below it: the workflow never writes
        among the user's frames.
    """
    inputs = Path(input_root).resolve()
    results = Path(results_root).resolve()
    if results == inputs or inputs in results.parents:
        raise DiscoveryError(
            f"results_root {str(results_root)!r} lies inside input_root {str(input_root)!r}: "
            "the workflow never writes among your frames; choose a folder outside it"
        )


def good_frames(
    frames_table: str | os.PathLike[str], session_folder: str | os.PathLike[str], min_frames: int
) -> list[Path]:
    """The frames the check stage kept, in time order.

    Parameters
    ----------
    frames_table : path-like
        The check stage's ``check/frames.ecsv``.
    session_folder : path-like
        The session's folder of frames.
    min_frames : int
        The fewest good frames a session needs to go on.

    Raises
    ------
    spacepixels.runner.SessionError
        When fewer than ``min_frames`` frames were kept, naming the rejection reasons.
    """
    from astropy.table import Table

    from spacepixels.runner import SessionError

    table = Table.read(frames_table, format="ascii.ecsv")
    kept = table[table["status"] == "ok"]
    if len(kept) < min_frames:
        rejected = table[table["status"] != "ok"]
        reasons = "; ".join(f"{row['file']}: {row['reason']}" for row in rejected[:3])
        more = f" (and {len(rejected) - 3} more)" if len(rejected) > 3 else ""
        raise SessionError(
            f"only {len(kept)} of {len(table)} frames passed the check, fewer than "
            f"min_frames = {min_frames}" + (f"; rejected: {reasons}{more}" if reasons else "")
        )
    folder = Path(session_folder)
    return [folder / str(name) for name in kept["file"]]
