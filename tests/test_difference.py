"""Difference images: a frame minus the stationary reference, fitted to it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spacepixels.difference import Reference
from spacepixels.extract import ExtractSettings, _extract_frame

SHAPE = (256, 320)
SKY = 1000.0
NOISE = 10.0
FWHM = 3.0


def _stars(rng: np.random.Generator, n: int = 60) -> list[tuple[float, float, float]]:
    h, w = SHAPE
    return [
        (rng.uniform(10, w - 10), rng.uniform(10, h - 10), 10 ** rng.uniform(3.0, 5.0))
        for _ in range(n)
    ]


def _render(
    sources: list[tuple[float, float, float]], fwhm: float, shift: tuple[float, float] = (0, 0)
) -> np.ndarray:
    """Gaussian sources (x, y, total flux) of the given FWHM, shifted by ``shift``."""
    yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]].astype(np.float64)
    sigma = fwhm / 2.3548
    image = np.zeros(SHAPE)
    for x, y, flux in sources:
        image += (
            flux
            / (2 * math.pi * sigma**2)
            * np.exp(-((xx - x - shift[0]) ** 2 + (yy - y - shift[1]) ** 2) / (2 * sigma**2))
        )
    return image


def _frame(rng: np.random.Generator, signal: np.ndarray) -> np.ndarray:
    return (SKY + signal + rng.normal(0, NOISE, SHAPE)).astype(np.float32)


def _settings() -> ExtractSettings:
    return ExtractSettings(
        detect_sigma=4.0, min_area=5, kernel_fwhm_px=FWHM, background_mesh_px=64,
        deblend_nthresh=16, deblend_cont=0.005, aperture_radius_px=2.4, clean=False,
    )  # fmt: skip


@pytest.fixture
def scene() -> dict:
    rng = np.random.default_rng(5)
    stars = _stars(rng)
    # The reference: the median of 30 frames, jittered, its sky taken off.
    frames = [_frame(rng, _render(stars, FWHM, tuple(rng.normal(0, 0.2, 2)))) for _ in range(30)]
    stack = np.median(np.stack(frames), axis=0) - SKY
    reference = Reference(
        stack.astype(np.float32),
        1.25 * NOISE / math.sqrt(30),
        jitter_px=0.15,
        mismatch=0.05,
        fwhm_px=FWHM,
    )
    return {"rng": rng, "stars": stars, "reference": reference}


def test_the_fit_finds_the_frames_transparency_and_shift(scene: dict) -> None:
    signal = 0.8 * _render(scene["stars"], FWHM, shift=(0.35, -0.25))
    image = _frame(scene["rng"], signal) - np.float32(SKY)
    fit = scene["reference"].fit(image, None)
    assert fit.scale == pytest.approx(0.8, abs=0.02)
    assert fit.shift_px[0] == pytest.approx(0.35, abs=0.05)
    assert fit.shift_px[1] == pytest.approx(-0.25, abs=0.05)


def _bare_spot(stars: list[tuple[float, float, float]]) -> tuple[float, float]:
    """The first place on a grid at least 20 px from every star."""
    h, w = SHAPE
    for y in range(30, h - 30, 10):
        for x in range(30, w - 30, 10):
            if min(math.hypot(x - sx, y - sy) for sx, sy, _ in stars) > 20:
                return x + 0.3, y + 0.6
    raise AssertionError("no bare sky in the scene")


def test_stars_leave_nothing_and_movers_are_measured_whole(scene: dict) -> None:
    """A worse-seeing, shifted, dimmer frame: no star is detected in the difference; a
    mover on bare sky is measured as in the frame itself, and one 5 px from a bright star,
    which the frame blends with it, is found where it is."""
    stars = scene["stars"]
    bare = (*_bare_spot(stars), 2500.0)  # peak S/N about 9
    blended = (150.3, 120.6, 2500.0)  # 5 px from a star of 21600 ADU
    signal = 0.9 * _render(stars, FWHM * 1.08, shift=(0.2, 0.3))
    signal += _render([bare, blended], FWHM * 1.08)
    data = _frame(scene["rng"], signal)
    settings = _settings()
    plain, _, _, _, _ = _extract_frame(data.copy(), settings, math.nan, in_place=True)
    columns, info, diff, _, rms = _extract_frame(
        data.copy(), settings, math.nan, in_place=True, reference=scene["reference"]
    )
    assert len(plain["x"]) >= 50  # the frame itself: every star
    assert info["reference"]["scale"] == pytest.approx(0.9, abs=0.03)

    def at(table: dict, source: tuple[float, float, float]) -> np.ndarray:
        return np.hypot(table["x"] - source[0], table["y"] - source[1]) < 1.0

    assert at(columns, bare).sum() == 1 and at(plain, bare).sum() == 1
    assert columns["flux"][at(columns, bare)][0] == pytest.approx(
        plain["flux"][at(plain, bare)][0], rel=0.1
    )
    assert at(columns, blended).sum() == 1 and at(plain, blended).sum() == 0
    assert len(columns["x"]) <= 4  # the movers, and at most a noise peak or two
    # Around the stars, the difference is within its noise map.
    bright = scene["reference"].image > 20 * NOISE
    assert float(np.std(diff[bright] / rms[bright])) < 1.5


def test_nothing_is_searched_around_a_saturated_star(scene: dict) -> None:
    stars = scene["stars"]
    giant = (60.0, 128.0, 3e6)
    saturation = 30000.0
    rng = np.random.default_rng(9)
    reference_frames = [
        np.minimum(_frame(rng, _render([*stars, giant], FWHM)), saturation) for _ in range(9)
    ]
    stack = np.median(np.stack(reference_frames), axis=0) - SKY
    reference = Reference(
        stack.astype(np.float32),
        1.25 * NOISE / 3,
        jitter_px=0.15,
        mismatch=0.05,
        fwhm_px=FWHM,
        saturation_adu=saturation,
        sky_adu=SKY,
    )
    # A frame of worse seeing: the saturated core spreads, the halo grows.
    data = np.minimum(_frame(rng, _render([*stars, giant], FWHM * 1.3)), saturation)
    columns, _, diff, _, _ = _extract_frame(
        data, _settings(), saturation, in_place=True, reference=reference
    )
    assert reference.blind[128, 60] and reference.blind[128, 60 + 6]
    assert np.all(diff[reference.blind] == 0)
    near = np.hypot(columns["x"] - giant[0], columns["y"] - giant[1]) < 25
    assert not near.any()


def test_gradients_and_saturated_patches_agree_with_numpy_and_scipy() -> None:
    """The reference's derivatives and the boxes of saturated patches are worked out
    without numpy.gradient or a label image; they must give the same values and boxes."""
    from scipy import ndimage

    from spacepixels import difference

    rng = np.random.default_rng(5)
    image = rng.normal(size=(31, 47)).astype(np.float32)
    for axis in (0, 1):
        assert np.array_equal(difference._gradient(image, axis), np.gradient(image, axis=axis))
    for fraction in (0.002, 0.05, 0.3):  # the graph of neighbours, and the label image
        mask = rng.random((64, 96)) < fraction
        labels, _ = ndimage.label(mask)

        def corners(boxes):
            return {(rows.start, rows.stop, cols.start, cols.stop) for rows, cols in boxes}

        assert corners(difference._patch_boxes(mask)) == corners(ndimage.find_objects(labels))


def test_the_basis_worked_out_in_strips_equals_the_whole_images_derivatives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reference keeps only the reference and works its derivatives out a strip of rows at
    a time: the fit's design, the noise terms and the subtracted frame must be exactly
    those of the whole image's derivatives (strips of 8 rows here, so many strip edges)."""
    from spacepixels import difference

    monkeypatch.setattr(difference, "_STRIP_PIXELS", 8 * 53)
    rng = np.random.default_rng(11)
    image = (rng.normal(size=(61, 53)) * 30).astype(np.float32)
    image[20:24, 10:14] += 5000.0  # bright pixels for the fit, and a saturated patch
    reference = Reference(image, 1.0, jitter_px=0.2, mismatch=0.05, fwhm_px=2.0)

    gx, gy = np.gradient(image, axis=1), np.gradient(image, axis=0)
    gxy = np.gradient(gy, axis=1)
    gxy += np.gradient(gx, axis=0)
    gxy *= np.float32(0.5)
    whole = [image, gx, gy, np.gradient(gx, axis=1), np.gradient(gy, axis=0), gxy]
    index = reference.fit_index
    assert index.size > 100
    expected = np.stack([b.ravel()[index].astype(np.float64) for b in whole], axis=1)
    assert np.array_equal(reference.design, expected)
    extra = gx * gx
    extra += gy * gy
    extra *= np.float32(0.2**2)
    extra += np.float32(0.05**2) * (image * image)
    extra += np.float32(1.0)
    assert np.array_equal(reference.extra_var, extra)

    frame = (rng.normal(size=image.shape) * 30).astype(np.float32)
    fit = difference.Fit((0.9, 0.1, -0.2, 0.03, 0.0, -0.01), 100)
    by_strips = frame.copy()
    reference.subtract(by_strips, fit)
    by_images = frame.copy()
    for c, base in zip(fit.coef, whole, strict=True):
        if c:
            by_images -= base * np.float32(c)
    by_images[reference.blind] = 0.0
    assert np.array_equal(by_strips, by_images)
