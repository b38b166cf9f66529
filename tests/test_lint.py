"""The code is clean: ruff, snakefmt and snakemake's own linter find nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: install the test extras (pip install -e '.[test]')")
    return found


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, **kwargs)


def test_ruff_finds_nothing() -> None:
    result = _run([_tool("ruff"), "check", "."])
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_applied() -> None:
    result = _run([_tool("ruff"), "format", "--check", "."])
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakefmt_is_applied() -> None:
    result = _run([_tool("snakefmt"), "--check", "Snakefile", "workflow/rules"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakemake_lint_finds_nothing(tmp_path: Path) -> None:
    session = tmp_path / "nights" / "2026-03-14" / "M31"
    session.mkdir(parents=True)
    for i in range(5):
        (session / f"M31_{i:04d}.fits").write_bytes(b"")  # planning reads names only
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    config = [f"input_root={tmp_path / 'nights'}", f"results_root={tmp_path / 'results'}"]
    result = _run([_tool("snakemake"), "--lint", "--config", *config], env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr, result.stdout + result.stderr
