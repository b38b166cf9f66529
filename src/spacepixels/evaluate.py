"""Evaluate: match what link found against the truth of a synthetic session.

The synthetic generator (:mod:`spacepixels.synth`) writes where every injected object was
in every frame. This module decides, for each injected object, whether a candidate found
it, and, for each candidate, whether it was real; the benchmark and the tests build their
figures on it.

How a candidate matches an object
---------------------------------
A candidate's detection in a frame *lies on* an object when the object is in that frame
and

- for a point object (``mover``, ``slow_mover``, ``flash``), the detection is within
  ``radius_px`` of the object's position there (mid-exposure; the default radius is
  2.5 px or 1.5 times the frame's seeing FWHM, whichever is larger);
- for a ``streak`` or ``streak_track``, the detection's centre is within
  ``max(5 px, radius_px, 2 % of the segment's length)`` of the object's segment in that
  frame.

A candidate *matches* an object when most of its detections (more than half) lie on it
(when it lies on two, the one with more frames, then the one of a kind it is meant to find,
see :data:`COMPATIBLE`).
An object is *found* when a matching candidate has enough of its frames: one for a flash
or a streak, two (or half its frames, if more) for a streak track, and
``min(3, its frames)`` for movers and slow movers. Every candidate that matches no
object is a *false* candidate; one that matches an object already found by a better
candidate is a *duplicate* (reported, not counted as false).

Position error: for each found point object, the distance between each matched detection
and the truth position in that frame (measured centroids, ``x``, ``y``; and the fitted
line, ``x_fit``, ``y_fit``, when the detections carry it).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table

__all__ = [
    "ObjectResult",
    "SessionEvaluation",
    "evaluate_results",
    "evaluate_session",
    "summarize",
]

logger = logging.getLogger(__name__)

POINT_KINDS: tuple[str, ...] = ("mover", "slow_mover", "flash")
"""Truth kinds that are points in each frame."""

LINE_KINDS: tuple[str, ...] = ("streak", "streak_track")
"""Truth kinds that are segments in each frame."""

COMPATIBLE: dict[str, tuple[str, ...]] = {
    "track": ("mover", "slow_mover"),
    "slow_mover": ("slow_mover", "mover"),
    "streak": ("streak", "streak_track"),
    "streak_track": ("streak_track", "streak", "mover"),
    "anomaly": ("flash",),
}
"""Truth kinds each candidate kind is expected to find (used to break ties when a
candidate lies on two objects, e.g. a satellite crossing a mover)."""

LINE_RADIUS_PX = 5.0
"""Smallest distance (px) from a streak's segment within which a detection lies on it."""

LINE_ANGLE_TOLERANCE = 0.02
"""... or this fraction of the segment's length (about 1 degree of angle at its ends), for
long satellite trails whose centre a blend with a bright star pulls aside."""

DEFAULT_RADIUS_PX = 2.5
"""Smallest distance (px) within which a detection lies on a point object."""


@dataclass(frozen=True)
class ObjectResult:
    """What happened to one injected object.

    Attributes
    ----------
    session : str
        Session id.
    object_id, kind : str
        As in the truth.
    snr : float
        Requested peak S/N (nominal conditions).
    peak_snr : float
        Median of the object's per-frame peak S/N over the frames it is in.
    rate_px_per_frame : float
        Truth rate (0 for a flash).
    n_frames : int
        Frames the object is in (on the image).
    found : bool
        Whether a matching candidate had enough of its frames.
    candidate_id, candidate_kind : str
        The best matching candidate ("" when none).
    n_matched : int
        Frames in which that candidate's detections lay on the object.
    position_error_px : float
        Median distance of the matched detections from the truth (point objects; NaN
        otherwise).
    fit_error_px : float
        The same for the fitted positions (``x_fit``, ``y_fit``), NaN without them.
    """

    session: str
    object_id: str
    kind: str
    snr: float
    peak_snr: float
    rate_px_per_frame: float
    n_frames: int
    found: bool
    candidate_id: str = ""
    candidate_kind: str = ""
    n_matched: int = 0
    position_error_px: float = math.nan
    fit_error_px: float = math.nan


