"""Where the real data of ``../shared/data`` lives, for the tests that read it.

The data sets are read in place, never copied into the project: beside the checkout
(``<checkout>/../shared``), or where ``SPACEPIXELS_SHARED`` points. Tests skip with a clear
message when a file is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

_CANDIDATES = [
    Path(os.environ["SPACEPIXELS_SHARED"]) if os.environ.get("SPACEPIXELS_SHARED") else None,
    Path(__file__).resolve().parents[2] / "shared",
    Path("/work/shared"),
]

SHARED = next((p for p in _CANDIDATES if p is not None and (p / "data").is_dir()), _CANDIDATES[1])
"""The shared folder found (the one beside the checkout when none is)."""

REAL_FRAME = SHARED / "data" / "real" / "astride_streak" / "long.fits"
"""One real 512x512 frame with a streak, legacy DATE-OBS and a cutout WCS (MIT licence)."""
