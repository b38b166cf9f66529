"""Tests of spacepixels.render on a seeded synthetic session with ground truth.

The session is drawn by :mod:`spacepixels.synth` (a mover, a flash and a streak track over
52 frames), checked by the real check stage and modelled by the real sky model; its
``candidates.ecsv`` and ``detections.ecsv`` are written from the generator's truth in the
public contract's columns (so these tests do not depend on how well link finds things),
with one of the mover's frames left out as a missed detection. The GIFs are then decoded
and measured the way a user looks at them: where the mover is, whether the stars stand
still, whether the sky flickers.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from PIL import Image, ImageSequence
from workdir import make_workdir

from spacepixels import check, render, skymodel, synth, tune
from spacepixels.render import RenderSettings, render_session

SESSION = "2026-03-14/M31"
N_FRAMES = 52
SHAPE = (320, 420)
MISSED = 10  # the mover's truth position in this frame is left out of detections.ecsv
ROOT = Path(__file__).resolve().parents[1]


def _grey_frames(path: Path) -> list[np.ndarray]:
    """A GIF's frames as grey arrays (float), as a viewer shows them, with the coloured
    marks (circles, ticks) replaced by the frame's median grey."""
    out = []
    with Image.open(path) as gif:
        for frame in ImageSequence.Iterator(gif):
            rgb = np.asarray(frame.convert("RGB"), dtype=np.float64)
            grey = rgb[:, :, 1].copy()
            marks = (rgb[:, :, 0] != rgb[:, :, 1]) | (rgb[:, :, 1] != rgb[:, :, 2])
            grey[marks] = np.median(grey[~marks])
            out.append(grey)
    return out


def _centroid(image: np.ndarray, x: float, y: float, radius: float) -> tuple[float, float]:
    """Intensity-weighted centroid above the local median within ``radius`` of (x, y)."""
    yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    near = np.hypot(xx - x, yy - y) <= radius
    weights = np.clip(image - np.median(image), 0, None) * near
    weights = np.where(weights >= 0.5 * weights.max(), weights, 0.0)
    return float((weights * xx).sum() / weights.sum()), float((weights * yy).sum() / weights.sum())


def _contract_tables(truth: dict, good: list[str]) -> tuple[Table, Table]:
    """candidates.ecsv and detections.ecsv from the truth, in the contract's columns."""
    ids = {"mover": "T0001", "flash": "F0001", "streak_track": "K0001"}
    kinds = {"mover": "track", "flash": "anomaly", "streak_track": "streak_track"}
    candidates, detections = [], []
    for obj in truth["objects"]:
        cid = ids[obj["kind"]]
        rows = [p for p in obj["positions"] if p["frame"] in good]
        if obj["kind"] == "mover":
            rows = [p for p in rows if p["index"] != MISSED]
        for p in rows:
            detections.append(
                {
                    "candidate_id": cid,
                    "frame": p["frame"],
                    "mjd": p["mjd"],
                    "x": p["x"],
                    "y": p["y"],
                    "flux": 1000.0,
                    "snr": p["peak_snr"],
                    "x0": p.get("x0", math.nan) if obj["kind"] == "streak_track" else math.nan,
                    "y0": p.get("y0", math.nan) if obj["kind"] == "streak_track" else math.nan,
                    "x1": p.get("x1", math.nan) if obj["kind"] == "streak_track" else math.nan,
                    "y1": p.get("y1", math.nan) if obj["kind"] == "streak_track" else math.nan,
                }
            )
        candidates.append(
            {
                "id": cid,
                "kind": kinds[obj["kind"]],
                "n_frames": len(rows),
                "mjd_start": rows[0]["mjd"],
                "mjd_end": rows[-1]["mjd"],
                "x_start": rows[0]["x"],
                "y_start": rows[0]["y"],
                "x_end": rows[-1]["x"],
                "y_end": rows[-1]["y"],
                "score": 0.9,
            }
        )
    return Table(rows=candidates), Table(rows=detections)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("render")
    objects = [
        synth.ObjectSpec("mover", snr=30.0, rate_px_per_frame=2.0, direction_deg=20.0),
        synth.ObjectSpec("flash", snr=40.0),
        synth.ObjectSpec("streak_track", snr=20.0, length_px=60.0, n_frames=3),
    ]
    truth = synth.make_session(
        base / "nights", SESSION, seed=31, n_frames=N_FRAMES, shape=SHAPE, objects=objects
    )
    folder = base / "nights" / SESSION
    table, _ = check.check_session(sorted(folder.glob("*.fits")), check.CheckSettings())
    results = base / "results" / SESSION
    (results / "check").mkdir(parents=True)
    table.write(results / "check" / "frames.ecsv", format="ascii.ecsv")
    good_names = [str(n) for n in table[table["status"] == "ok"]["file"]]
    good = [folder / n for n in good_names]
    tuned = tune.tune_session(good[:5], table, tune.TuneSettings())
    skymodel.model_sky(good, table, tuned, skymodel.SkySettings(), results / "sky")
    candidates, detections = _contract_tables(truth, good_names)
    candidates.write(results / "candidates.ecsv", format="ascii.ecsv")
    detections.write(results / "detections.ecsv", format="ascii.ecsv")
    return {
        "truth": truth,
        "folder": folder,
        "results": results,
        "table": table,
        "good": good_names,
    }


