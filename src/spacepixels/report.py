"""The session report (``report.html``) and the index of every session (``index.html``).

The report is where a person decides what is real, so it shows what the pipeline did and
why, from the files the stages wrote, and nothing else:

- **Summary**: the session, its night and target (the ``OBJECT`` header of the reference
  frame, else the folder's name), frames kept and rejected, candidates by kind, the plate
  solution and the total run time (the sum of the session's benchmark files).
- **Blink viewer**: the session's stretched previews (``convert/stretch.json``), stepped
  with the arrow keys, played with the space bar, with the candidates' detections
  (``detections.ecsv``, frame pixels scaled by the preview binning) drawn on a key press.
- **Candidates**, best score first: the object- and star-centric GIFs of the render stage
  side by side, and every measured quantity with its look-up links.
- **Frame quality**: every rejected frame with its reason, and small plots over time of the
  background, seeing, star count and drift. The plots are inline SVG computed here (points
  and axis ticks in Python, drawn by a template macro): crisp at any zoom, a few kB each, and
  no plotting library.
- **Settings**: every extraction and linking setting, marked *tuned* (with the measurement
  it came from, from ``tune/settings.yaml``) or *configured*.
- **Run**: seconds and peak memory per stage from the rules' benchmark files.

Safety: the page is rendered by jinja2 with autoescaping on, so every header value and file
name reaches the page as text. Data for the scripts travels in ``<script
type="application/json">`` blocks written with jinja's ``tojson`` (which escapes ``<``,
``>``, ``&`` and ``'``), so a frame named ``</script>`` cannot end the block. Links to
images are relative and percent-encoded per path segment; the look-up links keep only
``http(s)`` URLs. The style sheet and the script are inlined from the package: the page
loads nothing from the network, and the session folder works when copied or zipped.

The index lists every session of the run, newest night first. It is built from the
``report.json`` each report writes beside itself; a session without one is listed as
failed (with the first error line of its logs) or not run yet, so an index written after a
run in which one session failed (``keep-going``) still leads to all the others.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
import numpy as np
import yaml
from astropy.table import Table
from markupsafe import Markup

from spacepixels.files import jsonable, write_atomically
from spacepixels.settings import STAGES, section_values

__all__ = [
    "ReportSettings",
    "build_index",
    "build_report",
    "index_after_failure",
    "observed_target",
    "read_benchmarks",
    "session_context",
    "time_plot",
]

logger = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
"""The folder of the jinja2 templates and the inlined style sheet and script."""


KIND_LABELS = {
    "track": "track",
    "slow_mover": "slow mover",
    "streak_track": "streak track",
    "streak": "streak",
    "anomaly": "flash",
}
"""How each candidate kind is named on the page."""

LINK_LABELS = {
    "jpl": "JPL SB-Ident",
    "skybot": "SkyBoT",
    "mpc": "MPC checker",
    "satchecker": "SatChecker",
    "stellarium": "Stellarium Web",
}
"""Names of the look-up services of the ``links`` column."""

GIF_LABELS = {
    "object": "follows the object",
    "stars": "stars fixed",
    "context": "before, flash, after",
    "streak": "streak",
}
"""Captions of the render stage's GIFs, by their key in ``render.json``."""

REPORT_JSON_VERSION = 1
"""Version of ``report.json``, the summary the index reads."""


@dataclass(frozen=True)
class ReportSettings:
    """Settings of the report (the config's ``report:`` section).

    Attributes
    ----------
    blink_interval_ms : int
        Time each frame is shown while the blink viewer plays (ms, default 500).
    marker_radius_px : float
        Radius of the candidate markers in the blink viewer, in preview pixels (default 12).
    """

    blink_interval_ms: int = 500
    marker_radius_px: float = 12.0

    def __post_init__(self) -> None:
        interval = self.blink_interval_ms
        if isinstance(interval, bool) or not isinstance(interval, int) or not 20 <= interval:
            raise ValueError(
                f"report setting blink_interval_ms must be an integer >= 20, not {interval!r}"
            )
        radius = self.marker_radius_px
        if (
            isinstance(radius, bool)
            or not isinstance(radius, int | float)
            or not 1 <= radius <= 500
        ):
            raise ValueError(f"report setting marker_radius_px must be in [1, 500], not {radius!r}")
        object.__setattr__(self, "marker_radius_px", float(radius))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> ReportSettings:
        """Settings from the config's ``report:`` section (unknown keys are refused)."""
        return cls(**section_values(cls, values, "report"))


