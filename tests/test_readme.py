"""The README's first commands are the ones CI runs."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _command_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if ".venv/bin/" in line]


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    ci_command = _command_lines(ci)
    assert len(ci_command) == 1
    first_block = readme.split("```")[1]
    assert ci_command[0] in _command_lines(first_block), "README's test command differs from CI's"


def test_readme_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```")[1]
    commands = _command_lines(first_block)
    assert len(commands) == 2
    assert "snakemake --cores 8" in commands[0]
    assert "pytest" in commands[1]
