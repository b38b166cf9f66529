"""Difference images: each frame minus the session's median stack, fitted to it.

Whatever sits still (stars, galaxies, hot pixels, bad columns) is in the sky model's
median stack (``sky/reference.fits``: the stack of the good frames less its sky; see
:mod:`spacepixels.skymodel`). Subtracting it from a frame leaves what moved, flashed or hit
the sensor once, on flat noise, so that extraction finds a few hundred sources in a frame
instead of every star, and finds a mover where it crosses a star's wing.

A frame never matches the reference exactly. Per frame, a linear least-squares fit over
the reference's bright pixels takes out, to first order,

- a transparency change (a scale ``a`` on the reference),
- a residual shift of the frame against the reference (``bx``, ``by`` on the reference's
  gradients: ``S(x - d) ~ S - d . grad S``),
- a change of seeing (``c`` on the reference's Laplacian: a Gaussian's width changes it by
  its Laplacian times the change of its variance over two).

What remains at the stars (each star's own wander, the PSF's change of shape) is not
noise, but it is bounded: the detection's noise map adds, in quadrature to the frame's sky
RMS and the reference's own noise, a jitter term ``j |grad S|`` (``j``: the stars' measured
frame-to-frame wander) and a mismatch term ``m S`` (a fraction of the reference). A star's
residual then stays under the threshold, while a mover on empty sky is measured against the
sky noise alone. Around saturated stars (their halo and bleed change from frame to frame
beyond any fit) the difference is set to zero: nothing is searched there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Fit", "Reference", "saturation_zone"]

_FIT_SIGMA = 10.0
"""Reference pixels this many of its noise sigmas above zero take part in the fit."""

_FIT_MAX_PIXELS = 200_000
"""At most this many pixels (evenly spread) take part in the fit."""

_FIT_MIN_PIXELS = 50
"""Fewer bright pixels than this: no fit, the reference is subtracted as it is."""

_MAX_SHIFT_PX = 2.0
"""A fitted shift larger than this is outside the first-order model: the fit is refused."""


def saturation_zone(saturated: NDArray[np.bool_], fwhm_px: float) -> NDArray[np.bool_]:
    """Around saturated pixels: each patch's bounding box grown by 2 FWHM across and by
    3 FWHM + 10 px along the columns, where saturation bleeds. How far a saturated star's
    halo and bleed reach changes from frame to frame (with the seeing), which neither a fit
    of the reference nor a comparison of stacks follows."""
    from scipy import ndimage

    height, width = saturated.shape
    zone = np.zeros(saturated.shape, dtype=bool)
    if not saturated.any():
        return zone
    across = math.ceil(2.0 * fwhm_px)
    along = int(3.0 * fwhm_px + 10.0)
    labels, _ = ndimage.label(saturated)
    for rows, cols in ndimage.find_objects(labels):
        zone[
            max(0, rows.start - along) : min(height, rows.stop + along),
            max(0, cols.start - across) : min(width, cols.stop + across),
        ] = True
    return zone


@dataclass(frozen=True)
class Fit:
    """A frame's fit to the reference: the coefficients of :meth:`Reference.basis`
    (the reference, its x and y gradients, its second derivatives xx, yy and xy)."""

    coef: tuple[float, ...]
    pixels: int

    @property
    def scale(self) -> float:
        """The frame's flux over the reference's (the derivatives hold no flux)."""
        return self.coef[0]

    @property
    def shift_px(self) -> tuple[float, float]:
        """The frame's shift against the reference (px): ``S(x - d) ~ S - d . grad S``."""
        if not self.scale > 0:
            return math.nan, math.nan
        return -self.coef[1] / self.scale, -self.coef[2] / self.scale

    def as_dict(self) -> dict[str, Any]:
        dx, dy = self.shift_px
        return {
            "scale": round(self.scale, 5),
            "shift_x_px": round(dx, 4),
            "shift_y_px": round(dy, 4),
            "coefficients": [round(c, 5) for c in self.coef],
            "fit_pixels": self.pixels,
        }


_IDENTITY_FIT = Fit((1.0, 0.0, 0.0, 0.0, 0.0, 0.0), 0)


