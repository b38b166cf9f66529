"""Real stars for synthetic nights: a small Tycho-2 star list shipped with the package.

The plate-solving tests need frames whose stars sit where the sky has them, so that an
offline solver (Debian's ``solve-field`` with the Tycho-2 index packages) can recognise
the field. This module ships those stars and reads them back.

Where the stars come from
-------------------------
Debian's ``astrometry-data-tycho2-*`` packages install astrometry.net index files
(``/usr/share/astrometry/index-tycho2-NN.*.fits``). Each holds a uniformised subset of the
Tycho-2 catalogue (Høg et al. 2000, about 2.5 million stars to V ~ 12) as a k-d tree of
positions with the Tycho ``MAG_VT`` magnitude carried along. astrometry.net's own
``query-starkd`` dumps the stars of one index within a radius of a position; the union
over all installed Tycho-2 index files, cut to a circle of :data:`STAR_LIST_RADIUS_DEG`
around each field of :data:`FIELDS`, is the shipped list (``data/tycho2_fields.ecsv.gz``,
RA and Dec in degrees, J2000/ICRS at epoch J2000, and VT magnitude). It holds the very
stars the solver will look for, about 35 per square degree, down to V ~ 12-13.

``spacepixels starlist build OUT`` (or :func:`build_star_list`) makes the file again from
the installed index files; ``data/README.md`` records how the shipped one was made and
the catalogue's citation and licence.

The same reader serves the plate solver: :func:`index_stars` queries the installed index
files directly, anywhere on the sky, to cross-check a solution against real stars.
"""

from __future__ import annotations

import functools
import gzip
import io
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
from astropy.table import Table, vstack
from numpy.typing import NDArray

__all__ = [
    "FIELDS",
    "INDEX_DIRS",
    "STAR_LIST_NAME",
    "STAR_LIST_RADIUS_DEG",
    "angular_distance_deg",
    "build_star_list",
    "covering_field",
    "find_index_files",
    "index_stars",
    "load_star_list",
    "star_list_fields",
    "star_list_path",
    "stars_near",
]

logger = logging.getLogger(__name__)

STAR_LIST_NAME = "tycho2_fields.ecsv.gz"
"""File name of the shipped star list, in the package's ``data`` folder."""

STAR_LIST_RADIUS_DEG = 3.0
"""Radius of the circle of stars kept around each field's centre (3 degrees: enough for a
2000x1500 frame at 7 arcsec per pixel, or a 1024x768 one at up to 14)."""

FIELDS: dict[str, tuple[float, float]] = {
    "M31": (10.6847, 41.2690),
    "M42": (83.8221, -5.3911),
    "M45": (56.7500, 24.1167),
    "M81": (148.8882, 69.0653),
    "M101": (210.8025, 54.3489),
    "M13": (250.4235, 36.4613),
    "M27": (299.9017, 22.7211),
    "M51": (202.4696, 47.1952),
    "M33": (23.4621, 30.6599),
    "M1": (83.6331, 22.0145),
    "NGC7000": (314.7500, 44.3333),
    "NGC7331": (339.2671, 34.4156),
    "ECL015": (13.8148, 5.9105),
    "ECL075": (73.7182, 22.5954),
    "ECL165": (166.1897, 5.9087),
    "ECL240": (237.8274, -20.1521),
    "ECL330": (332.0967, -11.4693),
}
"""Centres (RA, Dec in degrees, J2000) of the fields in the shipped star list: the
synthetic generator's named targets and five fields on the ecliptic (named by ecliptic
longitude), where asteroids are."""

INDEX_DIRS: tuple[str, ...] = ("/usr/share/astrometry", "/usr/local/astrometry/data")
"""Folders searched for index files when astrometry.net's own configuration names none."""

_CONFIG_FILES: tuple[str, ...] = ("/etc/astrometry.cfg", "/usr/local/astrometry/etc/astrometry.cfg")
"""astrometry.net's configuration files, whose ``add_path`` lines name index folders."""

_TYCHO2_CITATION = (
    "Hog E., Fabricius C., Makarov V.V., Urban S., Corbin T., Wycoff G., Bastian U., "
    "Schwekendiek P., Wicenec A. 2000, The Tycho-2 Catalogue of the 2.5 million brightest "
    "stars, A&A 355, L27"
)


# --------------------------------------------------------------------------------------
# Geometry