@dataclass
class SessionEvaluation:
    """The evaluation of one session.

    Attributes
    ----------
    session : str
        Session id.
    objects : list of ObjectResult
        One per injected object.
    false_candidates : list of (str, str)
        ``(id, kind)`` of candidates that matched no object.
    duplicates : list of (str, str)
        ``(id, kind)`` of candidates that matched an object found by another candidate.
    n_candidates : int
        All candidates.
    errors_px, fit_errors_px : list of float
        Distances of every matched point-object detection from the truth.
    """

    session: str
    objects: list[ObjectResult] = field(default_factory=list)
    false_candidates: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    n_candidates: int = 0
    errors_px: list[float] = field(default_factory=list)
    fit_errors_px: list[float] = field(default_factory=list)


def _segment_distance(px: float, py: float, x0: float, y0: float, x1: float, y1: float) -> float:
    """Distance from a point to a segment."""
    vx, vy = x1 - x0, y1 - y0
    length2 = vx * vx + vy * vy
    if length2 <= 0:
        return math.hypot(px - x0, py - y0)
    s = min(1.0, max(0.0, ((px - x0) * vx + (py - y0) * vy) / length2))
    return math.hypot(px - (x0 + s * vx), py - (y0 + s * vy))


def _finite(*values: Any) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(float(v)) for v in values)


def _on_object(
    row: Mapping[str, Any], obj: Mapping[str, Any], where: Mapping[str, Any], radius: float
) -> tuple[bool, float]:
    """Whether a detection row lies on the object in that frame, and its distance."""
    x, y = float(row["x"]), float(row["y"])
    if obj["kind"] in LINE_KINDS:
        if not _finite(where.get("x0"), where.get("y0"), where.get("x1"), where.get("y1")):
            dist = math.hypot(x - where["x"], y - where["y"])
            length = 0.0
        else:
            dist = _segment_distance(x, y, where["x0"], where["y0"], where["x1"], where["y1"])
            length = math.hypot(where["x1"] - where["x0"], where["y1"] - where["y0"])
        return dist <= max(LINE_RADIUS_PX, radius, LINE_ANGLE_TOLERANCE * length), dist
    dist = math.hypot(x - where["x"], y - where["y"])
    return dist <= radius, dist


def _needed(obj: Mapping[str, Any], n_frames: int) -> int:
    if obj["kind"] in ("flash", "streak"):
        return 1
    if obj["kind"] == "streak_track":
        return max(2, math.ceil(n_frames / 2)) if n_frames >= 2 else 1
    return min(3, n_frames)


