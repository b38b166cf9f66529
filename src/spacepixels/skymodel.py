"""The sky model: what does not move, from a median stack of the session's good frames.

Whatever sits still in the frames (stars, galaxies, nebulae, hot pixels, bad columns) is
in the median of the frames; whatever moves, flashes or hits the sensor once is not. The
model gives the linker three maps and two more stacks:

``stack.fits``
    The median, pixel by pixel, of the good frames, each with its sky level (the check's
    ``background``) subtracted first, so that the stack's sky is near zero and a cloudier
    or brighter frame does not shift it. Its noise is about ``1.25 / sqrt(n)`` of a frame's
    (sep's RMS of it, in ``sky.json``, is more in a crowded field, where the faint stars
    the stack reveals add to it).
``stationary_mask.fits``
    1 where a stationary source lies: sep run on the stationary image (below) at a low
    threshold (``mask_sigma`` sigmas of a matched filter of the seeing's FWHM, in a single
    frame's noise), its pixels grown by a disc of ``mask_grow_fwhm`` FWHM so that a
    star's detections in the jittered frames fall inside.
``defects.fits``
    Bit 1 (value 1): hot pixels, single pixels that stay in the stack (so they are fixed
    in pixel coordinates over many frames) far above the sky, and far sharper than a star:
    their four neighbours hold less than half of what a star's would. Bit 2 (value 2):
    bad columns, whose median over the rows differs from the median of their neighbours
    by more than ``bad_column_sigma`` times the scatter of such differences.
``early.fits`` and ``late.fits``
    Medians of the first and last ``early_late_fraction`` of the frames (a third by
    default), where a slow mover sits at two different places.
``reference.fits``
    The stack with its sky (sep's mesh background) subtracted, and its noise in
    ``NOISE``: extraction subtracts it, fitted, from each frame
    (:mod:`spacepixels.difference`), so that it searches what is not stationary. (Not the
    stationary image below: where the seeing drifts through the night, the least of three
    medians takes each pixel from a different third, a star's core from the worst seeing
    and its wings from the best, a profile no frame has.)
``minimum.fits``
    The stationary image (below), from which the mask is made.
``stationary_sources.ecsv``
    The stationary sources behind the mask: ``x``, ``y``, ``flux``, ``peak`` (ADU in the
    stationary image), ``a``, ``b``, ``theta``, ``npix``, for a linker that prefers to
    compare positions rather than pixels.

The stationary image is not the median stack itself but the pixelwise minimum of the
medians of the first, middle and last thirds of the frames: a star is in all three, while
a mover's faint trace in the median of all frames (a pixel holds the mover in several
frames when it moves slowly) is in at most one or two of them. The mask's threshold is
set in a single frame's noise (``mask_sigma``, scaled by the ratio of a frame's noise to
the stationary image's), so that it covers what could be detected, or push a detection
about, in one frame, not every star the deep stack reveals.

The model is made in two steps, two jobs of the workflow. :func:`stack_frames` reads the
checked frames and writes the stacks (``stack``, ``early``, ``late`` and ``minimum``);
it needs no tuned setting, so it runs beside the tune stage, and a change of tuning does
not read the frames again. :func:`sky_maps` then makes the maps from the stacks with the
tuned seeing and background mesh. :func:`model_sky` runs both.

Memory is bounded: the stack is computed in strips of rows. For each strip, those rows of
every frame are read (:class:`spacepixels.frames.FrameRows` reads only them), and the
median over the frames is taken there; then the next strip. The strip holds
``n_frames x strip_rows x width`` float32 values, with ``strip_rows`` chosen so that it
fits in ``memory_mb``; the rest of the job holds a few full-size maps (the stacks,
sep's background of the stack, the mask), about ten bytes per pixel of one frame.

The medians are taken on small blocks of rows transposed so that each pixel's values
over the frames are adjacent in memory, with numpy's in-place partition (a selection, not
a sort): the early and late medians are selected first, within their frames, which keeps
each pixel's set of values, and then the median of all frames. For an even count the
median is the mean of the two middle values.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.table import Table
from numpy.typing import NDArray

from spacepixels.extract import (
    SIGMA_TO_FWHM,
    column_offsets,
    conv_threshold_factor,
    gaussian_kernel,
)
from spacepixels.files import jsonable, write_atomically
from spacepixels.frames import FrameRows, read_image
from spacepixels.settings import section_values

__all__ = [
    "SKY_FILES",
    "STACK_FILES",
    "SkySettings",
    "model_sky",
    "sky_maps",
    "stack_frames",
]

logger = logging.getLogger(__name__)

STACK_FILES: tuple[str, ...] = (
    "stack.fits",
    "early.fits",
    "late.fits",
    "minimum.fits",
    "stack.json",
)
"""The files :func:`stack_frames` writes: the stacks, which need only the checked frames."""

SKY_FILES: tuple[str, ...] = STACK_FILES + (
    "stationary_mask.fits",
    "defects.fits",
    "sky.json",
    "stationary_sources.ecsv",
    "reference.fits",
)
"""The files :func:`model_sky` writes in its output folder: :data:`STACK_FILES`, and the
maps :func:`sky_maps` makes of the stacks with the tuned seeing and background mesh."""


DEFECT_HOT_PIXEL = 1
"""Value (bit) of a hot pixel in ``defects.fits``."""

DEFECT_BAD_COLUMN = 2
"""Value (bit) of a bad column in ``defects.fits``."""

_BLOCK_BYTES = 1 << 21
"""Size of the transposed blocks the medians are taken on (fits in a core's cache)."""


@dataclass(frozen=True)
class SkySettings:
    """Settings of the sky model (the lead's ``sky:`` section, or part of ``link:``).

    Attributes
    ----------
    memory_mb : int
        Memory for the strip of rows of every frame (default 128 MB); the strip's height
        follows from it and from the number and width of the frames. A larger strip is
        not faster: 20 frames of 4096 x 4096 stack in 2.4 s with 128 MB and 2.8-3.6 s
        with 512 MB (fresh memory costs time to map), 100 frames in 8.2 and 8.1 s.
    mask_sigma : float
        Threshold of the stationary mask, in sigmas of a matched filter on a *single*
        frame (default 2.0: a star that bright is detected by a 4-sigma extraction in a
        frame or two of twenty, when the noise lifts it). It is applied to the stationary
        image scaled by the ratio of a frame's noise to that image's, and never below 3
        of the image's own sigmas.
    mask_min_area : int
        Fewest connected pixels above that threshold for a stationary source (default 5).
    mask_grow_fwhm : float
        The mask is grown by a disc of this many FWHM (default 1.0).
    hot_pixel_sigma : float
        A hot pixel stands this many stack noise sigmas above the sky (default 5).
    bad_column_sigma : float
        A bad column's median differs from its neighbours' by this many times the scatter
        of such differences (default 10).
    early_late_fraction : float
        Fraction of the frames in each of the early and late stacks (default 1/3).
    """

    memory_mb: int = 128
    mask_sigma: float = 2.0
    mask_min_area: int = 5
    mask_grow_fwhm: float = 1.0
    hot_pixel_sigma: float = 5.0
    bad_column_sigma: float = 10.0
    early_late_fraction: float = 1.0 / 3.0

    def __post_init__(self) -> None:
        problems: list[str] = []
        if (
            not isinstance(self.memory_mb, int)
            or isinstance(self.memory_mb, bool)
            or self.memory_mb < 1
        ):
            problems.append(f"memory_mb must be a whole number >= 1, not {self.memory_mb!r}")
        if (
            not isinstance(self.mask_min_area, int)
            or isinstance(self.mask_min_area, bool)
            or self.mask_min_area < 1
        ):
            problems.append(
                f"mask_min_area must be a whole number >= 1, not {self.mask_min_area!r}"
            )
        for name in ("mask_sigma", "hot_pixel_sigma", "bad_column_sigma"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                problems.append(f"{name} must be a positive number, not {value!r}")
        value = self.mask_grow_fwhm
        if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
            problems.append(f"mask_grow_fwhm must be a number >= 0, not {value!r}")
        value = self.early_late_fraction
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= 0.5:
            problems.append(f"early_late_fraction must be a number in (0, 0.5], not {value!r}")
        if problems:
            raise ValueError("sky settings: " + "; ".join(problems))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> SkySettings:
        """Settings from a configuration section.

        Parameters
        ----------
        values : mapping or None
            Keys as the attribute names; missing or null keys take their defaults.

        Returns
        -------
        SkySettings

        Raises
        ------
        ValueError
            For a key that is not a setting (named in the message), or a value out of range.
        """
        return cls(**section_values(cls, values, "sky"))

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain mapping."""
        return asdict(self)


# --------------------------------------------------------------------------- medians


def _read_rows(reader: FrameRows, level: float, y0: int, out: NDArray[np.float32]) -> None:
    """Rows ``y0`` on of a frame into ``out``, less the frame's sky level (NaN: measured
    on them), with NaN and infinities made zero."""
    rows = out.shape[0]
    part = reader.read(y0, y0 + rows, out=out)
    if not math.isfinite(level):
        level = float(np.nanmedian(part[:: max(1, rows // 16), ::4]))
    part -= np.float32(level)
    if reader.may_hold_nan and not np.isfinite(part).all():
        np.nan_to_num(part, copy=False, nan=0.0, posinf=0.0, neginf=0.0)


def _median_last(values: NDArray[np.float32]) -> NDArray[np.float32]:
    """Median along the last axis, partitioning ``values`` in place (within that axis)."""
    n = values.shape[-1]
    if n == 1:
        return values[..., 0].copy()
    middle = n // 2
    values.partition(middle, axis=-1)
    upper = values[..., middle]
    if n % 2:
        return upper.copy()
    lower = values[..., :middle].max(axis=-1)
    return ((lower + upper) * np.float32(0.5)).astype(np.float32)


def _median_strip(
    strip: NDArray[np.float32],
    n_edge: int,
    stack: NDArray[np.float32],
    early: NDArray[np.float32],
    middle: NDArray[np.float32] | None,
    late: NDArray[np.float32],
    pool: ThreadPoolExecutor | None = None,
) -> None:
    """Medians over the frames (axis 0) of a strip into the stacks (its blocks of rows
    shared out over ``pool``'s threads when given).

    ``strip`` has shape (frames, rows, width); ``early`` and ``late`` get the medians of the
    first and last ``n_edge`` frames, ``middle`` (when given) that of the frames between,
    ``stack`` that of all. ``strip`` is left with its values permuted along the frames
    axis (each pixel keeps its set of values, which is all the medians need).
    """
    n, rows, width = strip.shape
    block = max(1, min(rows, _BLOCK_BYTES // max(1, n * width * 4)))

    def medians(r0: int) -> None:
        r1 = min(rows, r0 + block)
        values = np.ascontiguousarray(strip[:, r0:r1].transpose(1, 2, 0))
        early[r0:r1] = _median_last(values[..., :n_edge])
        late[r0:r1] = _median_last(values[..., n - n_edge :])
        if middle is not None:
            middle[r0:r1] = _median_last(values[..., n_edge : n - n_edge])
        stack[r0:r1] = _median_last(values)

    starts = range(0, rows, block)
    if pool is None:
        for r0 in starts:
            medians(r0)
    else:  # numpy's partition lets go of the GIL: blocks run side by side
        list(pool.map(medians, starts))


# --------------------------------------------------------------------------- maps


def _grow(mask: NDArray[np.bool_], radius: float) -> NDArray[np.bool_]:
    """Dilate ``mask`` by a disc of ``radius`` px (rows of maximum filters, shifted)."""
    from scipy.ndimage import maximum_filter1d

    r = int(math.floor(radius))
    if r < 1:
        return mask
    h, w = mask.shape
    source = mask.view(np.uint8)
    widths: dict[int, NDArray[np.uint8]] = {}
    out = np.zeros((h, w), dtype=bool)
    for dy in range(-r, r + 1):
        half = int(math.floor(math.sqrt(max(radius * radius - dy * dy, 0.0))))
        if half not in widths:
            widths[half] = (
                maximum_filter1d(source, size=2 * half + 1, axis=1, mode="constant")
                if half
                else source
            )
        wide = widths[half].view(bool)
        if dy >= 0:
            out[dy:] |= wide[: h - dy]
        else:
            out[:dy] |= wide[-dy:]
    return out


def _hot_pixels(
    sub: NDArray[np.float32], rms: NDArray[np.float32], fwhm: float, k_sigma: float
) -> NDArray[np.intp]:
    """Flat indices of single pixels far above the sky and far sharper than a star.

    A star centred on a pixel leaves ``exp(-1 / (2 sigma^2))`` of its peak on each of its
    four neighbours; a hot pixel leaves nothing. The neighbours must hold on average less
    than half of what a star's would, and none more than half of the pixel.
    """
    h, w = sub.shape
    if h < 3 or w < 3:
        return np.empty(0, np.intp)
    inner = sub[1:-1, 1:-1]
    rows, cols = np.nonzero(inner > k_sigma * rms[1:-1, 1:-1])
    rows += 1
    cols += 1
    value = sub[rows, cols]
    around = np.stack(
        [sub[rows - 1, cols], sub[rows + 1, cols], sub[rows, cols - 1], sub[rows, cols + 1]]
    )
    sigma = fwhm / SIGMA_TO_FWHM
    share = float(np.clip(0.5 * math.exp(-0.5 / sigma**2), 0.1, 0.4))
    sharp = (around.mean(axis=0) < share * value) & (around.max(axis=0) < 0.5 * value)
    return rows[sharp] * w + cols[sharp]


def _stationary(
    image: NDArray[np.float32],
    fwhm: float,
    mesh: int,
    frame_noise: float,
    settings: SkySettings,
) -> tuple[NDArray[np.bool_], Table, float]:
    """Stationary sources: their pixels (not grown), their catalogue and the threshold.

    ``image`` is the pixelwise minimum of the early, middle and late stacks. The
    threshold, in the image's own noise, is ``mask_sigma`` single-frame sigmas: it is
    scaled by the ratio of a frame's noise to the image's, and kept at 3 or more.
    """
    import sep

    background = sep.Background(image, bw=mesh, bh=mesh, fw=3, fh=3)
    noise = float(background.globalrms)
    background.subfrom(image)
    rms = background.rms(dtype=np.float32)
    np.maximum(rms, np.float32(max(noise, 1e-12) * 1e-3), out=rms)
    ratio = frame_noise / noise if noise > 0 and math.isfinite(frame_noise) else 1.0
    stack_sigma = max(3.0, settings.mask_sigma * ratio)
    kernel = gaussian_kernel(fwhm)
    threshold = stack_sigma * conv_threshold_factor(kernel)
    pixstack = 300_000
    largest = max(300_000, image.size)
    while True:
        sep.set_extract_pixstack(pixstack)
        sep.set_sub_object_limit(4096)
        try:
            objects, segmap = sep.extract(
                image,
                threshold,
                err=rms,
                minarea=settings.mask_min_area,
                filter_kernel=kernel,
                filter_type="conv",
                # No deblending (a blend of stars is masked all the same), and no
                # multi-threshold pass for it either: less than half the time.
                deblend_cont=1.0,
                deblend_nthresh=1,
                clean=False,
                segmentation_map=True,
            )
            break
        except Exception as exc:  # sep raises bare Exceptions on overflow
            if "pixel buffer full" in str(exc) and pixstack < largest:
                pixstack = min(largest, pixstack * 8)
                continue
            if "pixel buffer full" in str(exc):
                threshold *= 1.5
                stack_sigma *= 1.5
                logger.warning("sky: stationary mask threshold raised (%s)", exc)
                continue
            raise
        finally:
            sep.set_extract_pixstack(300_000)
            sep.set_sub_object_limit(1024)
    sources = Table(
        {
            "x": objects["x"].astype(np.float64),
            "y": objects["y"].astype(np.float64),
            "flux": objects["flux"].astype(np.float64),
            "peak": objects["peak"].astype(np.float64),
            "a": objects["a"].astype(np.float64),
            "b": objects["b"].astype(np.float64),
            "theta": objects["theta"].astype(np.float64),
            "npix": objects["npix"].astype(np.int32),
        }
    )
    return segmap > 0, sources, stack_sigma


def _frame_noise(frames_table: Table | None, stack_noise: float, n: int) -> float:
    """A single frame's per-pixel noise: the check's median, else from the stack's."""
    if frames_table is not None and "noise" in frames_table.colnames:
        values = np.asarray(frames_table["noise"], dtype=np.float64)
        if "status" in frames_table.colnames:
            values = values[np.asarray(frames_table["status"]) == "ok"]
        values = values[np.isfinite(values) & (values > 0)]
        if len(values):
            return float(np.median(values))
    return stack_noise * math.sqrt(n) / 1.2533


# --------------------------------------------------------------------------- writing


def _read_stack(path: Path) -> NDArray[np.float32]:
    """A stack written by :func:`stack_frames`, as native float32."""
    data = read_image(path)
    if data is None:
        raise ValueError(f"{path.name} is missing or holds no image")
    return data.astype(np.float32, copy=False)


def _write_image(path: Path, data: NDArray[Any], cards: Mapping[str, Any]) -> None:
    header = fits.Header()
    for key, value in cards.items():
        header[key] = value
    hdu = fits.PrimaryHDU(data=data, header=header)
    write_atomically(path, lambda temporary: hdu.writeto(temporary, output_verify="silentfix"))


def _tuned_value(tuned: Mapping[str, Any] | None, section: str, key: str) -> Any:
    """A value from tuned settings: ``tuned[section][key]["value"]`` or a plain value."""
    if not tuned:
        return None
    part = tuned.get(section)
    if isinstance(part, Mapping) and key in part:
        entry = part[key]
        return entry.get("value") if isinstance(entry, Mapping) else entry
    return tuned.get(key)


# --------------------------------------------------------------------------- public


def _card_text(text: str) -> str:
    """``text`` as a FITS header value can hold it: printable ASCII, with other characters
    escaped (a frame's name may hold anything; sky.json keeps it as it is)."""
    escaped = text.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if " " <= c <= "~" else "?" for c in escaped)


def model_sky(
    frame_paths: Sequence[Path],
    frames_table: Table | None,
    tuned: Mapping[str, Any] | None,
    settings: SkySettings,
    out_dir: Path,
    *,
    threads: int = 1,
) -> dict[str, Any]:
    """Stack the good frames (:func:`stack_frames`) and make the sky model's maps of the
    stacks (:func:`sky_maps`), in one call: the two steps of the workflow's sky stage.

    Returns what ``sky.json`` holds (see :func:`sky_maps`).
    """
    stack_frames(frame_paths, frames_table, settings, out_dir, threads=threads)
    return sky_maps(out_dir, frames_table, tuned, settings)


def stack_frames(
    frame_paths: Sequence[Path],
    frames_table: Table | None,
    settings: SkySettings,
    out_dir: Path,
    *,
    threads: int = 1,
) -> dict[str, Any]:
    """Stack the good frames in strips: the median stack, the early and late stacks, and
    the stationary image (the least of the thirds' medians), each in ``out_dir``.

    This needs only the checked frames (not the tuned settings), so that the workflow runs
    it beside the tune stage, and a change of tuning leaves the stacks as they are.

    Parameters
    ----------
    frame_paths : sequence of Path
        The session's good frames, in time order.
    frames_table : astropy.table.Table or None
        ``check/frames.ecsv``: each frame's ``background`` is its sky level (measured per
        strip where missing).
    settings : SkySettings
        Of which :data:`spacepixels.settings.SKY_STACK_SETTINGS` are used.
    out_dir : Path
        Folder for the files of :data:`STACK_FILES` (created), each written atomically.
    threads : int
        Threads that read the strips' rows and take their medians (default 1).

    Returns
    -------
    dict
        What ``stack.json`` holds: ``n_frames``, ``frames`` (names), ``shape``
        (``[height, width]``), ``strip_rows``, ``n_strips``, ``memory_mb``, ``early_frames``
        and ``late_frames`` (names), ``frame_sky_adu`` (level subtracted from each frame).

    Raises
    ------
    ValueError
        When no frame is given, or no frame has the shape of the first.
    spacepixels.frames.FrameReadError
        When a frame cannot be read (the message names it).
    """
    paths = [Path(p) for p in frame_paths]
    if not paths:
        raise ValueError("sky: no good frames to stack")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    readers = [FrameRows(p) for p in paths]
    shape = readers[0].shape
    odd = [r.path.name for r in readers if r.shape != shape]
    if odd:
        logger.warning(
            "sky: %d frame(s) differ in size from %s and are left out, e.g. %s",
            len(odd),
            paths[0].name,
            odd[0],
        )
        readers = [r for r in readers if r.shape == shape]
    height, width = shape
    n = len(readers)
    n_edge = max(1, int(round(n * settings.early_late_fraction)))

    levels = _frame_levels(readers, frames_table)
    budget = settings.memory_mb * 1024 * 1024
    strip_rows = int(max(1, min(height, budget // (n * width * 4))))
    if n * strip_rows * width * 4 > budget:
        logger.warning(
            "sky: %d frames of width %d need %.0f MB per row; memory_mb %d is exceeded",
            n,
            width,
            n * width * 4 / 2**20,
            settings.memory_mb,
        )
    stack = np.empty(shape, dtype=np.float32)
    early = np.empty(shape, dtype=np.float32)
    late = np.empty(shape, dtype=np.float32)
    # Thirds for the stationary image: a source is stationary when it is in all three.
    middle = np.empty(shape, dtype=np.float32) if n - 2 * n_edge >= 1 else None
    strip = np.empty((n, strip_rows, width), dtype=np.float32)
    n_strips = 0
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    try:
        for y0 in range(0, height, strip_rows):
            y1 = min(height, y0 + strip_rows)
            rows = y1 - y0

            jobs = [(readers[i], levels[i], y0, strip[i, :rows]) for i in range(n)]
            if pool is None:
                for job in jobs:
                    _read_rows(*job)
            else:
                list(pool.map(lambda job: _read_rows(*job), jobs))
            del jobs
            _median_strip(
                strip[:, :rows],
                n_edge,
                stack[y0:y1],
                early[y0:y1],
                None if middle is None else middle[y0:y1],
                late[y0:y1],
                pool,
            )
            n_strips += 1
    finally:
        if pool is not None:
            pool.shutdown()
    del strip

    names = [r.path.name for r in readers]
    cards = {"NFRAMES": n, "BUNIT": "adu", "COMMENT": "spacepixels sky model"}
    first, last = _card_text(names[0]), _card_text(names[-1])
    _write_image(out_dir / "early.fits", early, {**cards, "NFRAMES": n_edge, "FIRST": first})
    _write_image(out_dir / "late.fits", late, {**cards, "NFRAMES": n_edge, "LAST": last})
    _write_image(out_dir / "stack.fits", stack, cards)
    del stack
    stationary = early
    np.minimum(stationary, late, out=stationary)
    if middle is not None:
        np.minimum(stationary, middle, out=stationary)
    del early, late, middle
    _write_image(
        out_dir / "minimum.fits",
        stationary,
        {**cards, "COMMENT": "least of the medians of the first, middle and last frames"},
    )
    info: dict[str, Any] = {
        "n_frames": n,
        "frames": names,
        "shape": [height, width],
        "strip_rows": strip_rows,
        "n_strips": n_strips,
        "memory_mb": settings.memory_mb,
        "early_frames": names[:n_edge],
        "late_frames": names[n - n_edge :],
        "frame_sky_adu": [round(v, 3) if math.isfinite(v) else None for v in levels],
    }
    text = json.dumps(jsonable(info), indent=1) + "\n"
    write_atomically(out_dir / "stack.json", lambda t: t.write_text(text, encoding="utf-8"))
    logger.info("sky: %d frames stacked in %d strips of %d rows", n, n_strips, strip_rows)
    return info


def sky_maps(
    out_dir: Path,
    frames_table: Table | None,
    tuned: Mapping[str, Any] | None,
    settings: SkySettings,
) -> dict[str, Any]:
    """The sky model's maps, from the stacks :func:`stack_frames` wrote in ``out_dir``:
    the reference, the defect map, the stationary mask and its sources, and ``sky.json``.

    Parameters
    ----------
    out_dir : Path
        The folder of :data:`STACK_FILES`; the other files of :data:`SKY_FILES` are
        written there, each atomically.
    frames_table : astropy.table.Table or None
        ``check/frames.ecsv``: its median ``fwhm`` is the seeing when none was tuned, its
        median ``noise`` a single frame's noise.
    tuned : Mapping or None
        ``tune/settings.yaml`` (or resolved values): ``extract.kernel_fwhm_px`` (else
        ``measured.fwhm_px``) is the seeing, ``extract.background_mesh_px`` the mesh of the
        stack's background.
    settings : SkySettings

    Returns
    -------
    dict
        What ``sky.json`` holds: what ``stack.json`` holds, and ``fwhm_px``,
        ``background_mesh_px``, ``stack_noise_adu``, ``stack_background_adu``,
        ``mask_sigma``, ``mask_threshold_stack_sigma``, ``mask_grow_px``,
        ``mask_fraction``, ``stationary_sources``, ``hot_pixel_count``, ``hot_pixels``
        (``[[x, y], ...]``), ``bad_columns`` and ``bad_column_offsets_adu``, and
        ``settings``.

    Raises
    ------
    ValueError
        When ``out_dir`` lacks a stack file or it cannot be read (the message names it).
    """
    import sep

    out_dir = Path(out_dir)
    try:
        info = json.loads((out_dir / "stack.json").read_text(encoding="utf-8"))
        stack = _read_stack(out_dir / "stack.fits")
        stationary = _read_stack(out_dir / "minimum.fits")
    except (OSError, ValueError) as exc:
        raise ValueError(f"sky: cannot read the stacks in {out_dir}: {exc}") from exc
    shape = stack.shape
    height, width = shape
    n = int(info["n_frames"])
    cards = {"NFRAMES": n, "BUNIT": "adu", "COMMENT": "spacepixels sky model"}
    fwhm = _seeing(tuned, frames_table)
    mesh_value = _tuned_value(tuned, "extract", "background_mesh_px")
    mesh = int(mesh_value) if mesh_value else int(max(64, 16 * math.ceil(fwhm)))
    mesh = max(8, min(mesh, max(8, min(shape) // 2)))
    background = sep.Background(stack, bw=mesh, bh=mesh, fw=3, fh=3)
    back = background.back(dtype=np.float32)
    stack_background = float(np.median(back[:: max(1, height // 64), :: max(1, width // 64)]))
    noise = float(background.globalrms)
    sub = stack - back
    del back
    rms = background.rms(dtype=np.float32)
    np.maximum(rms, np.float32(max(noise, 1e-12) * 1e-3), out=rms)
    del stack

    # The reference for difference images: the stack with its sky subtracted, bad
    # columns kept (the frames have them, so their differences do not).
    _write_image(
        out_dir / "reference.fits",
        sub,
        {**cards, "NOISE": round(noise, 4), "COMMENT": "median stack, sky subtracted"},
    )
    columns, offsets = column_offsets(sub, noise, settings.bad_column_sigma)
    for column, offset in zip(columns, offsets, strict=True):
        sub[:, column] -= np.float32(offset)
        stationary[:, column] -= np.float32(offset)  # the defect map has it, not the mask
    hot = _hot_pixels(sub, rms, fwhm, settings.hot_pixel_sigma)
    defects = np.zeros(shape, dtype=np.uint8)
    defects.ravel()[hot] |= DEFECT_HOT_PIXEL
    defects[:, columns] |= DEFECT_BAD_COLUMN
    _write_image(out_dir / "defects.fits", defects, {"HOTPIX": len(hot), "BADCOLS": len(columns)})
    del defects

    del sub, rms
    found, sources, threshold = _stationary(
        stationary, fwhm, mesh, _frame_noise(frames_table, noise, n), settings
    )
    del stationary
    grow = settings.mask_grow_fwhm * fwhm
    mask = _grow(found, grow)
    del found
    mask_fraction = float(np.count_nonzero(mask)) / mask.size
    _write_image(
        out_dir / "stationary_mask.fits",
        mask.astype(np.uint8),
        {"MASKSIG": settings.mask_sigma, "GROWPX": round(grow, 3)},
    )
    del mask
    write_atomically(
        out_dir / "stationary_sources.ecsv",
        lambda t: sources.write(t, format="ascii.ecsv", overwrite=True),
    )
    hot_xy = [[int(i % width), int(i // width)] for i in hot]
    summary: dict[str, Any] = {
        **info,
        "fwhm_px": round(fwhm, 3),
        "background_mesh_px": mesh,
        "stack_noise_adu": round(noise, 4),
        "stack_background_adu": round(stack_background, 4),
        "mask_sigma": settings.mask_sigma,
        "mask_threshold_stack_sigma": round(threshold, 3),
        "mask_grow_px": round(grow, 3),
        "mask_fraction": round(mask_fraction, 6),
        "stationary_sources": len(sources),
        "hot_pixel_count": len(hot_xy),
        "hot_pixels": hot_xy,
        "bad_columns": [int(c) for c in columns],
        "bad_column_offsets_adu": [round(float(o), 2) for o in offsets],
        "settings": settings.to_dict(),
    }
    text = json.dumps(jsonable(summary), indent=1) + "\n"
    write_atomically(out_dir / "sky.json", lambda t: t.write_text(text, encoding="utf-8"))
    logger.info(
        "sky: %d frames; mask %.1f %%, %d hot pixels, bad columns %s",
        n,
        100 * mask_fraction,
        len(hot_xy),
        summary["bad_columns"],
    )
    return summary


def _frame_levels(readers: Sequence[FrameRows], frames_table: Table | None) -> list[float]:
    """Each frame's sky level from the check table (NaN where it has none)."""
    levels = [math.nan] * len(readers)
    if frames_table is None or "background" not in frames_table.colnames:
        return levels
    by_name = {
        str(name): float(value)
        for name, value in zip(frames_table["file"], frames_table["background"], strict=True)
    }
    return [by_name.get(r.path.name, math.nan) for r in readers]


def _seeing(tuned: Mapping[str, Any] | None, frames_table: Table | None) -> float:
    """The session's FWHM: tuned kernel, measured FWHM, the check's median, or 3 px."""
    for value in (
        _tuned_value(tuned, "extract", "kernel_fwhm_px"),
        _tuned_value(tuned, "measured", "fwhm_px"),
    ):
        if isinstance(value, int | float) and math.isfinite(value) and value > 0:
            return float(value)
    if frames_table is not None and "fwhm" in frames_table.colnames:
        values = np.asarray(frames_table["fwhm"], dtype=np.float64)
        values = values[np.isfinite(values) & (values > 0)]
        if len(values):
            return float(np.median(values))
    return 3.0
