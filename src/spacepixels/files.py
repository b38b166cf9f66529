"""Writing outputs whole or not at all, and strict JSON.

Every stage writes its files through :func:`write_atomically`: the content goes to a hidden
temporary name in the same folder and is renamed into place, so a reader (or a rerun after
a crash) sees the old file or the new one, never half of one. :func:`jsonable` turns numpy
values, paths and non-finite floats into what strict JSON can hold (NaN and infinities
become null).
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["jsonable", "write_atomically"]


def write_atomically(path: str | os.PathLike[str], write: Callable[[Path], Any]) -> None:
    """Write ``path`` through ``write(temporary_path)`` and one rename.

    Parameters
    ----------
    path : path-like
        The file to write; its folder is made if missing.
    write : callable
        Writes the content to the temporary path it is given.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars and arrays unwrapped, None for NaN and infinities."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value
