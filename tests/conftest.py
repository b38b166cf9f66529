"""Shared fixtures: the no-network guard, and the robustness summary printed at the end.

``no_network`` blocks every outgoing connection (all but ``AF_UNIX`` sockets) in the test
process for one test; :data:`NETGUARD_DIR` is the folder to put first on ``PYTHONPATH`` to
block them in a ``snakemake`` subprocess and every job it starts (see
``tests/netguard/netguard.py``). ``robustness_summary`` collects lines that the terminal
summary prints after the run, such as the bad-input corpus's count of cases and outcomes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

NETGUARD_DIR = Path(__file__).resolve().parent / "netguard"
"""Holds ``sitecustomize.py``, which installs the guard in any Python that finds it."""

sys.path.insert(0, str(NETGUARD_DIR))
import netguard  # noqa: E402

_SUMMARY = pytest.StashKey[list[str]]()


def guarded_env(log: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a subprocess in which no Python process can connect anywhere.

    Parameters
    ----------
    log : Path, optional
        File to which every attempted connection is appended (one line each).
    extra : str
        More variables to set.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(NETGUARD_DIR)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    if log is not None:
        env["SPACEPIXELS_NETGUARD_LOG"] = str(log)
    env.update(extra)
    return env


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Block outgoing connections in this process; yields the file attempts are logged to."""
    log = tmp_path / "netguard.log"
    monkeypatch.setenv("SPACEPIXELS_NETGUARD_LOG", str(log))
    netguard.install(monkeypatch.setattr)
    yield log


@pytest.fixture
def robustness_summary(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Add a line to the summary printed at the end of the run."""
    lines = request.config.stash.setdefault(_SUMMARY, [])
    return lines.append


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    lines = config.stash.get(_SUMMARY, [])
    if lines:
        terminalreporter.section("robustness")
        for line in lines:
            terminalreporter.write_line(line)
