"""Tests of spacepixels.link on hand-built detection tables with a known answer.

A scene is a field of stars seen in every frame (with jitter and centroid noise), noise
detections, defects, cosmic rays and the objects of each test, written as the extraction
and the check would write them, with a sky model (median stack with the stars, defect map)
in a temporary folder.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from spacepixels.link import (
    CANDIDATE_COLUMNS,
    DETECTION_COLUMNS,
    LinkSettings,
    link_session,
    write_link,
)

SHAPE = (300, 400)  # height, width (of most scenes)
FWHM = 2.6
SIGMA_PSF = FWHM / 2.3548


@dataclass
class Scene:
    """Frames, detections and a sky model for link, built up by the tests."""

    seed: int = 1
    n_frames: int = 12
    rejected: tuple[int, ...] = (4,)
    gap_after: int | None = 6
    timed: bool = True
    n_stars: int = 150
    shape: tuple[int, int] = SHAPE
    rng: np.random.Generator = field(init=False)
    rows: list[dict[str, object]] = field(default_factory=list)
    stack: np.ndarray = field(init=False)
    defects: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.cadence_min = 1.5
        self.exposure_min = 80.0 / 60.0
        steps = np.full(self.n_frames, self.cadence_min)
        if self.gap_after is not None:
            steps[self.gap_after] += 6.0
        self.t_min = np.concatenate([[0.0], np.cumsum(steps[:-1])])
        self.mjd = 61000.5 + self.t_min / 1440.0
        self.jitter = self.rng.normal(0.0, 0.2, (self.n_frames, 2))
        self.files = [f"f_{k:04d}.fits" for k in range(self.n_frames)]
        self.stack = np.zeros(self.shape, dtype=np.float32)
        self.defects = np.zeros(self.shape, dtype=np.uint8)
        self._stars()
        for k in self.good:
            for _ in range(4):  # noise peaks
                self.point(k, self.rng.uniform(10, 390), self.rng.uniform(10, 290), snr=5.0)

    @property
    def good(self) -> list[int]:
        return [k for k in range(self.n_frames) if k not in self.rejected]

    def _stars(self) -> None:
        xs = self.rng.uniform(5, self.shape[1] - 5, self.n_stars)
        ys = self.rng.uniform(5, self.shape[0] - 5, self.n_stars)
        snr = 8.0 * self.rng.uniform(0, 1, self.n_stars) ** -1.2
        for x, y, s in zip(xs, ys, snr, strict=True):
            self._blob(self.stack, x, y, 30.0 * s / 2.0)
            for k in self.good:
                self.point(k, x + self.jitter[k, 0], y + self.jitter[k, 1], snr=s, star=True)

    @staticmethod
    def _blob(image: np.ndarray, x: float, y: float, peak: float) -> None:
        x0, y0 = int(round(x)), int(round(y))
        for yy in range(max(0, y0 - 4), min(image.shape[0], y0 + 5)):
            for xx in range(max(0, x0 - 4), min(image.shape[1], x0 + 5)):
                r2 = (xx - x) ** 2 + (yy - y) ** 2
                image[yy, xx] += peak * math.exp(-r2 / (2 * SIGMA_PSF**2))

    def point(
        self,
        k: int,
        x: float,
        y: float,
        *,
        snr: float,
        sharpness: float = 1.0,
        elongation: float = 1.1,
        a: float | None = None,
        theta: float | None = None,
        star: bool = False,
    ) -> None:
        """A detection in frame ``k`` at the true position ``(x, y)`` (jitter included)."""
        a = SIGMA_PSF * math.sqrt(elongation) if a is None else a
        b = a / elongation
        theta = self.rng.uniform(-1.5, 1.5) if theta is None else theta
        # The isophote's box: a segment of the moments' length, widened by the profile.
        half = 0.5 * math.sqrt(12.0 * max(a * a - b * b, 0.0))
        half_x = half * abs(math.cos(theta)) + 2.0 * b
        half_y = half * abs(math.sin(theta)) + 2.0 * b
        err = math.hypot(a, b) / max(snr, 1.0) / math.sqrt(2.0)
        peak_snr = snr / 2.0
        rms = 30.0
        self.rows.append(
            {
                "frame": self.files[k],
                "frame_index": k,
                "mjd": float(self.mjd[k]) if self.timed else math.nan,
                "x": x + self.rng.normal(0, err),
                "y": y + self.rng.normal(0, err),
                "flux": snr * 60.0,
                "flux_err": 60.0,
                "snr": snr,
                "peak": peak_snr * rms * (self.rng.uniform(0.9, 1.1) if star else 1.0),
                "peak_snr": peak_snr,
                "a": a,
                "b": b,
                "theta": theta,
                "elongation": elongation,
                "npix": 20,
                "xmin": int(math.floor(x - half_x)),
                "xmax": int(math.ceil(x + half_x)),
                "ymin": int(math.floor(y - half_y)),
                "ymax": int(math.ceil(y + half_y)),
                "flags": 0,
                "sharpness": sharpness * self.rng.uniform(0.95, 1.05),
                "background": 0.0,
                "rms": rms,
            }
        )

    def mover(
        self,
        x0: float,
        y0: float,
        rate_px_per_frame: float,
        direction_deg: float,
        *,
        snr: float = 8.0,
        missed: tuple[int, ...] = (),
    ) -> dict[int, tuple[float, float]]:
        """A point moving at a constant rate in time; returns its true positions."""
        speed = rate_px_per_frame / self.cadence_min
        ux, uy = math.cos(math.radians(direction_deg)), math.sin(math.radians(direction_deg))
        truth = {}
        for k in self.good:
            if k in missed:
                continue
            x = x0 + ux * speed * self.t_min[k] + self.jitter[k, 0]
            y = y0 + uy * speed * self.t_min[k] + self.jitter[k, 1]
            truth[k] = (x, y)
            self.point(k, x, y, snr=snr)
        return truth

    def streak(self, k: int, xc: float, yc: float, length: float, angle_deg: float) -> None:
        a = math.sqrt(length**2 / 12 + SIGMA_PSF**2)
        self.point(
            k,
            xc,
            yc,
            snr=60.0,
            sharpness=0.2,
            elongation=a / SIGMA_PSF,
            a=a,
            theta=math.radians(angle_deg),
        )

    def write(self, tmp_path: Path) -> tuple[Table, Table, Path]:
        detections = Table(rows=self.rows)
        frames = Table()
        frames["file"] = self.files
        frames["index"] = np.arange(self.n_frames)
        frames["mjd_mid"] = self.mjd if self.timed else np.full(self.n_frames, np.nan)
        frames["exposure_s"] = np.full(self.n_frames, 80.0)
        frames["width"] = self.shape[1]
        frames["height"] = self.shape[0]
        frames["fwhm"] = FWHM
        frames["dx"] = self.jitter[:, 0]
        frames["dy"] = self.jitter[:, 1]
        frames["status"] = [
            "rejected" if k in self.rejected else "ok" for k in range(self.n_frames)
        ]
        sky = tmp_path / "sky"
        sky.mkdir(parents=True, exist_ok=True)
        fits.writeto(sky / "stack.fits", self.stack, overwrite=True)
        fits.writeto(sky / "defects.fits", self.defects, overwrite=True)
        fits.writeto(
            sky / "stationary_mask.fits", (self.stack > 10).astype(np.uint8), overwrite=True
        )
        fits.writeto(sky / "early.fits", self.stack, overwrite=True)
        fits.writeto(sky / "late.fits", self.stack, overwrite=True)
        (sky / "sky.json").write_text(json.dumps({"fwhm": FWHM}))
        return detections, frames, sky


def run(scene: Scene, tmp_path: Path, **settings: object) -> tuple[Table, Table, dict]:
    detections, frames, sky = scene.write(tmp_path)
    return link_session(detections, frames, sky, LinkSettings.from_mapping(settings))


def near(table: Table, x: float, y: float, radius: float = 3.0) -> Table:
    return table[np.hypot(table["x"] - x, table["y"] - y) <= radius]


# --------------------------------------------------------------------------------------


def test_settings_reject_unknown_keys_naming_them() -> None:
    with pytest.raises(ValueError, match="match_radius, min_pts"):
        LinkSettings.from_mapping({"min_pts": 3, "match_radius": 2.0, "flash_min_snr": None})
    with pytest.raises(ValueError, match="must be positive"):
        LinkSettings.from_mapping({"match_radius_px": -1})
    settings = LinkSettings.from_mapping({"min_points": 5.0, "flash_min_snr": None})
    assert settings.min_points == 5 and settings.flash_min_snr is None


def test_a_quiet_field_gives_no_candidates(tmp_path: Path) -> None:
    candidates, detections, stats = run(Scene(seed=2), tmp_path)
    assert len(candidates) == 0, candidates
    assert len(detections) == 0
    assert stats["classes"]["stationary"] > 0.9 * 150 * 11
    assert stats["time_basis"] == "mjd"


def test_the_mover_is_found_where_it_was_at_its_rate(tmp_path: Path) -> None:
    scene = Scene(seed=3)
    truth = scene.mover(60.0, 80.0, 2.0, 25.0, snr=9.0, missed=(2, 9))
    candidates, detections, stats = run(scene, tmp_path)
    tracks = candidates[candidates["kind"] == "track"]
    assert len(candidates) == 1, candidates
    track = tracks[0]
    # One track across the rejected frame and the cadence gap, at the right rate in time.
    assert track["n_frames"] == len(truth)
    assert track["rate_px_per_frame"] == pytest.approx(2.0, rel=0.03)
    assert track["rate_px_per_min"] == pytest.approx(2.0 / 1.5, rel=0.03)
    assert track["direction_deg"] == pytest.approx(25.0, abs=1.5)
    k0 = min(truth)
    assert track["x_start"] == pytest.approx(truth[k0][0], abs=0.5)
    assert track["y_start"] == pytest.approx(truth[k0][1], abs=0.5)
    assert 0 < track["score"] <= 1
    assert track["id"] == "T0001"
    rows = detections[detections["candidate_id"] == "T0001"]
    for row in rows:
        k = int(row["frame_index"])
        assert math.hypot(row["x"] - truth[k][0], row["y"] - truth[k][1]) < 0.6
        assert math.hypot(row["x_fit"] - truth[k][0], row["y_fit"] - truth[k][1]) < 0.4
    assert stats["candidates"]["track"] == 1


def test_frames_without_times_are_linked_by_index(tmp_path: Path) -> None:
    scene = Scene(seed=4, timed=False, gap_after=None)
    scene.mover(300.0, 40.0, 1.5, 120.0, snr=10.0)
    candidates, detections, stats = run(scene, tmp_path)
    assert stats["time_basis"] == "frame_index"
    assert any("no time" in w for w in stats["warnings"])
    (track,) = candidates
    assert track["kind"] == "track"
    assert track["rate_px_per_frame"] == pytest.approx(1.5, rel=0.05)
    assert math.isnan(track["rate_px_per_min"]) and math.isnan(track["mjd_start"])
    assert np.all(np.isnan(detections["mjd"]))


def test_a_trailed_fast_mover_is_a_track_not_a_streak(tmp_path: Path) -> None:
    scene = Scene(seed=5)
    rate, direction = 7.0, -40.0
    speed = rate / scene.cadence_min
    trail = speed * scene.exposure_min
    a = math.sqrt(trail**2 / 12 + SIGMA_PSF**2)
    for k in scene.good:
        x = 80 + math.cos(math.radians(direction)) * speed * scene.t_min[k] + scene.jitter[k, 0]
        y = 250 + math.sin(math.radians(direction)) * speed * scene.t_min[k] + scene.jitter[k, 1]
        if 0 <= x < SHAPE[1] and 0 <= y < SHAPE[0]:
            scene.point(
                k, x, y, snr=12, elongation=a / SIGMA_PSF, a=a, theta=math.radians(direction)
            )
    candidates, _, _ = run(scene, tmp_path)
    assert list(candidates["kind"]) == ["track"], candidates
    assert candidates[0]["rate_px_per_frame"] == pytest.approx(rate, rel=0.03)


def test_hot_pixels_bad_column_and_cosmic_rays_are_not_reported(tmp_path: Path) -> None:
    scene = Scene(seed=6)
    # A hot pixel in the defect map, and one missing from it (found by being fixed).
    scene.defects[150, 100] = 1
    scene.defects[:, 333] = 2
    for k in scene.good:
        scene.point(k, 100.0, 150.0, snr=40, sharpness=8.0)
        scene.point(k, 222.0, 44.0, snr=25, sharpness=7.0)
        for yc in (40.0, 140.0, 240.0):  # pieces of the bad column
            yc += scene.rng.uniform(-10, 10)
            scene.point(k, 333.2, yc, snr=30, sharpness=0.5, elongation=9.0, a=12.0, theta=1.57)
        # Cosmic rays: sharp single-frame hits, bright, anywhere.
        for _ in range(3):
            scene.point(
                k, scene.rng.uniform(10, 390), scene.rng.uniform(10, 290), snr=30, sharpness=6.0
            )
    candidates, _, stats = run(scene, tmp_path)
    assert len(candidates) == 0, candidates
    assert stats["classes"]["defect"] >= 11 + 3 * 11  # the mapped hot pixel, the column
    assert stats["stationary"]["hot_pixel_detections"] >= 10  # the unmapped hot pixel
    assert stats["classes"]["cosmic_ray"] >= 3 * 11 - 3


def test_a_mover_crossing_a_bad_column_keeps_its_detection_there(tmp_path: Path) -> None:
    scene = Scene(seed=17)
    truth = scene.mover(180.0, 100.0, 3.0, 0.0, snr=12.0)  # crosses x = 200 near frame 5
    column = int(round(truth[5][0]))
    scene.defects[:, column] = 2
    candidates, _, _ = run(scene, tmp_path)
    assert list(candidates["kind"]) == ["track"], candidates
    assert candidates[0]["n_frames"] == len(truth)


def test_a_flash_is_reported_and_a_cosmic_ray_is_not(tmp_path: Path) -> None:
    scene = Scene(seed=7)
    scene.point(8, 123.0, 200.0, snr=40.0, sharpness=1.0)  # a flash: PSF-like
    scene.point(3, 250.0, 100.0, snr=40.0, sharpness=6.0)  # a cosmic ray: much sharper
    candidates, detections, _ = run(scene, tmp_path)
    assert list(candidates["kind"]) == ["anomaly"], candidates
    flash = candidates[0]
    assert flash["id"] == "F0001" and flash["n_frames"] == 1
    assert flash["x_start"] == pytest.approx(123.0, abs=0.3)
    assert detections[0]["frame"] == scene.files[8]
    assert flash["mjd_start"] == pytest.approx(scene.mjd[8])


def test_a_cosmic_ray_near_a_flash_in_another_frame_does_not_hide_it(tmp_path: Path) -> None:
    scene = Scene(seed=7)
    scene.point(8, 123.0, 200.0, snr=40.0, sharpness=1.0)  # the flash
    scene.point(2, 124.5, 197.5, snr=30.0, sharpness=6.0)  # a hit 3 px away, frame 2
    candidates, _, _ = run(scene, tmp_path)
    assert list(candidates["kind"]) == ["anomaly"], candidates
    assert candidates[0]["x_start"] == pytest.approx(123.0, abs=0.3)


def test_a_bright_point_on_a_star_is_the_star_not_a_flash(tmp_path: Path) -> None:
    scene = Scene(seed=8)
    # A second detection, as bright as the star, at a bright star's place in one frame.
    star = max(scene.rows[: scene.n_stars], key=lambda row: float(row["snr"]))
    scene.point(5, float(star["x"]), float(star["y"]) + 0.3, snr=float(star["snr"]))
    candidates, _, _ = run(scene, tmp_path)
    assert len(candidates) == 0, candidates


def test_a_flash_on_a_faint_star_is_a_flash(tmp_path: Path) -> None:
    scene = Scene(seed=8, n_stars=60)
    faint = [row for row in scene.rows[: scene.n_stars] if float(row["snr"]) < 9.0]
    star = faint[0]
    # Its own detection of frame 5 is replaced by one five times as bright.
    scene.rows = [
        r
        for r in scene.rows
        if not (
            r["frame"] == scene.files[5]
            and math.hypot(r["x"] - star["x"], r["y"] - star["y"]) < 1.5
        )
    ]
    # A flare, or a flash on the star.
    scene.point(5, float(star["x"]), float(star["y"]), snr=5.0 * float(star["snr"]))
    candidates, detections, _ = run(scene, tmp_path)
    assert list(candidates["kind"]) == ["anomaly"], candidates
    assert detections[0]["frame"] == scene.files[5]


def test_a_satellite_streak_is_a_streak(tmp_path: Path) -> None:
    scene = Scene(seed=9)
    scene.streak(6, 200.0, 150.0, 250.0, 30.0)
    candidates, detections, _ = run(scene, tmp_path)
    assert list(candidates["kind"]) == ["streak"], candidates
    row = detections[0]
    assert row["x"] == pytest.approx(200.0, abs=2) and row["y"] == pytest.approx(150.0, abs=2)
    length = math.hypot(row["x1"] - row["x0"], row["y1"] - row["y0"])
    assert length == pytest.approx(250.0, rel=0.15)
    angle = math.degrees(math.atan2(row["y1"] - row["y0"], row["x1"] - row["x0"])) % 180
    assert angle == pytest.approx(30.0, abs=2)


def test_a_streak_split_in_pieces_is_one_streak(tmp_path: Path) -> None:
    scene = Scene(seed=10)
    u = (math.cos(math.radians(-20)), math.sin(math.radians(-20)))
    for s in (-90.0, -30.0, 40.0):  # three pieces of 50 px along one line, with gaps
        scene.streak(5, 200.0 + s * u[0], 150.0 + s * u[1], 50.0, -20.0)
    scene.point(5, 200.0 + 5 * u[0], 150.0 + 5 * u[1], snr=6.0)  # a blob between two
    candidates, detections, _ = run(scene, tmp_path)
    assert list(candidates["kind"]) == ["streak"], candidates
    row = detections[0]
    length = math.hypot(row["x1"] - row["x0"], row["y1"] - row["y0"])
    assert length == pytest.approx(180.0, abs=20)


def test_a_streak_track_is_one_candidate(tmp_path: Path) -> None:
    scene = Scene(seed=11, gap_after=None)
    speed = 60.0  # px per minute: 80 px per exposure, 90 px per cadence
    u = (math.cos(math.radians(10)), math.sin(math.radians(10)))
    for n, k in enumerate((1, 2, 3)):
        d = speed * scene.cadence_min * n
        scene.streak(k, 60.0 + d * u[0], 100.0 + d * u[1], speed * scene.exposure_min, 10.0)
    candidates, detections, _ = run(scene, tmp_path)
    assert list(candidates["kind"]) == ["streak_track"], candidates
    track = candidates[0]
    assert track["id"] == "K0001" and track["n_frames"] == 3
    assert track["rate_px_per_min"] == pytest.approx(speed, rel=0.05)
    assert track["direction_deg"] == pytest.approx(10.0, abs=2)
    assert np.all(np.isfinite(detections["x0"]))


def test_a_slow_mover_in_the_stack_is_found(tmp_path: Path) -> None:
    scene = Scene(seed=12, n_frames=20, rejected=(7,), gap_after=10)
    truth = scene.mover(150.0, 150.0, 0.3, 70.0, snr=25.0)
    xs = [p[0] for p in truth.values()]
    ys = [p[1] for p in truth.values()]
    # The median stack holds it smeared; the early and late stacks where it was.
    scene._blob(scene.stack, float(np.mean(xs)), float(np.mean(ys)), 250.0)
    detections, frames, sky = scene.write(tmp_path)
    early = scene.stack.copy()
    late = scene.stack.copy()
    scene._blob(early, xs[3], ys[3], 300.0)
    scene._blob(late, xs[-3], ys[-3], 300.0)
    fits.writeto(sky / "early.fits", early, overwrite=True)
    fits.writeto(sky / "late.fits", late, overwrite=True)
    candidates, _, _ = link_session(detections, frames, sky, LinkSettings())
    assert list(candidates["kind"]) == ["slow_mover"], candidates
    assert candidates[0]["id"] == "M0001"
    assert candidates[0]["rate_px_per_frame"] == pytest.approx(0.3, rel=0.1)


def test_a_stationary_source_drifting_by_centroid_noise_is_not_a_slow_mover(
    tmp_path: Path,
) -> None:
    scene = Scene(seed=13, n_frames=20, rejected=(), gap_after=None)
    scene.mover(150.0, 150.0, 0.2, 0.0, snr=25.0)  # moving in the detections...
    detections, frames, sky = scene.write(tmp_path)  # ...but the early and late stacks agree
    candidates, _, _ = link_session(detections, frames, sky, LinkSettings())
    assert len(candidates) == 0, candidates


def test_outputs_are_written_in_the_contract_columns(tmp_path: Path) -> None:
    scene = Scene(seed=14)
    scene.mover(60.0, 200.0, 3.0, -10.0, snr=10.0)
    scene.point(2, 300.0, 250.0, snr=30.0)
    candidates, detections, stats = run(scene, tmp_path)
    out = tmp_path / "link"
    write_link(
        candidates,
        detections,
        stats,
        out / "candidates.ecsv",
        out / "detections.ecsv",
        out / "link.json",
    )
    back = Table.read(out / "candidates.ecsv", format="ascii.ecsv")
    rows = Table.read(out / "detections.ecsv", format="ascii.ecsv")
    assert tuple(back.colnames) == CANDIDATE_COLUMNS
    assert tuple(rows.colnames) == DETECTION_COLUMNS
    assert list(back["score"]) == sorted(back["score"], reverse=True)
    assert set(back["kind"]) == {"track", "anomaly"}
    assert set(rows["candidate_id"]) == set(back["id"])
    assert json.loads((out / "link.json").read_text())["candidates"]["track"] == 1
    assert not list(out.glob(".*tmp"))


def test_the_search_is_not_quadratic(tmp_path: Path) -> None:
    """Ten times the detections (ten times the field, same density) cost about ten times
    the time, not a hundred."""
    import time

    times = []
    for width in (400, 4000):
        scene = Scene(seed=15, n_stars=width // 8, shape=(300, width))
        for k in scene.good:
            for _ in range(width // 4):
                scene.point(k, scene.rng.uniform(0, width), scene.rng.uniform(0, 300), snr=5.0)
        detections, frames, sky = scene.write(tmp_path / str(width))
        start = time.perf_counter()
        link_session(detections, frames, sky, LinkSettings())
        times.append(time.perf_counter() - start)
    assert times[1] < 30 * times[0]


def test_a_synthetic_session_through_the_package(tmp_path: Path) -> None:
    """check, tune, sky model, extract and link on a seeded synthetic session: the injected
    movers and the flash are found where they were, and nothing else is reported."""
    from spacepixels import check, extract, skymodel, synth, tune
    from spacepixels.evaluate import evaluate_session

    objects = [
        synth.ObjectSpec("mover", snr=10.0, rate_px_per_frame=1.5),
        synth.ObjectSpec("mover", snr=7.0, rate_px_per_frame=4.0),
        synth.ObjectSpec("flash", snr=25.0),
    ]
    truth = synth.make_session(
        tmp_path / "nights",
        "2026-03-14/M31",
        seed=21,
        n_frames=12,
        shape=(360, 480),
        objects=objects,
    )
    folder = tmp_path / "nights" / "2026-03-14" / "M31"
    table, _ = check.check_session(sorted(folder.glob("*.fits")), check.CheckSettings())
    good = [folder / str(name) for name in table[table["status"] == "ok"]["file"]]
    tuned = tune.tune_session(good, table, tune.TuneSettings())
    skymodel.model_sky(good, table, tuned, skymodel.SkySettings(), tmp_path / "sky")
    detections = extract.extract_frames(
        good,
        table,
        tune.resolve({}, tuned["extract"])[0],
        None,
        reference_path=tmp_path / "sky" / "reference.fits",
    )
    assert detections.meta["reference"] == "reference.fits"
    settings = LinkSettings.from_mapping(tune.resolve({}, tuned["link"])[0])
    candidates, rows, stats = link_session(detections, table, tmp_path / "sky", settings)

    result = evaluate_session(truth, candidates, rows)
    by_id = {o.object_id: o for o in result.objects}
    for name in ("mover_1", "mover_2"):
        assert by_id[name].found and by_id[name].candidate_kind == "track", by_id[name]
        assert by_id[name].n_matched >= 8
        assert by_id[name].position_error_px < 0.5
    assert by_id["flash_1"].found and by_id["flash_1"].candidate_kind == "anomaly"
    assert result.false_candidates == [], candidates
    # The stars were subtracted before extraction: searched as they are, the frames hold
    # many times more sources.
    raw = extract.extract_frames(
        good, table, {**tune.resolve({}, tuned["extract"])[0], "subtract_reference": False}, None
    )
    assert stats["detections"] == len(detections) < len(raw) / 4


def test_a_slow_mover_hidden_in_a_blend_is_found_in_the_early_and_late_stacks(
    tmp_path: Path,
) -> None:
    """No detection of its own in any frame, but a dipole in early minus late."""
    scene = Scene(seed=16, n_frames=21, rejected=(), gap_after=None)
    detections, frames, sky = scene.write(tmp_path)
    rng = np.random.default_rng(0)
    early = scene.stack + rng.normal(0, 2.0, SHAPE).astype(np.float32)
    late = scene.stack + rng.normal(0, 2.0, SHAPE).astype(np.float32)
    # The first and last seven frames are centred on frames 3 and 17: 14 frames apart.
    start, end = (200.0, 120.0), (204.2, 120.0)  # 0.3 px per frame, along +x
    scene._blob(early, *start, 200.0)
    scene._blob(late, *end, 200.0)
    fits.writeto(sky / "early.fits", early, overwrite=True)
    fits.writeto(sky / "late.fits", late, overwrite=True)
    settings = LinkSettings.from_mapping({"slow_min_motion_px": 2.0})
    candidates, rows, _ = link_session(detections, frames, sky, settings)
    assert list(candidates["kind"]) == ["slow_mover"], candidates
    mover = candidates[0]
    assert mover["rate_px_per_frame"] == pytest.approx(0.3, rel=0.1)
    assert min(mover["direction_deg"], 360.0 - mover["direction_deg"]) < 5.0
    mine = rows[rows["candidate_id"] == mover["id"]]
    assert len(mine) == 21 and not np.any(mine["measured"])
    k = int(np.argmin(np.abs(mine["frame_index"] - 3)))
    assert mine[k]["x"] == pytest.approx(start[0] + scene.jitter[3, 0], abs=0.5)


def _reference_grow(self, i: int, j: int) -> list[int]:  # type: ignore[no-untyped-def]
    """The track search's grow step done frame by frame with ``_best`` (what the batched
    and cached search must reproduce)."""
    d, frames = self.d, self.frames
    chosen = {int(d.f[i]): i, int(d.f[j]): j}
    fit = self._fit([i, j])
    centre = 0.5 * (d.t[i] + d.t[j])
    for k in np.argsort(np.abs(frames.t - centre), kind="stable"):
        k = int(k)
        if k in chosen:
            continue
        px, py, var = fit.predict(float(frames.t[k]))
        _, _, _, vx, vy, *_ = fit.solve()
        best = self._best(k, px, py, var, vx, vy)
        if best >= 0:
            chosen[k] = best
            fit.add(float(d.t[best]), float(d.X[best]), float(d.Y[best]), 1 / self.sigma[best] ** 2)
    members, fit = self._clip(list(chosen.values()))
    have = {int(d.f[m]) for m in members}
    _, _, _, vx, vy, *_ = fit.solve()
    added = False
    for k in range(frames.n):
        if k in have:
            continue
        px, py, var = fit.predict(float(frames.t[k]))
        best = self._best(k, px, py, var, vx, vy)
        if best >= 0:
            members.append(best)
            added = True
    if added:
        members, fit = self._clip(members)
    return sorted(members, key=lambda m: (d.t[m], m))


def test_the_fast_track_search_matches_the_frame_by_frame_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spacepixels import link

    scene = Scene(seed=3)
    scene.mover(60.0, 80.0, 2.0, 25.0, snr=9.0, missed=(2, 9))
    scene.mover(250.0, 200.0, 1.2, 140.0, snr=6.0)
    fast = run(scene, tmp_path / "fast")
    grown: list[list[int]] = []
    real_grow = link._TrackFinder.grow

    def both(self, i: int, j: int) -> list[int]:  # type: ignore[no-untyped-def]
        members = real_grow(self, i, j)
        assert members == _reference_grow(self, i, j)
        grown.append(members)
        return members

    monkeypatch.setattr(link._TrackFinder, "grow", both)
    slow = run(scene, tmp_path / "slow")
    assert grown
    for a, b in zip(fast[:2], slow[:2], strict=True):
        assert a.colnames == b.colnames and len(a) == len(b)
        for name in a.colnames:
            x, y = np.asarray(a[name]), np.asarray(b[name])
            assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name


def test_lookups_at_points_agree_with_the_whole_image_filters_they_replace() -> None:
    """Link reads box means, local extrema, defect neighbourhoods and groups of touching
    detections only where it needs them; each must agree with the scipy filter over the
    whole image, edges included."""
    from types import SimpleNamespace

    from scipy import ndimage

    from spacepixels import link

    rng = np.random.default_rng(11)
    image = rng.normal(size=(37, 53)).astype(np.float32)
    ys, xs = np.mgrid[0:37, 0:53]
    x, y = xs.ravel().astype(float), ys.ravel().astype(float)
    for size in (3, 5, 7):
        smooth = ndimage.uniform_filter(image, size=size)
        assert np.allclose(link._box_mean(image, x, y, size), smooth.ravel(), atol=1e-5)
        pairs = ((np.maximum, ndimage.maximum_filter), (np.minimum, ndimage.minimum_filter))
        for op, filt in pairs:
            expected = image == filt(image, size)
            got = link._local_extrema(image, np.ones(image.shape, bool), size, op)
            assert np.array_equal(got, expected)
    defects = (rng.random((37, 53)) < 0.01).astype(np.uint8)
    near = ndimage.binary_dilation(defects > 0, iterations=2)
    assert np.array_equal(link._near_defect(defects, ys.ravel(), xs.ravel()), near.ravel())

    # Groups: marked pixels grown by 3 x 3 squares, 4-connected, numbered in raster order.
    n = 300
    d = SimpleNamespace(X=rng.uniform(-1, 60, n), Y=rng.uniform(-1, 40, n), n=n)
    use = rng.random(n) < 0.8
    marked = np.zeros((37, 53), bool)
    xi = np.clip(np.rint(d.X[use]).astype(int), 0, 52)
    yi = np.clip(np.rint(d.Y[use]).astype(int), 0, 36)
    marked[yi, xi] = True
    labels, _ = ndimage.label(ndimage.binary_dilation(marked, np.ones((3, 3), bool)))
    _, expected_groups = np.unique(labels[yi, xi], return_inverse=True)
    groups = link._raster_groups(d, use, (37, 53))
    assert np.array_equal(groups[use], expected_groups)
    assert (groups[~use] == -1).all()