def _render(session: dict, out: Path, **settings) -> dict:
    r = session["results"]
    return render_session(
        SESSION,
        session["folder"],
        r / "check" / "frames.ecsv",
        r / "candidates.ecsv",
        r / "detections.ecsv",
        r / "sky",
        out,
        RenderSettings(**settings),
    )


@pytest.fixture(scope="module")
def rendered(session: dict, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("out") / "render"
    return _render(session, out), out


def _entry(manifest: dict, cid: str) -> dict:
    return next(c for c in manifest["candidates"] if c["id"] == cid)


def test_the_object_gif_holds_the_mover_still_at_its_centre(rendered) -> None:
    manifest, out = rendered
    entry = _entry(manifest, "T0001")
    frames = _grey_frames(out / entry["gifs"]["object"])
    assert len(frames) == entry["n_gif_frames"] >= 40
    zoom = entry["gif_px"][entry["gifs"]["object"]][0] / entry["crop_px"][0]
    cy, cx = (np.array(frames[0].shape) - 1) / 2.0
    offsets = []
    for image in frames:
        x, y = _centroid(image, cx, cy, radius=3 * zoom)
        offsets.append(math.hypot(x - cx, y - cy) / zoom)  # in frame pixels
    # Every frame, the missed one too (its place comes from the fitted path).
    assert max(offsets) < 1.0, offsets
    missed = f"M31_{MISSED + 1:04d}.fits"
    assert missed in entry["frames"]


def test_the_stars_gif_holds_the_stars_still_and_the_mover_walks(rendered, session) -> None:
    manifest, out = rendered
    entry = _entry(manifest, "T0001")
    name = entry["gifs"]["stars"]
    frames = np.array(_grey_frames(out / name))
    zoom = entry["gif_px"][name][0] / (entry["stars_crop_px"][0] / entry["binning"][name])
    scale = zoom / entry["binning"][name]  # display px per frame px
    still = np.median(frames, axis=0)  # the mover is gone from the median
    still[:20, :] = 0  # not the label
    y, x = np.unravel_index(np.argmax(still), still.shape)
    star = np.array([_centroid(f, x, y, radius=3 * scale) for f in frames])
    assert np.max(np.hypot(*(star - star.mean(axis=0)).T)) / scale < 0.75
    # The mover: where the truth puts it (in the reference frame's pixels, through the
    # crop's box), measured in the first, a middle and the last frame.
    x0, y0 = entry["stars_box"][:2]
    offsets = {str(r["file"]): (float(r["dx"]), float(r["dy"])) for r in session["table"]}
    truth = {p["frame"]: p for p in session["truth"]["objects"][0]["positions"]}
    seen = []
    for i in (0, len(frames) // 2, len(frames) - 1):
        p = truth[entry["frames"][i]]
        dx, dy = offsets[entry["frames"][i]]
        px = (p["x"] - dx - x0 + 0.5) * scale - 0.5
        py = (p["y"] - dy - y0 + 0.5) * scale - 0.5
        mx, my = _centroid(frames[i] - still, px, py, radius=3 * scale)
        assert math.hypot(mx - px, my - py) / scale < 1.0, (i, mx, my, px, py)
        seen.append((mx / scale, my / scale))
    walked = math.hypot(seen[-1][0] - seen[0][0], seen[-1][1] - seen[0][1])
    assert walked > 50


def test_one_stretch_and_palette_for_all_frames_of_a_gif(rendered) -> None:
    """No flicker: the same palette in every frame, and the sky at one grey level."""
    manifest, out = rendered
    for entry in manifest["candidates"]:
        for name in set(entry["gifs"].values()):
            with Image.open(out / name) as gif:
                flat = gif.getpalette()
                palette = {tuple(flat[i : i + 3]) for i in range(0, len(flat), 3)}
                for frame in ImageSequence.Iterator(gif):
                    colours = frame.convert("RGB").getcolors(maxcolors=1 << 16)
                    assert {c for _, c in colours} <= palette, name
            skies = [np.median(f[24:]) for f in _grey_frames(out / name)]
            assert max(skies) - min(skies) <= 12, (name, skies)


def test_a_200_px_gif_of_50_frames_stays_well_under_a_megabyte(session, tmp_path) -> None:
    manifest = _render(session, tmp_path / "big", object_crop_px=200, min_gif_px=200)
    entry = _entry(manifest, "T0001")
    name = entry["gifs"]["object"]
    assert entry["gif_px"][name] == [200, 200]
    assert entry["n_gif_frames"] >= 48
    size = (tmp_path / "big" / name).stat().st_size
    assert size == entry["bytes"][name]
    assert size < 0.8e6, size


def test_each_frame_is_read_once_per_session(session, tmp_path, monkeypatch) -> None:
    calls: list[str] = []
    original = render.read_frame

    def counting(path):
        calls.append(Path(path).name)
        return original(path)

    monkeypatch.setattr(render, "read_frame", counting)
    manifest = _render(session, tmp_path / "once")
    assert len(calls) == len(set(calls)) == manifest["frames_read"]
    shown = set().union(*(set(c["frames"]) for c in manifest["candidates"]))
    assert shown <= set(calls)
    assert len(manifest["candidates"]) == 3  # six GIFs, but each frame read once


def test_the_manifest_lists_every_candidate_and_its_files(rendered, session) -> None:
    manifest, out = rendered
    candidates = Table.read(session["results"] / "candidates.ecsv")
    assert [c["id"] for c in manifest["candidates"]] == list(candidates["id"])
    on_disk = json.loads((out / "render.json").read_text())
    assert on_disk["session"] == SESSION and on_disk["version"] == 1
    assert on_disk["candidates"] == json.loads(json.dumps(manifest["candidates"]))
    for entry in manifest["candidates"]:
        assert {"object", "stars"} <= set(entry["gifs"])
        for name, size in entry["bytes"].items():
            assert (out / name).stat().st_size == size
        assert entry["seconds"] > 0
    assert "context" in _entry(manifest, "F0001")["gifs"]
    assert "streak" in _entry(manifest, "K0001")["gifs"]
    for picture in (manifest["overview"], manifest["masks"]):
        with Image.open(out / picture) as image:
            assert image.format == "PNG" and image.size == (SHAPE[1], SHAPE[0])


def test_the_flash_context_shows_frames_before_and_after(rendered) -> None:
    manifest, out = rendered
    entry = _entry(manifest, "F0001")
    n = 2 * RenderSettings().context_frames + 1
    assert len(_grey_frames(out / entry["gifs"]["context"])) == n
    zoom = _grey_frames(out / entry["gifs"]["object"])  # centred on the flash
    assert len(zoom) == n
    h, w = zoom[0].shape
    core = [f[h // 2 - 4 : h // 2 + 5, w // 2 - 4 : w // 2 + 5].mean() - np.median(f) for f in zoom]
    assert int(np.argmax(core)) == RenderSettings().context_frames, core
    others = [c for i, c in enumerate(core) if i != RenderSettings().context_frames]
    assert max(core) > 100 and max(others) < 40, core


def test_a_session_without_candidates_still_gets_a_manifest_and_overview(session, tmp_path):
    r = session["results"]
    empty_c, empty_d = tmp_path / "c.ecsv", tmp_path / "d.ecsv"
    Table.read(r / "candidates.ecsv")[:0].write(empty_c, format="ascii.ecsv")
    Table.read(r / "detections.ecsv")[:0].write(empty_d, format="ascii.ecsv")
    out = tmp_path / "render"
    manifest = render_session(
        SESSION,
        session["folder"],
        r / "check" / "frames.ecsv",
        empty_c,
        empty_d,
        r / "sky",
        out,
        RenderSettings(),
    )
    assert manifest["candidates"] == [] and manifest["frames_read"] == 0
    assert json.loads((out / "render.json").read_text())["candidates"] == []
    with Image.open(out / "overview.png") as image:
        image.verify()
    assert sorted(p.name for p in out.iterdir()) == ["masks.png", "overview.png", "render.json"]


def test_a_rerun_removes_gifs_of_candidates_that_are_gone(session, tmp_path) -> None:
    out = tmp_path / "render"
    out.mkdir()
    (out / "X0009_object.gif").write_bytes(b"GIF89a old")
    _render(session, out)
    assert not (out / "X0009_object.gif").exists()


def test_long_crops_are_binned_to_the_largest_gif_and_small_ones_enlarged(session, tmp_path):
    manifest = _render(session, tmp_path / "small", max_gif_px=100, min_gif_px=96)
    for entry in manifest["candidates"]:
        for name, (width, height) in entry["gif_px"].items():
            assert max(width, height) <= 100, (name, width, height)
            # Enlarged by a whole factor up to 96 px when that still fits in 100.
            assert max(width, height) >= 96 or 2 * max(width, height) > 100
    track = _entry(manifest, "T0001")
    stars = track["gifs"]["stars"]
    assert track["binning"][stars] >= 2  # a 110 px path binned, not cut
    with Image.open(tmp_path / "small" / stars) as gif:
        assert max(gif.size) <= 100


def test_a_table_without_a_needed_column_is_named(session, tmp_path) -> None:
    r = session["results"]
    broken = tmp_path / "candidates.ecsv"
    table = Table.read(r / "candidates.ecsv")
    table.remove_column("kind")
    table.write(broken, format="ascii.ecsv")
    with pytest.raises(ValueError, match=r"candidates\.ecsv: no 'kind' column"):
        render_session(
            SESSION,
            session["folder"],
            r / "check" / "frames.ecsv",
            broken,
            r / "detections.ecsv",
            r / "sky",
            tmp_path / "render",
            RenderSettings(),
        )
    assert not (tmp_path / "render" / "render.json").exists()


def test_frames_without_times_follow_the_path_by_their_order(session, tmp_path) -> None:
    """Untimed frames: the path is fitted against the frames' order, and the mover still
    stands at the centre (its cadence is regular but for the gap, so allow a little)."""
    r = session["results"]
    frames = Table.read(r / "check" / "frames.ecsv")
    frames["mjd_mid"] = np.nan
    frames.write(tmp_path / "frames.ecsv", format="ascii.ecsv")
    detections = Table.read(r / "detections.ecsv")
    detections["mjd"] = np.nan
    detections.write(tmp_path / "detections.ecsv", format="ascii.ecsv")
    manifest = render_session(
        "2026-03-14/Ωmega ✓",  # a title the bitmap font could not draw
        session["folder"],
        tmp_path / "frames.ecsv",
        r / "candidates.ecsv",
        tmp_path / "detections.ecsv",
        r / "sky",
        tmp_path / "render",
        RenderSettings(),
    )
    entry = _entry(manifest, "T0001")
    frames_shown = _grey_frames(tmp_path / "render" / entry["gifs"]["object"])
    cy, cx = (np.array(frames_shown[0].shape) - 1) / 2.0
    for image in frames_shown:
        x, y = _centroid(image, cx, cy, radius=9)
        assert math.hypot(x - cx, y - cy) / 3 < 3.0


def test_settings_refuse_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValueError, match="unknown key 'frame_duration'"):
        RenderSettings.from_mapping({"frame_duration": 100})
    with pytest.raises(ValueError, match="grey_levels"):
        RenderSettings.from_mapping({"grey_levels": 300})
    settings = RenderSettings.from_mapping({"frame_duration_ms": 120, "level_sigma": 2})
    assert settings.frame_duration_ms == 120 and settings.level_sigma == 2.0
    assert RenderSettings.from_mapping(settings.to_dict()) == settings


def test_the_frame_duration_is_the_gifs(session, tmp_path) -> None:
    manifest = _render(session, tmp_path / "slow", frame_duration_ms=450)
    name = _entry(manifest, "T0001")["gifs"]["object"]
    with Image.open(tmp_path / "slow" / name) as gif:
        assert gif.info["duration"] == 450


@pytest.mark.workflow
@pytest.mark.slow
def test_the_render_rule_writes_the_folder(session, tmp_path) -> None:
    """The real snakemake, asked for the render folder of a session: it runs every stage
    before it and writes the manifest, the log and the benchmark."""
    work = make_workdir(tmp_path / "work")
    nights = session["folder"].parents[1]
    results = tmp_path / "results"
    snakemake = str(Path(sys.executable).parent / "snakemake")
    target = f"{results}/{SESSION}/render"
    command = [snakemake, target, "--cores", "2", "--config", f"input_root={nights}"]
    command += [f"results_root={results}"]
    done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    manifest = json.loads((results / SESSION / "render" / "render.json").read_text())
    candidates = Table.read(results / SESSION / "candidates.ecsv")
    assert [c["id"] for c in manifest["candidates"]] == list(candidates["id"])
    assert (results / SESSION / "benchmarks" / "render.tsv").exists()
    assert "render done" in (results / SESSION / "logs" / "render.log").read_text()