def angular_distance_deg(
    ra1: float | NDArray[np.float64],
    dec1: float | NDArray[np.float64],
    ra2: float | NDArray[np.float64],
    dec2: float | NDArray[np.float64],
) -> NDArray[np.float64]:
    """Great-circle distance in degrees (haversine, exact at small separations).

    Parameters
    ----------
    ra1, dec1, ra2, dec2 : float or ndarray
        Positions in degrees; arrays broadcast.

    Returns
    -------
    ndarray of float64
        Distances in degrees.
    """
    r1, d1, r2, d2 = (np.radians(np.asarray(v, dtype=np.float64)) for v in (ra1, dec1, ra2, dec2))
    h = np.sin((d2 - d1) / 2.0) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2.0) ** 2
    return np.degrees(2.0 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


# --------------------------------------------------------------------------------------
# The shipped list


def star_list_path() -> Path:
    """Path of the shipped star list (``spacepixels/data/tycho2_fields.ecsv.gz``)."""
    return Path(str(resources.files("spacepixels").joinpath("data", STAR_LIST_NAME)))


@functools.lru_cache(maxsize=4)
def _load(path: str) -> Table:
    table = Table.read(path, format="ascii.ecsv")
    for name in ("ra", "dec", "mag"):
        if name not in table.colnames:
            raise ValueError(f"{path}: the star list has no column {name!r}")
    return table


def load_star_list(path: str | os.PathLike[str] | None = None) -> Table:
    """The whole star list.

    Parameters
    ----------
    path : path-like, optional
        A list written by :func:`build_star_list`; default the shipped one.

    Returns
    -------
    astropy.table.Table
        Columns ``ra``, ``dec`` (degrees, J2000) and ``mag`` (Tycho VT); ``meta`` holds
        ``fields`` (name, centre and radius of each covered circle) and the provenance.
        The table is the caller's own copy.
    """
    return _load(str(Path(path) if path is not None else star_list_path())).copy()


def star_list_fields(path: str | os.PathLike[str] | None = None) -> list[dict[str, float | str]]:
    """The circles the star list covers: ``name``, ``ra_deg``, ``dec_deg``, ``radius_deg``."""
    meta = _load(str(Path(path) if path is not None else star_list_path())).meta
    return [dict(field) for field in meta.get("fields", [])]


def covering_field(
    ra_deg: float,
    dec_deg: float,
    radius_deg: float,
    *,
    path: str | os.PathLike[str] | None = None,
) -> str | None:
    """Name of a field whose circle holds the whole circle asked for, or None.

    Parameters
    ----------
    ra_deg, dec_deg : float
        Centre of the circle, degrees.
    radius_deg : float
        Its radius, degrees.
    path : path-like, optional
        Star list; default the shipped one.

    Returns
    -------
    str or None
    """
    for field in star_list_fields(path):
        distance = float(
            angular_distance_deg(ra_deg, dec_deg, float(field["ra_deg"]), float(field["dec_deg"]))
        )
        if distance + radius_deg <= float(field["radius_deg"]) + 1e-9:
            return str(field["name"])
    return None


def stars_near(
    ra_deg: float,
    dec_deg: float,
    radius_deg: float,
    *,
    require_coverage: bool = False,
    path: str | os.PathLike[str] | None = None,
) -> Table:
    """The listed stars within ``radius_deg`` of a position, brightest first.

    Parameters
    ----------
    ra_deg, dec_deg : float
        Centre, degrees (J2000).
    radius_deg : float
        Radius, degrees.
    require_coverage : bool
        Raise when the circle is not wholly inside one of the list's fields (outside them
        the list holds no stars, so an empty or partial answer would be wrong, not empty).
    path : path-like, optional
        Star list; default the shipped one.

    Returns
    -------
    astropy.table.Table
        Columns ``ra``, ``dec`` (degrees), ``mag`` (Tycho VT) and ``distance_deg``.

    Raises
    ------
    ValueError
        With ``require_coverage``, when no field covers the circle; the message lists the
        fields.
    """
    if require_coverage and covering_field(ra_deg, dec_deg, radius_deg, path=path) is None:
        names = ", ".join(str(f["name"]) for f in star_list_fields(path))
        raise ValueError(
            f"the star list does not cover {radius_deg:.2f} deg around RA {ra_deg:.4f}, "
            f"Dec {dec_deg:+.4f}; it covers {STAR_LIST_RADIUS_DEG:g} deg around: {names} "
            "(rebuild it with 'spacepixels starlist build' for other fields)"
        )
    table = _load(str(Path(path) if path is not None else star_list_path()))
    distance = angular_distance_deg(ra_deg, dec_deg, table["ra"], table["dec"])
    keep = np.nonzero(distance <= radius_deg)[0]
    out = Table(
        {
            "ra": np.asarray(table["ra"][keep], dtype=np.float64),
            "dec": np.asarray(table["dec"][keep], dtype=np.float64),
            "mag": np.asarray(table["mag"][keep], dtype=np.float64),
            "distance_deg": distance[keep],
        }
    )
    out.sort(["mag", "ra"])
    return out


# --------------------------------------------------------------------------------------
# The installed index files


def _config_paths(config_files: Iterable[str]) -> list[Path]:
    folders: list[Path] = []
    for name in config_files:
        try:
            text = Path(name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            match = re.match(r"\s*add_path\s+(\S+)", line)
            if match:
                folders.append(Path(match[1]))
    return folders


def find_index_files(
    index_dir: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    *,
    pattern: str = "index-*.fits",
) -> list[Path]:
    """Installed astrometry.net index files.

    Parameters
    ----------
    index_dir : path-like or sequence of path-like, optional
        Folder(s) to search; default the ``add_path`` folders of astrometry.net's
        configuration (``/etc/astrometry.cfg``), else :data:`INDEX_DIRS`.
    pattern : str
        File name pattern; ``"index-tycho2-*.fits"`` for the Tycho-2 ones only.

    Returns
    -------
    list of Path
        Sorted by name; empty when none is installed.
    """
    if index_dir is None:
        folders = _config_paths(_CONFIG_FILES) or [Path(d) for d in INDEX_DIRS]
    elif isinstance(index_dir, str | os.PathLike):
        folders = [Path(index_dir)]
    else:
        folders = [Path(d) for d in index_dir]
    found: set[Path] = set()
    for folder in folders:
        if folder.is_dir():
            found.update(p for p in folder.glob(pattern) if p.is_file())
    return sorted(found, key=lambda p: (p.name, str(p)))


def _query_one(
    executable: str, index_file: Path, ra: float, dec: float, radius: float, timeout: float
) -> Table:
    with tempfile.TemporaryDirectory(prefix="spacepixels-starkd-") as tmp:
        out = Path(tmp) / "stars.fits"
        command = [executable, "-r", repr(ra), "-d", repr(dec), "-R", repr(radius), "-T"]
        command += ["-o", str(out), str(index_file)]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode == 0 and not out.exists():  # no star there: no file
            return Table({"ra": np.empty(0), "dec": np.empty(0), "mag": np.empty(0)})
        if result.returncode != 0:
            raise RuntimeError(
                f"query-starkd failed on {index_file} (exit {result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-300:]}"
            )
        table = Table.read(out, format="fits")
    ra_col = np.asarray(table["RA"], dtype=np.float64) if len(table) else np.empty(0)
    dec_col = np.asarray(table["DEC"], dtype=np.float64) if len(table) else np.empty(0)
    mag_col = (
        np.asarray(table["MAG_VT"], dtype=np.float64)
        if "MAG_VT" in table.colnames
        else np.full(len(ra_col), np.nan)
    )
    return Table({"ra": ra_col, "dec": dec_col, "mag": mag_col})


def _unique_stars(table: Table) -> Table:
    """Drop repeats of one star (the index files share their stars), keep the first."""
    if len(table) == 0:
        return table
    key_ra = np.round(np.asarray(table["ra"]) * 1e6).astype(np.int64)
    key_dec = np.round(np.asarray(table["dec"]) * 1e6).astype(np.int64)
    _, first = np.unique(np.stack([key_ra, key_dec], axis=1), axis=0, return_index=True)
    return table[np.sort(first)]


def index_stars(
    ra_deg: float,
    dec_deg: float,
    radius_deg: float,
    *,
    index_files: Sequence[str | os.PathLike[str]] | None = None,
    query_starkd: str | None = None,
    timeout_s: float = 60.0,
) -> Table:
    """Stars of the installed index files within a radius, through ``query-starkd``.

    Parameters
    ----------
    ra_deg, dec_deg : float
        Centre, degrees.
    radius_deg : float
        Radius, degrees.
    index_files : sequence of path-like, optional
        Index files to read; default :func:`find_index_files`.
    query_starkd : str, optional
        The ``query-starkd`` executable; default the one on ``PATH``.
    timeout_s : float
        Limit for each query, seconds.

    Returns
    -------
    astropy.table.Table
        Columns ``ra``, ``dec`` (degrees) and ``mag`` (Tycho VT; NaN for index files that
        carry no magnitude), each star once, brightest first.

    Raises
    ------
    FileNotFoundError
        When ``query-starkd`` or every index file is missing.
    RuntimeError
        When a query fails.
    """
    executable = query_starkd or shutil.which("query-starkd")
    if not executable:
        raise FileNotFoundError("query-starkd is not installed (apt-get install astrometry.net)")
    files = [Path(f) for f in index_files] if index_files is not None else find_index_files()
    if not files:
        raise FileNotFoundError(
            "no astrometry.net index files found "
            "(apt-get install astrometry-data-tycho2-10-19 astrometry-data-tycho2-08)"
        )
    parts = [
        _query_one(executable, f, float(ra_deg), float(dec_deg), float(radius_deg), timeout_s)
        for f in files
    ]
    table = _unique_stars(vstack(parts, metadata_conflicts="silent") if parts else Table())
    if len(table):
        table.sort(["mag", "ra"])
    return table


def build_star_list(
    out: str | os.PathLike[str],
    *,
    fields: Mapping[str, tuple[float, float]] | None = None,
    radius_deg: float = STAR_LIST_RADIUS_DEG,
    index_files: Sequence[str | os.PathLike[str]] | None = None,
    query_starkd: str | None = None,
) -> Path:
    """Write a star list from the installed Tycho-2 index files.

    For every field, the stars of every Tycho-2 index file within ``radius_deg`` of its
    centre (``query-starkd -r RA -d DEC -R RADIUS -T -o OUT INDEX``), each star once, as a
    gzip-compressed ECSV table of ``ra``, ``dec`` (degrees, 6 decimals: 4 mas) and ``mag``
    (VT, 3 decimals). The bytes depend only on the inputs (no timestamps).

    Parameters
    ----------
    out : path-like
        The file to write (``.ecsv.gz``); written to a temporary name and renamed.
    fields : mapping of str to (float, float), optional
        Field names and centres; default :data:`FIELDS`.
    radius_deg : float
        Radius of each field, degrees.
    index_files : sequence of path-like, optional
        Index files; default the installed ``index-tycho2-*.fits``.
    query_starkd : str, optional
        The ``query-starkd`` executable; default the one on ``PATH``.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    FileNotFoundError
        When ``query-starkd`` or the index files are missing.
    """
    out = Path(out)
    fields = dict(FIELDS if fields is None else fields)
    files = (
        [Path(f) for f in index_files]
        if index_files is not None
        else find_index_files(pattern="index-tycho2-*.fits")
    )
    if not files:
        raise FileNotFoundError(
            "no Tycho-2 index files found (apt-get install astrometry-data-tycho2-10-19 "
            "astrometry-data-tycho2-09 astrometry-data-tycho2-08)"
        )
    parts = []
    for name, (ra, dec) in fields.items():
        stars = index_stars(ra, dec, radius_deg, index_files=files, query_starkd=query_starkd)
        logger.info("%s: %d stars within %.2f deg", name, len(stars), radius_deg)
        parts.append(stars)
    table = vstack(parts, metadata_conflicts="silent") if parts else Table()
    table["ra"] = np.round(np.asarray(table["ra"], dtype=np.float64), 6)
    table["dec"] = np.round(np.asarray(table["dec"], dtype=np.float64), 6)
    table["mag"] = np.round(np.asarray(table["mag"], dtype=np.float64), 3)
    table = _unique_stars(table)
    table.sort(["ra", "dec"])
    table["ra"].unit = "deg"
    table["dec"].unit = "deg"
    table["ra"].format = ".6f"
    table["dec"].format = ".6f"
    table["mag"].format = ".3f"
    table["ra"].description = "right ascension, J2000 (ICRS), epoch J2000"
    table["dec"].description = "declination, J2000 (ICRS), epoch J2000"
    table["mag"].description = "Tycho VT magnitude (MAG_VT of the index files)"
    table.meta = {
        "description": "Tycho-2 stars around a few fields, from astrometry.net index files",
        "citation": _TYCHO2_CITATION,
        "licence": "BSD-2-Clause (Debian astrometry-data-tycho2); see data/README.md",
        "index_files": sorted({f.name for f in files}),
        "command": "query-starkd -r RA -d DEC -R RADIUS -T -o OUT INDEX (for each field "
        "and index file; union, each star once)",
        "radius_deg": float(radius_deg),
        "fields": [
            {"name": name, "ra_deg": float(ra), "dec_deg": float(dec), "radius_deg": radius_deg}
            for name, (ra, dec) in fields.items()
        ],
    }
    text = io.StringIO()
    table.write(text, format="ascii.ecsv")
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz:
        gz.write(text.getvalue().encode("utf-8"))
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(buffer.getvalue())
        os.replace(temporary, out)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    _load.cache_clear()
    logger.info("wrote %d stars in %d fields to %s", len(table), len(fields), out)
    return out
