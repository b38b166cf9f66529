"""What every stage's settings class shares: reading a configuration section.

Each stage keeps its settings in a frozen dataclass whose fields are the keys of its
section in ``config/config.yaml`` (``CheckSettings`` for ``check:``, ...). A section may
leave keys out or set them to null; both mean the field's default (for the tuned keys of
``extract:`` and ``link:``, "use the tuned value"). A key the stage does not know is
refused by name, so that a typo in a session override never passes silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

__all__ = ["SKY_STACK_SETTINGS", "STAGES", "section_values"]

STAGES: tuple[str, ...] = (
    "check",
    "convert",
    "tune",
    "sky",
    "extract",
    "link",
    "solve",
    "measure",
    "render",
    "report",
)
"""The stages, in workflow order: the sections a session file may override."""

SKY_STACK_SETTINGS: tuple[str, ...] = ("memory_mb", "early_late_fraction")
"""The keys of the ``sky`` section that its stacks depend on (the rest, the maps made of
them: a change of those reruns the maps without reading the frames again)."""


def section_values(cls: type, values: Mapping[str, Any] | None, section: str) -> dict[str, Any]:
    """The keys a configuration section sets, checked against a settings dataclass.

    Parameters
    ----------
    cls : dataclass type
        The stage's settings class.
    values : mapping or None
        The section as read from YAML (None for an empty section).
    section : str
        The section's name, for the message (``"extract"``).

    Returns
    -------
    dict
        The keys with a value other than null.

    Raises
    ------
    ValueError
        Naming the first unknown key and the known ones, e.g.
        ``extract: unknown key 'detect_sigmaa' (known: ...)``.
    """
    values = dict(values or {})
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(
            f"{section}: unknown key {unknown[0]!r}"
            + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
            + f" (known: {', '.join(sorted(known))})"
        )
    return {key: value for key, value in values.items() if value is not None}