# --- small helpers ---------------------------------------------------------------------------


def _finite(value: Any) -> float | None:
    """A float, or None for masked, missing, NaN and infinite values."""
    if value is None or value is np.ma.masked:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _url(*segments: str) -> str:
    """A relative URL from path segments, each percent-encoded (a name may hold '#', '?')."""
    parts: list[str] = []
    for segment in segments:
        parts.extend(quote(part, safe="") for part in str(segment).split("/") if part)
    return "/".join(parts)


def _night_and_target(session_id: str) -> tuple[str, str]:
    """The night (first folder) and the target folder of a session id."""
    parts = [p for p in session_id.split("/") if p]
    if len(parts) < 2:
        return "", session_id
    return parts[0], "/".join(parts[1:])


def _sexagesimal(ra_deg: float | None, dec_deg: float | None) -> str:
    """RA and Dec as ``00h42m44.4s +41°16'10"``, or an empty string when unknown."""
    if ra_deg is None or dec_deg is None:
        return ""
    from astropy.coordinates import Angle

    ra = (
        Angle(ra_deg, unit="deg")
        .wrap_at("360d")
        .to_string(unit="hour", sep="hms", precision=1, pad=True)
    )
    dec = Angle(dec_deg, unit="deg").to_string(
        unit="deg", sep="dms", precision=0, alwayssign=True, pad=True
    )
    return f"{ra} {dec}"


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{int(minutes)} min {rest:02.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)} h {int(minutes):02d} min"


def _read_json(path: Path | None) -> dict[str, Any]:
    if path is None or not Path(path).exists():
        return {}
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not readable JSON: {exc}") from exc


def _environment() -> jinja2.Environment:
    """The jinja2 environment: autoescaping on for every template, undefined names fail."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["seconds"] = _format_seconds
    env.filters["num"] = _number
    env.filters["setting"] = _setting_value
    env.globals["kind_label"] = _kind_label
    return env


def _kind_label(kind: Any, count: int = 1) -> str:
    """A candidate kind as a person says it: "slow mover", "3 tracks"."""
    label = KIND_LABELS.get(str(kind), str(kind))
    return label + ("es" if label.endswith("sh") else "s") if count != 1 else label


def _setting_value(value: Any) -> str:
    """A setting as it would be written in config.yaml: true, false, null, 0.005."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _number(value: Any, digits: int = 2) -> str:
    """A number for a table cell: fixed digits, '–' for missing."""
    number = _finite(value)
    if number is None:
        return "–"
    if digits == 0:
        return f"{number:,.0f}".replace(",", " ")
    return f"{number:.{digits}f}"


def _static(name: str) -> Markup:
    """Our own style sheet or script, to be inlined as it is (it is not user data)."""
    return Markup((TEMPLATES / name).read_text(encoding="utf-8"))


def observed_target(
    session_folder: str | os.PathLike[str], reference_frame: str | None
) -> str | None:
    """The ``OBJECT`` header of the session's reference frame, or None.

    Parameters
    ----------
    session_folder : path-like
        The session's folder of frames.
    reference_frame : str or None
        The reference frame's file name (``check/summary.json``); None gives None.

    Returns
    -------
    str or None
        The header value stripped of spaces, or None when the frame, its header or the
        keyword is missing (the report then names the target by its folder).
    """
    if not reference_frame:
        return None
    from spacepixels.frames import FrameReadError, read_header

    try:
        header = read_header(Path(session_folder) / reference_frame)
    except FrameReadError as exc:
        logger.warning("no target name from %s: %s", reference_frame, exc)
        return None
    value = header.get("OBJECT")
    text = str(value).strip() if value is not None else ""
    return text or None


# --- benchmark files -------------------------------------------------------------------------


