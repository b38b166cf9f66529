"""The bad-input corpus: a tree of nights holding one session per kind of trouble.

Each case is a session folder (or, for discovery cases, a folder that must not become
one) built from the same six healthy frames, so that whatever differs between a case's
results and the healthy session's comes from the case alone. :func:`build_corpus` writes
the tree and returns the cases with what each is expected to end as; the tests read the
workflow's outputs against those expectations.

The behaviour decided for each case (and documented in README.md and check.py):

- a file that cannot be read as a frame (empty, truncated, text named ``.fits``, FITS with
  no image, a cube of 2 or 4 planes, a dangling link, a named pipe, no read permission) is
  a row of ``check/frames.ecsv`` with ``status: rejected``, ``reason_kind: unreadable``
  and a reason that says what is wrong; the rest of its session goes on;
- NaN and infinite pixels: a frame with a few is kept (the pixels are masked: replaced by
  the sky where measured, left out of the stack and the sources); a frame with more than
  ``check.max_nonfinite_fraction`` of them, or none finite, is rejected ``non-finite``;
- an all-zero frame is rejected ``constant``; a frame of another size ``dimensions``;
- BITPIX 8, 16, 32, 64, -32 and -64 read as the same ADU;
- a garbage or date-only DATE-OBS keeps the frame, with ``time_source: unreadable: ...``
  and a warning that the session is linked by frame order (file names in natural order);
- frames named out of time order are sorted by time; frames sharing a time are kept,
  with a warning, in file-name order;
- a folder with fewer than ``min_frames`` frames is no session: the workflow names it
  when it starts ("not a session: ...: only 3 frame(s)");
- names with spaces, unicode and markup, and headers holding HTML and JavaScript, are
  data like any other;
- a link back up the tree is visited once ("a link back to a folder already visited");
- a session whose frames are all bad fails its own jobs with one line naming the files.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import workdir
from astropy.io import fits

from spacepixels import synth

SHAPE = (256, 256)
"""(height, width) of the corpus frames."""

N_GOOD = 6
"""Healthy frames in every case session."""

HOSTILE_OBJECT = '<script>window.__pwned = "OBJECT"; alert(1)</script><img src=x onerror=alert(2)>'
"""An OBJECT card holding HTML and JavaScript."""

HOSTILE_FOLDER = "M 31 ✨ Ωmega <img src=x onerror=alert(3)>"
"""A session folder with spaces, unicode and markup (a file name cannot hold ``/``)."""

HOSTILE_STEM = "light ☄ <img src=x onerror=alert(4)> &amp; 'quote' \"dq\""
"""A frame name with spaces, unicode, markup, an entity and quotes."""

SCRIPT_NAME = "light_<script>alert(5)<.fits"
"""A frame name holding ``<script>``, which Snakemake reads as a path variable."""

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
"""Root reads a file whatever its mode: the no-permission sub-case needs another user."""


@dataclass
class Case:
    """One kind of trouble and what it must end as.

    Attributes
    ----------
    name : str
        Short name, used in the summary.
    session : str
        The session id (folder below the tree's root).
    expect : str
        ``rejected`` (rows rejected with ``kind`` for each file of ``files``), ``kept``
        (the files are ok rows; ``warning`` appears in the summary), ``session error``
        (the session's jobs fail with a line naming ``files``), ``not a session`` or
        ``completed``.
    files : dict of str to str
        Frame file name to the expected ``reason_kind`` (for ``rejected``) or ``ok``.
    reason : dict of str to str
        Frame file name to a phrase its ``reason`` must hold.
    warning : str
        A phrase the session summary's warnings must hold ("" for none).
    compare : str
        How the session's ``candidates.ecsv`` must compare with the healthy session's:
        ``"same"`` (every candidate, times and pixels), ``"pixels"`` (kinds and pixel
        paths: a session linked by frame order), ``"found"`` (every healthy track is found
        again; other candidates may be added), or ``""`` (not compared).
    skipped : list of str
        Sub-cases not built, with why.
    """

    name: str
    session: str
    expect: str
    files: dict[str, str] = field(default_factory=dict)
    reason: dict[str, str] = field(default_factory=dict)
    warning: str = ""
    compare: str = ""
    skipped: list[str] = field(default_factory=list)


def base_frames(where: Path) -> tuple[list[Path], dict]:
    """Six healthy 256x256 frames with a mover, a streak and a flash (no gap, no cloud)."""
    truth = synth.make_session(
        where, "base/M31", seed=5, n_frames=N_GOOD, shape=SHAPE, cloudy=0, gap=False
    )
    folder = where / "base" / "M31"
    return sorted(folder.glob("*.fits")), truth


def _copy_base(base: list[Path], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for path in base:
        shutil.copyfile(path, folder / path.name)
        out.append(folder / path.name)
    return out


def _adu(path: Path) -> tuple[np.ndarray, fits.Header]:
    with fits.open(path) as hdul:
        return np.asarray(hdul[0].data, dtype=np.float64), hdul[0].header.copy()


def _write(path: Path, data: np.ndarray, header: fits.Header) -> None:
    """Write pixels as stored, with a header copied from a healthy frame (no scaling)."""
    header = header.copy()
    for key in ("BZERO", "BSCALE", "BLANK", "SATURATE", "DATAMAX"):
        header.remove(key, ignore_missing=True)
    hdu = fits.PrimaryHDU(data=data, header=header)
    hdu.writeto(path, overwrite=True)


def _set_card(path: Path, key: str, value: str) -> None:
    with fits.open(path, mode="update") as hdul:
        hdul[0].header[key] = value


# --------------------------------------------------------------------------- the cases


def _zero_length(folder: Path, base: list[Path]) -> Case:
    _copy_base(base, folder)
    (folder / "light_empty.fits").write_bytes(b"")
    return Case(
        "zero-length file",
        "",
        "rejected",
        {"light_empty.fits": "unreadable"},
        {"light_empty.fits": "empty file (0 bytes)"},
        compare="same",
    )


def _truncated(folder: Path, base: list[Path]) -> Case:
    _copy_base(base, folder)
    data = base[2].read_bytes()
    (folder / "light_cut.fits").write_bytes(data[: len(data) // 2])
    return Case(
        "truncated FITS",
        "",
        "rejected",
        {"light_cut.fits": "unreadable"},
        {"light_cut.fits": "truncated FITS file"},
        compare="same",
    )


def _text(folder: Path, base: list[Path]) -> Case:
    _copy_base(base, folder)
    (folder / "notes.fits").write_text("seeing 2.1 arcsec, wind from the west\n")
    return Case(
        "text file named .fits",
        "",
        "rejected",
        {"notes.fits": "unreadable"},
        {"notes.fits": "not a FITS file"},
        compare="same",
    )


def _no_image(folder: Path, base: list[Path]) -> Case:
    _copy_base(base, folder)
    table = fits.BinTableHDU.from_columns([fits.Column(name="x", format="E", array=[1.0, 2.0])])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(folder / "table_only.fits")
    return Case(
        "FITS with no image HDU",
        "",
        "rejected",
        {"table_only.fits": "unreadable"},
        {"table_only.fits": "no image HDU"},
        compare="same",
    )


def _nonfinite(folder: Path, base: list[Path]) -> Case:
    paths = _copy_base(base, folder)
    # A few NaN and infinite pixels in one healthy frame: kept, the pixels masked.
    data, header = _adu(paths[3])
    data[10:20, 30:60] = np.nan
    data[:, 200] = np.inf
    data[100, 5:9] = -np.inf
    _write(paths[3], data.astype(np.float32), header)
    # Mostly NaN: rejected; no finite pixel at all: rejected.
    data, header = _adu(base[1])
    data[: SHAPE[0] * 3 // 4] = np.nan
    _write(folder / "light_mostly_nan.fits", data.astype(np.float32), header)
    data[:] = np.nan
    data[:5] = np.inf
    _write(folder / "light_no_finite.fits", data.astype(np.float32), header)
    return Case(
        "NaN and inf pixels",
        "",
        "rejected",
        {
            paths[3].name: "ok",
            "light_mostly_nan.fits": "non-finite",
            "light_no_finite.fits": "non-finite",
        },
        {
            "light_mostly_nan.fits": "75% of pixels are NaN or infinite",
            "light_no_finite.fits": "no finite pixel",
        },
        compare="found",
    )


def _all_zero(folder: Path, base: list[Path]) -> Case:
    _copy_base(base, folder)
    _, header = _adu(base[0])
    _write(folder / "light_blank.fits", np.zeros(SHAPE, dtype=np.int16), header)
    return Case(
        "all-zero frame",
        "",
        "rejected",
        {"light_blank.fits": "constant"},
        {"light_blank.fits": "constant frame: every pixel is 0 ADU"},
        compare="same",
    )


def _mixed_dimensions(folder: Path, base: list[Path]) -> Case:
    _copy_base(base, folder)
    data, header = _adu(base[0])
    _write(folder / "light_crop.fits", data[:200, :180].astype(np.float32), header)
    return Case(
        "mixed dimensions",
        "",
        "rejected",
        {"light_crop.fits": "dimensions"},
        {"light_crop.fits": "dimensions 180x200 unlike the session's 256x256"},
        compare="same",
    )


def _bitpix(folder: Path, base: list[Path]) -> Case:
    paths = _copy_base(base, folder)
    kinds = {paths[0]: np.int32, paths[1]: np.int64, paths[2]: np.float64, paths[3]: np.float32}
    for path, dtype in kinds.items():
        data, header = _adu(path)
        _write(path, data.astype(dtype), header)
    return Case(
        "BITPIX 16, 32, 64, -32, -64 in one session",
        "",
        "kept",
        {p.name: "ok" for p in paths},
        compare="found",
    )


def _bitpix8(folder: Path, base: list[Path]) -> Case:  # noqa: ARG001 - its own frames
    truth = synth.make_session(
        folder.parent,
        folder.name,
        seed=5,
        n_frames=N_GOOD,
        shape=SHAPE,
        cloudy=0,
        gap=False,
        variant="uint8",
    )
    return Case(
        "BITPIX 8 session",
        "",
        "kept",
        {f["file"]: "ok" for f in truth["frames"]},
    )


def _cubes(folder: Path, base: list[Path]) -> Case:
    _copy_base(base, folder)
    data, header = _adu(base[0])
    two = np.stack([data, data]).astype(np.float32)
    four = np.stack([data, data, data, data]).astype(np.float32)
    _write(folder / "cube_2planes.fits", two, header)
    _write(folder / "cube_4planes.fits", four, header)
    return Case(
        "3-D cubes of 2 and 4 planes",
        "",
        "rejected",
        {"cube_2planes.fits": "unreadable", "cube_4planes.fits": "unreadable"},
        {
            "cube_2planes.fits": "with 2 planes is not a colour image",
            "cube_4planes.fits": "with 4 planes is not a colour image",
        },
        compare="same",
    )


def _garbage_date(folder: Path, base: list[Path]) -> Case:
    paths = _copy_base(base, folder)
    _set_card(paths[2], "DATE-OBS", "last tuesday, about ten")
    return Case(
        "garbage DATE-OBS",
        "",
        "kept",
        {p.name: "ok" for p in paths},
        warning="linked by frame order",
        compare="pixels",
    )


def _date_only(folder: Path, base: list[Path]) -> Case:
    paths = _copy_base(base, folder)
    for path in paths:
        _set_card(path, "DATE-OBS", "2026-03-14")
    return Case(
        "date-only DATE-OBS",
        "",
        "kept",
        {p.name: "ok" for p in paths},
        warning="linked by frame order",
        compare="pixels",
    )


def _out_of_order(folder: Path, base: list[Path]) -> Case:
    folder.mkdir(parents=True, exist_ok=True)
    # Names in the reverse of time order.
    for k, path in enumerate(base):
        shutil.copyfile(path, folder / f"shot_{len(base) - k:02d}.fits")
    return Case(
        "times out of name order",
        "",
        "kept",
        {f"shot_{k:02d}.fits": "ok" for k in range(1, len(base) + 1)},
        compare="same",
    )


def _duplicate_times(folder: Path, base: list[Path]) -> Case:
    paths = _copy_base(base, folder)
    _, header = _adu(paths[2])
    _set_card(paths[3], "DATE-OBS", header["DATE-OBS"])
    return Case(
        "duplicate times",
        "",
        "kept",
        {p.name: "ok" for p in paths},
        warning="share their mid-exposure time",
    )


def _too_few(folder: Path, base: list[Path]) -> Case:
    _copy_base(base[:3], folder)
    return Case(
        "fewer frames than min_frames",
        "",
        "not a session",
        reason={"": "only 3 frame(s), fewer than min_frames = 5"},
    )


def _hostile_names(folder: Path, base: list[Path]) -> Case:
    folder = folder.parent / HOSTILE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for k, path in enumerate(base):
        name = f"{HOSTILE_STEM} {k + 1:02d}.fits"
        shutil.copyfile(path, folder / name)
        names.append(name)
    shutil.copyfile(base[0], folder / SCRIPT_NAME)
    files = dict.fromkeys(names, "ok")
    files[SCRIPT_NAME] = "unreadable"
    return Case(
        "names with spaces, unicode, markup and <script>",
        f"{folder.parent.name}/{HOSTILE_FOLDER}",
        "rejected",
        files,
        {SCRIPT_NAME: "which Snakemake reads as a path variable"},
        compare="same",
    )


def _path_variable_folder(folder: Path, base: list[Path]) -> Case:
    folder = folder.parent / "M42 <best>"
    _copy_base(base, folder)
    return Case(
        "a session folder holding <best>",
        f"{folder.parent.name}/{folder.name}",
        "not a session",
        reason={"": "which Snakemake reads as a path variable: rename the folder"},
    )


def _hostile_object(folder: Path, base: list[Path]) -> Case:
    paths = _copy_base(base, folder)
    for path in paths:
        _set_card(path, "OBJECT", HOSTILE_OBJECT)
        _set_card(path, "OBSERVER", "<b onmouseover=alert(5)>me</b>")
    return Case(
        "OBJECT holding HTML and JavaScript",
        "",
        "kept",
        {p.name: "ok" for p in paths},
        compare="same",
    )


def _symlink_loop(folder: Path, base: list[Path]) -> Case:
    paths = _copy_base(base, folder)
    (folder / "back_to_night").symlink_to("..", target_is_directory=True)
    (folder / "here_again").symlink_to(".", target_is_directory=True)
    (folder / "itself").symlink_to("itself")
    return Case(
        "symlink loop in the tree", "", "kept", {p.name: "ok" for p in paths}, compare="same"
    )


def _unreadable(folder: Path, base: list[Path]) -> Case:
    _copy_base(base, folder)
    (folder / "light_gone.fits").symlink_to("/nonexistent/disk/light_gone.fits")
    os.mkfifo(folder / "light_pipe.fits")
    files = {"light_gone.fits": "unreadable", "light_pipe.fits": "unreadable"}
    reason = {
        "light_gone.fits": "a link to a missing file",
        "light_pipe.fits": "not a regular file",
    }
    skipped = []
    if IS_ROOT:
        skipped.append(
            "a file without read permission (chmod 000): the tests run as root, who reads "
            "it anyway; read_frame's message for it is tested as another user"
        )
    else:
        locked = folder / "light_locked.fits"
        shutil.copyfile(base[0], locked)
        locked.chmod(0)
        files["light_locked.fits"] = "unreadable"
        reason["light_locked.fits"] = "Permission denied"
    return Case("unreadable entries", "", "rejected", files, reason, "", "same", skipped)


def _all_bad(folder: Path, base: list[Path]) -> Case:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a_empty.fits").write_bytes(b"")
    (folder / "b_text.fits").write_text("not a frame")
    data = base[0].read_bytes()
    (folder / "c_cut.fits").write_bytes(data[:4000])
    _, header = _adu(base[0])
    _write(folder / "d_blank.fits", np.zeros(SHAPE, np.int16), header)
    _write(folder / "e_blank.fits", np.zeros(SHAPE, np.int16), header)
    return Case(
        "a session of nothing but bad frames",
        "",
        "session error",
        {
            "a_empty.fits": "unreadable",
            "b_text.fits": "unreadable",
            "c_cut.fits": "unreadable",
            "d_blank.fits": "constant",
            "e_blank.fits": "constant",
        },
    )


BUILDERS: dict[str, Callable[[Path, list[Path]], Case]] = {
    "2026-03-20/zero_length": _zero_length,
    "2026-03-20/truncated": _truncated,
    "2026-03-20/text_fits": _text,
    "2026-03-20/no_image": _no_image,
    "2026-03-20/nonfinite": _nonfinite,
    "2026-03-20/all_zero": _all_zero,
    "2026-03-20/mixed_dims": _mixed_dimensions,
    "2026-03-21/bitpix": _bitpix,
    "2026-03-21/bitpix8": _bitpix8,
    "2026-03-21/cubes": _cubes,
    "2026-03-21/garbage_date": _garbage_date,
    "2026-03-21/date_only": _date_only,
    "2026-03-21/out_of_order": _out_of_order,
    "2026-03-21/duplicate_times": _duplicate_times,
    "2026-03-22/too_few": _too_few,
    "2026-03-22/hostile": _hostile_names,
    "2026-03-22/path_variable": _path_variable_folder,
    "2026-03-22/hostile_object": _hostile_object,
    "2026-03-22/loop": _symlink_loop,
    "2026-03-22/unreadable": _unreadable,
    "2026-03-22/all_bad": _all_bad,
}
"""Session folder (below the tree's root) to the function that builds its case."""

HEALTHY = "2026-03-19/healthy"
"""The healthy session every case is compared with."""


def build_corpus(root: Path, scratch: Path) -> tuple[dict[str, Case], dict]:
    """Write the healthy session and every case under ``root``.

    Parameters
    ----------
    root : Path
        The tree of nights to make (``input_root``).
    scratch : Path
        A folder outside ``root`` for the healthy frames everything is copied from.

    Returns
    -------
    cases : dict of str to Case
        By key of :data:`BUILDERS` (the healthy session under :data:`HEALTHY`); each
        case's ``session`` is its session id.
    truth : dict
        The synthetic generator's truth for the healthy frames.
    """
    base, truth = base_frames(scratch)
    cases = {HEALTHY: Case("healthy session", HEALTHY, "completed", {p.name: "ok" for p in base})}
    _copy_base(base, root / HEALTHY)
    for session, build in BUILDERS.items():
        case = build(root / session, base)
        case.session = case.session or session
        cases[session] = case
    return cases, truth


# --------------------------------------------------------------------------- running

ROOT = Path(__file__).resolve().parents[1]
"""The checkout: the workflow the tests run."""


def make_workdir(where: Path, *, solve_method: str = "header") -> Path:
    """A working folder ``where/work`` (see :func:`workdir.make_workdir`).

    The corpus frames carry a synthetic WCS over random stars: ``solve_method`` header
    trusts it rather than spend a solver's time on a sky that does not exist.
    """
    return workdir.make_workdir(where / "work", solve_method=solve_method)


def snakemake_command(nights: Path, results: Path, *args: str, cores: int = 2) -> list[str]:
    """The ``snakemake`` command line of a run over ``nights`` into ``results``."""
    import sys

    return [
        str(Path(sys.executable).parent / "snakemake"),
        "--cores",
        str(cores),
        "--keep-going",
        "--config",
        f"input_root={nights}",
        f"results_root={results}",
        *args,
    ]