class Reference:
    """The median stack, ready to be fitted to and subtracted from frames.

    Parameters
    ----------
    image : ndarray of float32, shape (height, width)
        The median stack with its sky subtracted (``sky/reference.fits``).
    noise : float
        Its per-pixel noise (ADU).
    jitter_px : float
        The stars' frame-to-frame wander left after the fit (px).
    mismatch : float
        The fraction of the reference a frame's PSF may differ from it by, after the fit.
    fwhm_px : float
        The seeing: the blind zone around saturated stars reaches a few FWHM.
    saturation_adu : float
        Pixels of the reference at or above 0.9 of this level (sky included: ``sky_adu``)
        are saturated (NaN: those at half its brightest value or more).
    sky_adu : float
        The sky level subtracted from the reference (to compare it with saturation).
    """

    def __init__(
        self,
        image: NDArray[np.float32],
        noise: float,
        *,
        jitter_px: float,
        mismatch: float,
        fwhm_px: float,
        saturation_adu: float = math.nan,
        sky_adu: float = 0.0,
    ) -> None:

        s = np.ascontiguousarray(image, dtype=np.float32)
        s = np.where(np.isfinite(s), s, np.float32(0.0)).astype(np.float32, copy=False)
        self.image = s
        self.noise = float(noise) if math.isfinite(noise) and noise > 0 else 0.0
        self.jitter_px = float(jitter_px)
        self.mismatch = float(mismatch)
        gy, gx = np.gradient(s)
        self.gx = gx.astype(np.float32, copy=False)
        self.gy = gy.astype(np.float32, copy=False)
        # Second derivatives: a frame's PSF a little wider, narrower or more elongated
        # than the reference's changes it by half its second moments' change times these.
        gyy, gyx = np.gradient(self.gy)
        gxx = np.gradient(self.gx, axis=1)
        self.second = [
            gxx.astype(np.float32, copy=False),
            gyy.astype(np.float32, copy=False),
            (0.5 * (gyx + np.gradient(self.gx, axis=0))).astype(np.float32, copy=False),
        ]
        del gxx, gyy, gyx
        # The noise terms that scale with the reference, per unit of the frame's scale:
        # its own noise, the jitter along its gradient and the PSF's mismatch.
        extra = self.gx * self.gx
        extra += self.gy * self.gy
        extra *= np.float32(self.jitter_px**2)
        extra += np.float32(self.mismatch**2) * (s * s)
        extra += np.float32(self.noise**2)
        self.extra_var = extra
        if math.isfinite(saturation_adu) and saturation_adu > 0:
            saturated = s + np.float32(sky_adu) >= np.float32(0.9 * saturation_adu)
        else:  # the saturation plateau, when stars saturate
            saturated = s >= np.float32(0.5 * float(s.max())) if s.max() > 0 else s > np.inf
        self.fwhm_px = float(fwhm_px)
        self.blind = self.zone(saturated)
        bright = s > np.float32(_FIT_SIGMA * max(self.noise, 1e-12))
        bright &= ~self.blind
        index = np.flatnonzero(bright)
        if index.size > _FIT_MAX_PIXELS:
            index = index[:: int(math.ceil(index.size / _FIT_MAX_PIXELS))]
        self.fit_index = index
        self.design = np.stack(
            [a.ravel()[index].astype(np.float64) for a in self._basis()],
            axis=1,
        )

    def zone(self, saturated: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """:func:`saturation_zone` at the reference's seeing."""
        return saturation_zone(saturated, self.fwhm_px)

    def _basis(self) -> list[NDArray[np.float32]]:
        return [self.image, self.gx, self.gy, *self.second]

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape  # type: ignore[return-value]

    def fit(self, image: NDArray[np.float32], masked: NDArray[np.bool_] | None) -> Fit:
        """Fit the reference to a background-subtracted frame (masked pixels left out)."""
        keep = np.ones(self.fit_index.size, dtype=bool)
        if masked is not None:
            keep &= ~masked.ravel()[self.fit_index]
        if keep.sum() < _FIT_MIN_PIXELS:
            return _IDENTITY_FIT
        design = self.design[keep]
        values = image.ravel()[self.fit_index[keep]].astype(np.float64)
        # Two rounds: the second leaves out the worst pixels of the first (a mover or a
        # cosmic ray on a star, a star the frame saturates that the reference does not).
        for _ in range(2):
            coef, *_ = np.linalg.lstsq(design, values, rcond=None)
            resid = values - design @ coef
            spread = 1.4826 * float(np.median(np.abs(resid)))
            good = np.abs(resid) <= 5.0 * spread if spread > 0 else np.ones(resid.size, bool)
            if good.all() or good.sum() < _FIT_MIN_PIXELS:
                break
            design, values = design[good], values[good]
        fit = Fit(tuple(float(v) for v in coef), int(values.size))
        if not (fit.scale > 0.05 and math.hypot(*fit.shift_px) <= _MAX_SHIFT_PX):
            return _IDENTITY_FIT
        return fit

    def subtract(
        self, image: NDArray[np.float32], fit: Fit, saturated: NDArray[np.bool_] | None = None
    ) -> NDArray[np.bool_]:
        """Subtract the fitted reference from a background-subtracted frame, in place.

        The blind zone around the reference's saturated stars, and around the frame's own
        (``saturated``) where the reference has none, is set to zero. Returns that zone.
        """
        term = np.empty_like(self.image)
        for c, base in zip(fit.coef, self._basis(), strict=True):
            if c:
                np.multiply(base, np.float32(c), out=term)
                image -= term
        blind = self.blind
        if saturated is not None:
            outside = saturated & ~blind
            if outside.any():
                blind = blind | self.zone(outside)
        image[blind] = 0.0
        return blind

    def error(self, rms: NDArray[np.float32], fit: Fit) -> NDArray[np.float32]:
        """The difference image's noise map: the frame's sky RMS and the reference's
        terms (noise, jitter, mismatch) scaled by the fit, in quadrature (in place)."""
        rms *= rms
        rms += np.float32(fit.scale**2) * self.extra_var
        np.sqrt(rms, out=rms)
        return rms
