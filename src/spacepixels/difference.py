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
from collections.abc import Iterator
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


_STRIP_PIXELS = 1 << 18
"""Pixels per strip of the reference's basis (1 MB of float32 per image: cache-sized)."""

_LABEL_BY_IMAGE = 0.01
"""Above this fraction of saturated pixels, :func:`saturation_zone` labels the whole image."""


def saturation_zone(saturated: NDArray[np.bool_], fwhm_px: float) -> NDArray[np.bool_]:
    """Around saturated pixels: each patch's bounding box grown by 2 FWHM across and by
    3 FWHM + 10 px along the columns, where saturation bleeds. How far a saturated star's
    halo and bleed reach changes from frame to frame (with the seeing), which neither a fit
    of the reference nor a comparison of stacks follows."""
    height, width = saturated.shape
    zone = np.zeros(saturated.shape, dtype=bool)
    across = math.ceil(2.0 * fwhm_px)
    along = int(3.0 * fwhm_px + 10.0)
    for rows, cols in _patch_boxes(saturated):
        zone[
            max(0, rows.start - along) : min(height, rows.stop + along),
            max(0, cols.start - across) : min(width, cols.stop + across),
        ] = True
    return zone


def _gradient(image: NDArray[np.float32], axis: int) -> NDArray[np.float32]:
    """``numpy.gradient(image, axis=axis)`` of a float32 image (central differences, one-
    sided at the edges), the same values with less memory traffic."""
    out = np.empty_like(image)
    a = np.moveaxis(image, axis, 0)
    o = np.moveaxis(out, axis, 0)
    if a.shape[0] < 2:
        out[...] = 0.0
        return out
    np.subtract(a[2:], a[:-2], out=o[1:-1])
    o[1:-1] *= np.float32(0.5)
    np.subtract(a[1], a[0], out=o[0])
    np.subtract(a[-1], a[-2], out=o[-1])
    return out


def _patch_boxes(mask: NDArray[np.bool_]) -> list[tuple[slice, slice]]:
    """The bounding boxes (row and column slices) of the 4-connected patches of ``mask``,
    as ``scipy.ndimage.find_objects`` of its labels gives them. A frame has few saturated
    pixels: they are joined as a graph of neighbours rather than by labelling every pixel."""
    flat = np.flatnonzero(mask)
    if flat.size == 0:
        return []
    if flat.size > _LABEL_BY_IMAGE * mask.size:
        from scipy import ndimage  # 0.2 s to import: only for frames this saturated

        labels, _ = ndimage.label(mask)
        return [box for box in ndimage.find_objects(labels) if box is not None]
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    width = mask.shape[1]
    rows, cols = np.divmod(flat, width)
    edges = []
    for step, ok in ((1, cols < width - 1), (width, np.ones(flat.size, dtype=bool))):
        where = np.searchsorted(flat, flat + step)
        where = np.minimum(where, flat.size - 1)
        joined = ok & (flat[where] == flat + step)
        edges.append((np.nonzero(joined)[0], where[joined]))
    first = np.concatenate([e[0] for e in edges])
    second = np.concatenate([e[1] for e in edges])
    graph = coo_matrix(
        (np.ones(first.size, dtype=np.int8), (first, second)), shape=(flat.size, flat.size)
    )
    count, patch = connected_components(graph, directed=False)
    lo_r = np.full(count, rows.max(), dtype=np.int64)
    lo_c = np.full(count, cols.max(), dtype=np.int64)
    hi_r = np.zeros(count, dtype=np.int64)
    hi_c = np.zeros(count, dtype=np.int64)
    np.minimum.at(lo_r, patch, rows)
    np.minimum.at(lo_c, patch, cols)
    np.maximum.at(hi_r, patch, rows)
    np.maximum.at(hi_c, patch, cols)
    return [
        (slice(int(a), int(b) + 1), slice(int(c), int(e) + 1))
        for a, b, c, e in zip(lo_r, hi_r, lo_c, hi_c, strict=True)
    ]


@dataclass(frozen=True)
class Fit:
    """A frame's fit to the reference: the coefficients of :meth:`Reference._basis_strips`
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
        # The noise terms that scale with the reference, per unit of the frame's scale:
        # its own noise, the jitter along its gradient and the PSF's mismatch. The basis
        # (the derivatives) is kept only at the fit's pixels; subtract works it out again,
        # a strip at a time.
        self.extra_var = np.empty_like(s)
        width = s.shape[1]
        design = []
        for start, stop, basis in self._basis_strips():
            rows, gx, gy = basis[:3]
            extra = self.extra_var[start:stop]
            np.multiply(gx, gx, out=extra)
            extra += gy * gy
            extra *= np.float32(self.jitter_px**2)
            extra += np.float32(self.mismatch**2) * (rows * rows)
            extra += np.float32(self.noise**2)
            lo, hi = np.searchsorted(index, [start * width, stop * width])
            at = index[lo:hi] - start * width
            design.append(np.stack([b.ravel()[at].astype(np.float64) for b in basis], axis=1))
        self.design = np.concatenate(design) if design else np.empty((0, 6))

    def zone(self, saturated: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """:func:`saturation_zone` at the reference's seeing."""
        return saturation_zone(saturated, self.fwhm_px)

    def _basis_strips(self) -> Iterator[tuple[int, int, list[NDArray[np.float32]]]]:
        """The fit's basis a strip of rows at a time: ``(start, stop, basis)`` with the
        reference, its x and y gradients and its second derivatives xx, yy and xy over rows
        ``start:stop``. Each strip is worked out with two rows of its neighbours on either
        side, which gives the values of the whole image's derivatives exactly, while the
        strips stay in the processor's cache: at 4096 x 4096, the five derivatives as whole
        images were 320 MB to write once and read again for every frame."""
        s = self.image
        height, width = s.shape
        rows = max(8, _STRIP_PIXELS // max(1, width))
        for start in range(0, height, rows):
            stop = min(height, start + rows)
            lo, hi = max(0, start - 2), min(height, stop + 2)
            part = s[lo:hi]
            gx = _gradient(part, 1)
            gy = _gradient(part, 0)
            # Second derivatives: a frame's PSF a little wider, narrower or more elongated
            # than the reference's changes it by half its second moments' change times these.
            gxy = _gradient(gy, 1)
            gxy += _gradient(gx, 0)
            gxy *= np.float32(0.5)
            basis = [part, gx, gy, _gradient(gx, 1), _gradient(gy, 0), gxy]
            yield start, stop, [b[start - lo : stop - lo] for b in basis]

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
        for start, stop, basis in self._basis_strips():
            rows = image[start:stop]
            for c, base in zip(fit.coef, basis, strict=True):
                if c:
                    rows -= base * np.float32(c)
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