def evaluate_session(
    truth: Mapping[str, Any],
    candidates: Table,
    detections: Table,
    *,
    radius_px: float | None = None,
) -> SessionEvaluation:
    """Match one session's candidates against its truth.

    Parameters
    ----------
    truth : mapping
        One session of the truth file (``read_truth(path)["sessions"][session_id]``).
    candidates, detections : astropy.table.Table
        Link's (or measure's) ``candidates.ecsv`` and ``detections.ecsv``.
    radius_px : float, optional
        Match radius for point objects; default ``max(2.5, 1.5 * FWHM)`` per frame.

    Returns
    -------
    SessionEvaluation
    """
    session = str(truth.get("session_id", ""))
    fwhm_of = {f["file"]: float(f.get("fwhm", 2.0)) for f in truth.get("frames", [])}
    rows_of: dict[str, list[dict[str, Any]]] = {}
    colnames = detections.colnames
    for row in detections:
        entry = {name: row[name] for name in colnames}
        rows_of.setdefault(str(entry["candidate_id"]), []).append(entry)
    kind_of = {str(c["id"]): str(c["kind"]) for c in candidates}
    score_of = {str(c["id"]): float(c["score"]) for c in candidates}
    objects = list(truth.get("objects", []))
    positions = [{p["frame"]: p for p in obj["positions"]} for obj in objects]

    # For every candidate and object: the frames in which the candidate lies on it.
    hits: dict[tuple[str, int], list[tuple[dict[str, Any], dict[str, Any], float]]] = {}
    for cid, rows in rows_of.items():
        for o, obj in enumerate(objects):
            for row in rows:
                where = positions[o].get(str(row["frame"]))
                if where is None:
                    continue
                radius = radius_px or max(DEFAULT_RADIUS_PX, 1.5 * fwhm_of.get(row["frame"], 2.0))
                on, dist = _on_object(row, obj, where, radius)
                if on:
                    hits.setdefault((cid, o), []).append((row, where, dist))

    result = SessionEvaluation(session=session, n_candidates=len(candidates))
    matched_to: dict[str, int] = {}
    for cid, rows in rows_of.items():
        best, best_n, best_rank = -1, 0, (0, False)
        for o in range(len(objects)):
            n = len({str(r["frame"]) for r, _, _ in hits.get((cid, o), [])})
            rank = (n, objects[o]["kind"] in COMPATIBLE.get(kind_of.get(cid, ""), ()))
            if n > 0 and rank > best_rank:
                best, best_n, best_rank = o, n, rank
        if best >= 0 and best_n > 0.5 * len({str(r["frame"]) for r in rows}):
            matched_to[cid] = best
    for cid in kind_of:
        if cid not in matched_to:
            result.false_candidates.append((cid, kind_of[cid]))

    for o, obj in enumerate(objects):
        n_frames = len(obj["positions"])
        peak = float(np.median([p["peak_snr"] for p in obj["positions"]])) if n_frames else 0.0
        mine = sorted(
            (cid for cid, oo in matched_to.items() if oo == o),
            key=lambda c: (-len(hits[(c, o)]), -score_of.get(c, 0.0)),
        )
        base = {
            "session": session,
            "object_id": str(obj["id"]),
            "kind": str(obj["kind"]),
            "snr": float(obj.get("snr", math.nan)),
            "peak_snr": peak,
            "rate_px_per_frame": float(obj.get("rate_px_per_frame", 0.0)),
            "n_frames": n_frames,
        }
        if not mine:
            result.objects.append(ObjectResult(found=False, **base))
            continue
        best = mine[0]
        got = hits[(best, o)]
        n_matched = len({str(r["frame"]) for r, _, _ in got})
        found = n_matched >= _needed(obj, n_frames)
        for other in mine[1:]:
            result.duplicates.append((other, kind_of[other]))
        err = fit_err = math.nan
        if obj["kind"] in POINT_KINDS and found:
            dists = [dist for _, _, dist in got]
            fits_ = [
                math.hypot(float(r["x_fit"]) - w["x"], float(r["y_fit"]) - w["y"])
                for r, w, _ in got
                if _finite(r.get("x_fit"), r.get("y_fit"))
            ]
            err = float(np.median(dists))
            result.errors_px.extend(dists)
            if fits_:
                fit_err = float(np.median(fits_))
                result.fit_errors_px.extend(fits_)
        result.objects.append(
            ObjectResult(
                found=found,
                candidate_id=best,
                candidate_kind=kind_of[best],
                n_matched=n_matched,
                position_error_px=err,
                fit_error_px=fit_err,
                **base,
            )
        )
    return result


def evaluate_results(
    truth_path: str | os.PathLike[str],
    results_root: str | os.PathLike[str],
    *,
    sessions: Iterable[str] | None = None,
    link_only: bool = False,
) -> list[SessionEvaluation]:
    """Evaluate every session of a synthetic tree from the workflow's results.

    Parameters
    ----------
    truth_path : path-like
        The tree's ``truth.json``.
    results_root : path-like
        The workflow's ``results_root``; each session's ``candidates.ecsv`` and
        ``detections.ecsv`` are read (``link/`` ones with ``link_only``).
    sessions : iterable of str, optional
        Session ids to evaluate; default all of the truth.
    link_only : bool
        Read ``<session>/link/candidates.ecsv`` instead of ``<session>/candidates.ecsv``.

    Returns
    -------
    list of SessionEvaluation

    Raises
    ------
    FileNotFoundError
        When a session has no results.
    """
    truth = json.loads(Path(truth_path).read_text())
    root = Path(results_root)
    out = []
    for sid in sessions or sorted(truth["sessions"]):
        folder = root / sid / "link" if link_only else root / sid
        candidates = Table.read(folder / "candidates.ecsv", format="ascii.ecsv")
        detections = Table.read(folder / "detections.ecsv", format="ascii.ecsv")
        out.append(evaluate_session(truth["sessions"][sid], candidates, detections))
    return out


def _fraction(results: Sequence[ObjectResult]) -> dict[str, Any]:
    n = len(results)
    k = sum(1 for r in results if r.found)
    return {"found": k, "total": n, "fraction": (k / n) if n else math.nan}