def read_benchmarks(folder: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Seconds and peak memory per stage from a session's Snakemake benchmark files.

    Parameters
    ----------
    folder : path-like
        ``results/<session>/benchmarks``; each ``<stage>.tsv``, ``<stage>_<chunk>.tsv``
        or ``<stage>_<step>.tsv`` (a stage of several jobs, such as ``sky_stack``) holds
        Snakemake's columns (``s``, ``max_rss`` in MB, ...). A missing folder gives no rows.

    Returns
    -------
    list of dict
        One row per stage in pipeline order: ``stage``, ``jobs``, ``seconds`` (summed over
        the stage's jobs and repeats), ``max_rss_mb`` (the largest of them, None when not
        measured) and ``cpu_seconds``.
    """
    folder = Path(folder)
    stages: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.tsv")) if folder.is_dir() else []:
        stem = path.stem
        head, _, tail = stem.rpartition("_")
        stage = head if head and tail.isdigit() else stem
        if stage not in STAGES and stem.split("_")[0] in STAGES:
            stage = stem.split("_")[0]
        try:
            with path.open(encoding="utf-8", newline="") as handle:
                rows = list(csv.DictReader(handle, delimiter="\t"))
        except OSError as exc:
            raise ValueError(f"{path}: unreadable benchmark file: {exc}") from exc
        entry = stages.setdefault(
            stage,
            {"stage": stage, "jobs": 0, "seconds": 0.0, "max_rss_mb": None, "cpu_seconds": 0.0},
        )
        entry["jobs"] += 1
        for row in rows:
            seconds = _finite(row.get("s"))
            if seconds is None:
                raise ValueError(f"{path}: not a Snakemake benchmark file (no 's' column)")
            entry["seconds"] += seconds
            entry["cpu_seconds"] += _finite(row.get("cpu_time")) or 0.0
            rss = _finite(row.get("max_rss"))
            if rss is not None:
                entry["max_rss_mb"] = max(rss, entry["max_rss_mb"] or 0.0)
    order = {name: i for i, name in enumerate(STAGES)}
    return sorted(stages.values(), key=lambda e: (order.get(e["stage"], len(order)), e["stage"]))


# --- plots -----------------------------------------------------------------------------------


def _nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round tick values covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        return [low]
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + 1e-9 * step:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _tick_label(value: float, step: float) -> str:
    if abs(value) >= 10000:
        return f"{value:.0f}"
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    return f"{value:.{min(decimals, 3)}f}"


def time_plot(
    times: Sequence[float | None],
    values: Sequence[float | None],
    rejected: Sequence[bool],
    names: Sequence[str],
    *,
    title: str,
    unit: str,
    x_label: str,
    width: int = 440,
    height: int = 150,
) -> dict[str, Any]:
    """The geometry of one small plot over time, for the template's SVG macro.

    Parameters
    ----------
    times, values : sequences of float or None
        x (minutes since the first frame, or the frame number) and y of each frame; a
        frame with either missing is left out.
    rejected : sequence of bool
        Frames drawn as rejected (hollow, warm colour) instead of joined by the line.
    names : sequence of str
        Frame names, shown as each point's tooltip.
    title, unit, x_label : str
        Texts of the plot (escaped by the template).
    width, height : int
        Size of the SVG in CSS pixels.

    Returns
    -------
    dict
        ``width``, ``height``, ``title``, ``unit``, ``x_label``, the plot box (``left``,
        ``top``, ``right``, ``bottom``), ``line`` (the polyline of the kept frames),
        ``points`` (``x``, ``y``, ``rejected``, ``tip``), ``x_ticks`` and ``y_ticks``
        (``pos``, ``label``), and ``empty`` when nothing can be drawn.
    """
    left, right, top, bottom = 52, width - 12, 10, height - 30
    rows = [
        (float(t), float(v), bool(r), str(n))
        for t, v, r, n in zip(times, values, rejected, names, strict=True)
        if _finite(t) is not None and _finite(v) is not None
    ]
    plot: dict[str, Any] = {
        "width": width,
        "height": height,
        "title": title,
        "unit": unit,
        "x_label": x_label,
        "left": left,
        "right": right,
        "top": top,
        "bottom": bottom,
        "line": "",
        "points": [],
        "x_ticks": [],
        "y_ticks": [],
        "empty": not rows,
    }
    if not rows:
        return plot
    xs = np.array([r[0] for r in rows])
    ys = np.array([r[1] for r in rows])
    x_low, x_high = float(xs.min()), float(xs.max())
    y_low, y_high = float(ys.min()), float(ys.max())
    if x_high - x_low < 1e-9:
        x_low, x_high = x_low - 1, x_high + 1
    span = y_high - y_low
    pad = span * 0.08 if span > 0 else max(abs(y_high) * 0.05, 0.5)
    y_low, y_high = y_low - pad, y_high + pad

    def px(x: float) -> float:
        return round(left + (x - x_low) / (x_high - x_low) * (right - left), 1)

    def py(y: float) -> float:
        return round(bottom - (y - y_low) / (y_high - y_low) * (bottom - top), 1)

    kept = [(px(x), py(y)) for x, y, r, _ in rows if not r]
    plot["line"] = " ".join(f"{x},{y}" for x, y in kept)
    for x, y, r, name in rows:
        tip = f"{name}: {y:.4g} {unit}".strip() + (" (rejected)" if r else "")
        plot["points"].append({"x": px(x), "y": py(y), "rejected": r, "tip": tip})
    y_ticks = _nice_ticks(y_low, y_high, 3)
    y_step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else 1.0
    plot["y_ticks"] = [{"pos": py(v), "label": _tick_label(v, y_step)} for v in y_ticks]
    x_ticks = _nice_ticks(x_low, x_high, 5)
    x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else 1.0
    plot["x_ticks"] = [{"pos": px(v), "label": _tick_label(v, x_step)} for v in x_ticks]
    return plot


# --- the session's context -------------------------------------------------------------------


def _frame_rows(frames: Table) -> list[dict[str, Any]]:
    rows = []
    for row in frames:
        rows.append(
            {
                "file": str(row["file"]),
                "status": str(row["status"]),
                "reason": str(row["reason"]) if "reason" in frames.colnames else "",
                "reason_kind": str(row["reason_kind"]) if "reason_kind" in frames.colnames else "",
                "utc": str(row["date_obs"]) if "date_obs" in frames.colnames else "",
                "mjd": _finite(row["mjd_mid"]) if "mjd_mid" in frames.colnames else None,
                "background": _finite(row["background"])
                if "background" in frames.colnames
                else None,
                "fwhm": _finite(row["fwhm"]) if "fwhm" in frames.colnames else None,
                "star_count": _finite(row["star_count"])
                if "star_count" in frames.colnames
                else None,
                "drift": (
                    _finite(math.hypot(float(row["dx"]), float(row["dy"])))
                    if "dx" in frames.colnames
                    and _finite(row["dx"]) is not None
                    and _finite(row["dy"]) is not None
                    else None
                ),
            }
        )
    return rows


def _quality_plots(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    mjds = [r["mjd"] for r in rows]
    timed = [m for m in mjds if m is not None]
    if len(timed) == len(rows) and timed:
        start = min(timed)
        times: list[float | None] = [(m - start) * 1440.0 for m in timed]
        x_label = "minutes since the first frame"
    else:
        times = [float(i + 1) for i in range(len(rows))]
        x_label = "frame number (no usable times)"
    rejected = [r["status"] != "ok" for r in rows]
    names = [r["file"] for r in rows]
    specs = [
        ("background", "Sky background", "ADU"),
        ("fwhm", "Seeing (FWHM)", "px"),
        ("star_count", "Stars detected", ""),
        ("drift", "Drift from the reference frame", "px"),
    ]
    return [
        time_plot(
            times, [r[key] for r in rows], rejected, names, title=title, unit=unit, x_label=x_label
        )
        for key, title, unit in specs
    ]


def _settings_rows(
    extract_config: Mapping[str, Any] | None,
    link_config: Mapping[str, Any] | None,
    tuned: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Every extraction and linking setting with where its value came from."""
    from spacepixels import tune

    rows = []
    for stage, section in (("extract", extract_config), ("link", link_config)):
        tuned_section = tuned.get(stage) or {}
        values, provenance = tune.resolve(section, tuned_section)
        for key, value in values.items():
            source = provenance[key]
            if source == "configured":
                mark, why = "configured", "set in the configuration"
                entry = tuned_section.get(key)
                if isinstance(entry, Mapping) and "value" in entry and entry["value"] != value:
                    why += f" (tuning measured {entry['value']!r}: {entry.get('why', '')})"
            elif source.startswith("tuned"):
                mark, why = "tuned", source.partition(": ")[2]
            else:
                mark, why = "default", "the stage's built-in default"
            rows.append({"stage": stage, "key": key, "value": value, "mark": mark, "why": why})
    return rows


def _links(raw: Any, source: str) -> list[dict[str, str]]:
    """The look-up links of a candidate: http(s) URLs only, in a fixed service order."""
    text = str(raw) if raw is not None and raw is not np.ma.masked else ""
    if not text.strip():
        return []
    try:
        links = json.loads(text)
    except ValueError:
        logger.warning("%s: a links value is not JSON; the links are left out", source)
        return []
    if not isinstance(links, Mapping):
        return []
    order = {name: i for i, name in enumerate(LINK_LABELS)}
    out = []
    for service in sorted(links, key=lambda s: (order.get(s, len(order)), s)):
        url = str(links[service])
        if urlsplit(url).scheme not in ("http", "https"):
            continue
        out.append(
            {"service": str(service), "label": LINK_LABELS.get(service, str(service)), "url": url}
        )
    return out


def _render_entries(render: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    entries = {}
    for entry in render.get("candidates", []) or []:
        if isinstance(entry, Mapping) and "id" in entry:
            entries[str(entry["id"])] = dict(entry)
    return entries


def _candidates(
    candidates: Table, render: Mapping[str, Any], render_folder: str, source: str
) -> list[dict[str, Any]]:
    rendered = _render_entries(render)
    cols = set(candidates.colnames)

    def get(row: Any, name: str) -> Any:
        return row[name] if name in cols else None

    cards = []
    for row in candidates:
        cid = str(row["id"])
        entry = rendered.get(cid, {})
        gifs, shown = [], set()
        named = dict(entry.get("gifs") or {})
        keys = [k for k in GIF_LABELS if k in named] + sorted(
            k for k in named if k not in GIF_LABELS
        )
        for key in keys:
            name = str(named[key] or "")
            if name and name not in shown:  # a streak's GIF may be its star-centric one
                shown.add(name)
                label = GIF_LABELS.get(key, key)
                gifs.append({"key": key, "label": label, "src": _url(render_folder, name)})
        ra0, dec0 = _finite(get(row, "ra_start")), _finite(get(row, "dec_start"))
        ra1, dec1 = _finite(get(row, "ra_end")), _finite(get(row, "dec_end"))
        cards.append(
            {
                "id": cid,
                "kind": str(row["kind"]),
                "n_frames": int(row["n_frames"]) if "n_frames" in cols else None,
                "n_missed": int(row["n_missed"])
                if "n_missed" in cols and _finite(row["n_missed"]) is not None
                else None,
                "utc_start": str(get(row, "utc_start") or ""),
                "utc_end": str(get(row, "utc_end") or ""),
                "frame_start": str(get(row, "frame_start") or ""),
                "frame_end": str(get(row, "frame_end") or ""),
                "x_start": _finite(get(row, "x_start")),
                "y_start": _finite(get(row, "y_start")),
                "x_end": _finite(get(row, "x_end")),
                "y_end": _finite(get(row, "y_end")),
                "sky_start": _sexagesimal(ra0, dec0),
                "sky_end": _sexagesimal(ra1, dec1),
                "ra_start": ra0,
                "dec_start": dec0,
                "rate_px_per_min": _finite(get(row, "rate_px_per_min")),
                "rate_arcsec_per_min": _finite(get(row, "rate_arcsec_per_min")),
                "pa_deg": _finite(get(row, "pa_deg")),
                "direction_deg": _finite(get(row, "direction_deg")),
                "snr": _finite(get(row, "snr_median")),
                "score": _finite(get(row, "score")),
                "length_px": _finite(get(row, "length_px")),
                "sidereal_rate": bool(get(row, "sidereal_rate"))
                if "sidereal_rate" in cols
                else False,
                "links": _links(get(row, "links"), source),
                "gifs": gifs,
                "render_note": "" if entry else "not rendered",
            }
        )
    cards.sort(key=lambda c: (-(c["score"] if c["score"] is not None else -math.inf), c["id"]))
    return cards


def _blink(
    stretch: Mapping[str, Any],
    frames: list[dict[str, Any]],
    detections: Table | None,
    kinds: Mapping[str, str],
    previews_folder: str,
) -> dict[str, Any]:
    """The blink viewer's data: one entry per preview with its time and its markers."""
    binning = float(stretch.get("binning") or 1)
    by_file = {r["file"]: r for r in frames}
    markers: dict[str, list[dict[str, Any]]] = {}
    if detections is not None and len(detections):
        # Whole columns at once (a row at a time is slow on astropy tables): preview
        # pixels, NaN where a value is missing; a streak's ends only where all four exist.
        def column(name: str) -> np.ndarray:
            if name not in detections.colnames:
                return np.full(len(detections), np.nan)
            values = np.ma.filled(np.ma.asarray(detections[name], dtype=float), np.nan)
            return np.round((values + 0.5) / binning, 2)

        xs, ys = column("x"), column("y")
        ends = np.column_stack([column(c) for c in ("x0", "y0", "x1", "y1")])
        has_line = np.isfinite(ends).all(axis=1)
        ids = [str(v) for v in detections["candidate_id"]]
        names = [str(v) for v in detections["frame"]]
        for i in np.flatnonzero(np.isfinite(xs) & np.isfinite(ys)):
            marker: dict[str, Any] = {
                "id": ids[i],
                "kind": kinds.get(ids[i], ""),
                "x": float(xs[i]),
                "y": float(ys[i]),
            }
            if has_line[i]:
                marker["line"] = [float(v) for v in ends[i]]
            markers.setdefault(names[i], []).append(marker)
    entries = []
    for item in stretch.get("previews", []) or []:
        file = str(item["file"])
        info = by_file.get(file, {})
        entries.append(
            {
                "name": file,
                "src": _url(previews_folder, str(item["preview"])),
                "utc": info.get("utc", ""),
                "mjd": info.get("mjd"),
                "markers": markers.get(file, []),
            }
        )
    return {
        "width": int(stretch.get("preview_width") or 0),
        "height": int(stretch.get("preview_height") or 0),
        "binning": binning,
        "frames": entries,
    }


def session_context(
    session_id: str,
    *,
    session_dir: str | os.PathLike[str],
    frames_path: str | os.PathLike[str],
    summary_path: str | os.PathLike[str],
    stretch_path: str | os.PathLike[str],
    tuned_path: str | os.PathLike[str],
    candidates_path: str | os.PathLike[str],
    detections_path: str | os.PathLike[str],
    solve_path: str | os.PathLike[str] | None = None,
    link_stats_path: str | os.PathLike[str] | None = None,
    render_path: str | os.PathLike[str] | None = None,
    benchmarks_dir: str | os.PathLike[str] | None = None,
    extract_config: Mapping[str, Any] | None = None,
    link_config: Mapping[str, Any] | None = None,
    target: str | None = None,
    settings: ReportSettings | None = None,
) -> dict[str, Any]:
    """Everything the session's page shows, read from the stages' files.

    Parameters
    ----------
    session_id : str
        The session id, e.g. ``2026-03-14/M31``.
    session_dir : path-like
        ``results/<session>``: where the page is written; every link on it is made
        relative to this folder.
    frames_path, summary_path : path-like
        ``check/frames.ecsv`` and ``check/summary.json``.
    stretch_path : path-like
        ``convert/stretch.json`` (previews listed relative to ``convert/previews``).
    tuned_path : path-like
        ``tune/settings.yaml``.
    candidates_path, detections_path : path-like
        The public catalogues.
    solve_path, link_stats_path, render_path : path-like, optional
        ``solve/solve.json``, ``link/link.json`` and ``render/render.json``.
    benchmarks_dir : path-like, optional
        ``benchmarks/`` of the session.
    extract_config, link_config : Mapping, optional
        The session's merged ``extract:`` and ``link:`` sections, to tell configured
        values from tuned ones.
    target : str, optional
        The observed target (the ``OBJECT`` header); default: the session's last folder.
    settings : ReportSettings, optional
        The report's own settings.

    Returns
    -------
    dict
        The template's context (plain values, not yet escaped).

    Raises
    ------
    ValueError
        Naming the file, when one of them cannot be read.
    """
    settings = settings or ReportSettings()
    session_dir = Path(session_dir)
    night, folder_target = _night_and_target(session_id)

    def table(path: str | os.PathLike[str]) -> Table:
        try:
            return Table.read(str(path), format="ascii.ecsv")
        except Exception as exc:  # astropy raises many kinds for a bad file
            raise ValueError(f"{path}: not a readable ECSV table: {exc}") from exc

    def relative(path: str | os.PathLike[str]) -> str:
        return Path(os.path.relpath(Path(path), session_dir)).as_posix()

    frames = table(frames_path)
    frame_rows = _frame_rows(frames)
    summary = _read_json(Path(summary_path))
    stretch = _read_json(Path(stretch_path))
    solution = _read_json(Path(solve_path)) if solve_path else {}
    link_stats = _read_json(Path(link_stats_path)) if link_stats_path else {}
    render = _read_json(Path(render_path)) if render_path else {}
    try:
        tuned = yaml.safe_load(Path(tuned_path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{tuned_path}: not readable YAML: {exc}") from exc
    candidates = table(candidates_path)
    detections = table(detections_path)

    render_folder = relative(Path(render_path).parent) if render_path else "render"
    previews_folder = relative(Path(stretch_path).parent / "previews")
    cards = _candidates(candidates, render, render_folder, str(candidates_path))
    kinds = {c["id"]: c["kind"] for c in cards}
    by_kind = Counter(c["kind"] for c in cards)
    kind_order = list(KIND_LABELS)
    kinds_counted = sorted(
        by_kind.items(),
        key=lambda kv: (kind_order.index(kv[0]) if kv[0] in kind_order else 99, kv[0]),
    )

    benchmarks = read_benchmarks(benchmarks_dir) if benchmarks_dir else []
    benchmarks = [b for b in benchmarks if b["stage"] != "report"]  # its own is not done yet
    stages_seconds = [b["seconds"] for b in benchmarks]
    total_seconds = sum(stages_seconds) if stages_seconds else None
    peak_rss = max(
        (b["max_rss_mb"] for b in benchmarks if b["max_rss_mb"] is not None), default=None
    )

    kept = sum(1 for r in frame_rows if r["status"] == "ok")
    solved = solution.get("status") == "solved"
    warnings: list[str] = [str(w) for w in summary.get("warnings", []) or []]
    warnings += [str(w) for w in link_stats.get("warnings", []) or []]
    hints = [
        str(h["message"])
        for h in (summary.get("hints") or {}).values()
        if isinstance(h, Mapping) and h.get("present") and h.get("message")
    ]
    overview = []
    for key, caption in (
        ("overview", "the stack with every candidate's path"),
        ("masks", "stationary and defect masks"),
    ):
        name = render.get(key)
        if name:
            overview.append({"src": _url(render_folder, str(name)), "caption": caption})

    time_span = summary.get("time_span") or {}
    return {
        "session": session_id,
        "night": night,
        "target": target if target else folder_target,
        "target_from_header": bool(target),
        "frames_total": len(frame_rows),
        "frames_kept": kept,
        "frames_rejected": len(frame_rows) - kept,
        "rejected": [r for r in frame_rows if r["status"] != "ok"],
        "time_span": {
            "first": str(time_span.get("first_utc") or ""),
            "last": str(time_span.get("last_utc") or ""),
            "minutes": _finite(time_span.get("duration_min")),
        },
        "plots": _quality_plots(frame_rows),
        "hints": hints,
        "warnings": warnings,
        "candidates": cards,
        "kinds": kinds_counted,
        "solved": solved,
        "solution": {
            "status": str(solution.get("status") or "not run"),
            "method": str(solution.get("method") or ""),
            "message": str(solution.get("message") or ""),
            "centre": str(solution.get("centre_sexagesimal") or ""),
            "scale": _finite(solution.get("pixel_scale_arcsec")),
            "rotation": _finite(solution.get("rotation_deg")),
        },
        "settings_rows": _settings_rows(extract_config, link_config, tuned),
        "profile": str(tuned.get("profile") or ""),
        "measured": {
            k: v for k, v in (tuned.get("measured") or {}).items() if not isinstance(v, list | dict)
        },
        "benchmarks": benchmarks,
        "total_seconds": total_seconds,
        "peak_rss_mb": peak_rss,
        "overview": overview,
        "blink": (blink := _blink(stretch, frame_rows, detections, kinds, previews_folder)),
        "blink_names": {f["name"] for f in blink["frames"]},
        "blink_interval_ms": settings.blink_interval_ms,
        "marker_radius_px": settings.marker_radius_px,
        "kind_labels": KIND_LABELS,
    }


def build_report(
    context: Mapping[str, Any],
    html_path: str | os.PathLike[str],
    json_path: str | os.PathLike[str] | None = None,
) -> str:
    """Write the session's page (and the summary the index reads) from its context.

    Parameters
    ----------
    context : Mapping
        From :func:`session_context`.
    html_path : path-like
        ``results/<session>/report.html``.
    json_path : path-like, optional
        ``results/<session>/report.json``: session, night, target, frame and candidate
        counts, solved, seconds.

    Returns
    -------
    str
        The page's HTML.
    """
    env = _environment()
    html = env.get_template("report.html.j2").render(
        **context, css=_static("report.css"), script=_static("blink.js")
    )
    write_atomically(html_path, lambda p: p.write_text(html, encoding="utf-8"))
    if json_path is not None:
        summary = {
            "version": REPORT_JSON_VERSION,
            "session": context["session"],
            "night": context["night"],
            "target": context["target"],
            "frames": context["frames_total"],
            "kept": context["frames_kept"],
            "rejected": context["frames_rejected"],
            "candidates": len(context["candidates"]),
            "by_kind": dict(context["kinds"]),
            "solved": context["solved"],
            "seconds": context["total_seconds"],
            "first_utc": context["time_span"]["first"],
        }
        text = json.dumps(jsonable(summary), indent=1, allow_nan=False)
        write_atomically(json_path, lambda p: p.write_text(text + "\n", encoding="utf-8"))
    logger.info(
        "report for %s: %d candidates, %d frames, %.0f kB",
        context["session"],
        len(context["candidates"]),
        context["frames_total"],
        len(html.encode()) / 1024,
    )
    return html


# --- the index -------------------------------------------------------------------------------


def _first_error(logs: Path) -> str:
    """The first error line of a session's logs, or an empty string."""
    if not logs.is_dir():
        return ""
    order = {name: i for i, name in enumerate(STAGES)}
    paths = sorted(logs.glob("*.log"), key=lambda p: (order.get(p.stem.split("_")[0], 99), p.name))
    for path in paths:
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            if " ERROR " in line or line.startswith("ERROR"):
                return line.split(" ERROR ", 1)[-1].split(": ", 1)[-1].strip()
    return ""


def build_index(
    results_root: str | os.PathLike[str],
    session_ids: Iterable[str],
    output: str | os.PathLike[str],
) -> list[dict[str, Any]]:
    """Write ``index.html`` over every session: newest night first, counts and links.

    A session is listed from its ``report.json``; without one it is ``failed`` (its logs
    hold an error, shown) or ``pending`` (not run yet), so the index can be written after a
    run in which some sessions failed.

    Parameters
    ----------
    results_root : path-like
        The results folder; the index is written at ``output`` (normally inside it) and
        links to ``<session>/report.html`` relative to the index's folder.
    session_ids : iterable of str
        The sessions of the run.
    output : path-like
        The index file.

    Returns
    -------
    list of dict
        The nights, each ``{"night", "sessions": [...]}``, as shown.
    """
    results_root = Path(results_root)
    index_dir = Path(output).parent
    nights: dict[str, list[dict[str, Any]]] = {}
    for session_id in sorted(set(session_ids)):
        night, target = _night_and_target(session_id)
        folder = results_root / session_id
        entry: dict[str, Any] = {"session": session_id, "target": target, "folder_target": target}
        summary_path = folder / "report.json"
        summary: dict[str, Any] = {}
        if summary_path.exists():
            try:
                summary = json.loads(summary_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                logger.warning("%s: unreadable; the session is listed without counts", summary_path)
        if summary and (folder / "report.html").exists():
            entry.update(summary)
            entry["status"] = "done"
            entry["href"] = Path(os.path.relpath(folder / "report.html", index_dir)).as_posix()
            entry["href"] = _url(*entry["href"].split("/"))
            order = list(KIND_LABELS)
            entry["kinds"] = sorted(
                (summary.get("by_kind") or {}).items(),
                key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0]),
            )
        else:
            error = _first_error(folder / "logs")
            entry["status"] = "failed" if error else "pending"
            entry["error"] = error
        nights.setdefault(night, []).append(entry)
    shown = [{"night": n, "sessions": nights[n]} for n in sorted(nights, reverse=True)]
    env = _environment()
    html = env.get_template("index.html.j2").render(
        nights=shown,
        counts=Counter(s["status"] for n in shown for s in n["sessions"]),
        css=_static("report.css"),
    )
    write_atomically(output, lambda p: p.write_text(html, encoding="utf-8"))
    logger.info("index of %d sessions in %s", sum(len(n["sessions"]) for n in shown), output)
    return shown


def index_after_failure(results_root: str | os.PathLike[str], session_ids: Iterable[str]) -> str:
    """Write ``<results_root>/index.html`` after a run in which a job failed.

    Called by the workflow's ``onerror`` handler: with ``keep-going``, the other sessions
    are done by then, and the index leads to them and names what failed.

    Returns
    -------
    str
        A line for the workflow's log saying what was done (never raises for an I/O or
        data problem: the run has failed already, and this must not hide why).
    """
    output = Path(results_root) / "index.html"
    try:
        nights = build_index(results_root, session_ids, output)
    except (OSError, ValueError) as exc:
        return f"spacepixels: could not write {output} after the failure: {exc}"
    failed = [s["session"] for n in nights for s in n["sessions"] if s["status"] != "done"]
    return f"spacepixels: wrote {output}; without a report: {', '.join(failed) or 'none'}"