def _bin_label(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g}" if math.isfinite(hi) else f">={lo:g}"


def summarize(
    evaluations: Sequence[SessionEvaluation],
    *,
    snr_bins: Sequence[float] = (3.0, 5.0, 8.0, 12.0, math.inf),
    rate_bins: Sequence[float] = (0.15, 0.5, 1.0, 2.0, 4.0, 8.0, math.inf),
) -> dict[str, Any]:
    """The figures the detection benchmark prints and judges.

    Parameters
    ----------
    evaluations : sequence of SessionEvaluation
        One per session.
    snr_bins, rate_bins : sequence of float
        Bin edges of the per-frame peak S/N and of the rate (px per frame).

    Returns
    -------
    dict
        ``completeness_by_snr`` and ``completeness_by_rate`` (point movers: kinds
        ``mover`` and ``slow_mover``), ``by_kind``, ``targets`` (the populations the
        targets are judged on), ``false_per_session`` (by kind), ``false_total``,
        ``duplicates``, ``median_position_error_px``, ``median_fit_error_px``, and
        ``kind_agreement`` (how the found objects were classified).
    """
    objects = [o for e in evaluations for o in e.objects]
    movers = [o for o in objects if o.kind in ("mover", "slow_mover")]
    by_snr = {}
    for lo, hi in zip(snr_bins[:-1], snr_bins[1:], strict=True):
        by_snr[_bin_label(lo, hi)] = _fraction([o for o in movers if lo <= o.peak_snr < hi])
    below = [o for o in movers if o.peak_snr < snr_bins[0]]
    if below:
        by_snr[f"<{snr_bins[0]:g}"] = _fraction(below)
    by_rate = {}
    for lo, hi in zip(rate_bins[:-1], rate_bins[1:], strict=True):
        by_rate[_bin_label(lo, hi)] = _fraction(
            [o for o in movers if lo <= o.rate_px_per_frame < hi]
        )
    kinds = sorted({o.kind for o in objects})
    by_kind = {k: _fraction([o for o in objects if o.kind == k]) for k in kinds}
    targets = {
        "movers_snr5_rate0.5-8": _fraction(
            [
                o
                for o in objects
                if o.kind == "mover" and o.peak_snr >= 5 and 0.5 <= o.rate_px_per_frame <= 8
            ]
        ),
        "movers_snr3-5": _fraction(
            [o for o in objects if o.kind == "mover" and 3 <= o.peak_snr < 5]
        ),
        "slow_movers_snr8": _fraction(
            [
                o
                for o in objects
                if o.kind == "slow_mover" and o.peak_snr >= 8 and 0.15 <= o.rate_px_per_frame <= 0.5
            ]
        ),
        "streaks": _fraction([o for o in objects if o.kind in LINE_KINDS]),
        "flashes": _fraction([o for o in objects if o.kind == "flash"]),
    }
    n_sessions = max(1, len(evaluations))
    false_kinds: dict[str, int] = {}
    for e in evaluations:
        for _, kind in e.false_candidates:
            false_kinds[kind] = false_kinds.get(kind, 0) + 1
    errors = [x for e in evaluations for x in e.errors_px]
    fit_errors = [x for e in evaluations for x in e.fit_errors_px]
    agreement: dict[str, dict[str, int]] = {}
    for o in objects:
        if o.found:
            agreement.setdefault(o.kind, {})
            agreement[o.kind][o.candidate_kind] = agreement[o.kind].get(o.candidate_kind, 0) + 1
    return {
        "sessions": len(evaluations),
        "completeness_by_snr": by_snr,
        "completeness_by_rate": by_rate,
        "by_kind": by_kind,
        "targets": targets,
        "false_total": sum(false_kinds.values()),
        "false_per_session": sum(false_kinds.values()) / n_sessions,
        "false_per_session_by_kind": {k: v / n_sessions for k, v in sorted(false_kinds.items())},
        "duplicates": sum(len(e.duplicates) for e in evaluations),
        "median_position_error_px": float(np.median(errors)) if errors else math.nan,
        "median_fit_error_px": float(np.median(fit_errors)) if fit_errors else math.nan,
        "kind_agreement": agreement,
        "missed": [asdict(o) for o in objects if not o.found],
    }
