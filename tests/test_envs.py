"""The conda environments pin the versions pyproject.toml declares."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]

RUN_BY_SNAKEMAKE_ITSELF = {"snakemake"}
"""Dependencies of the planner, not of the jobs' environments."""


def _pinned() -> dict[str, dict[str, str]]:
    pins: dict[str, dict[str, str]] = {}
    for path in sorted((ROOT / "envs").glob("*.yaml")):
        env = yaml.safe_load(path.read_text())
        found: dict[str, str] = {}
        for dep in env["dependencies"]:
            specs = dep["pip"] if isinstance(dep, dict) else [dep]
            for spec in specs:
                match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*=?=\s*([0-9][^\s]*)", spec)
                if match:
                    found[match[1].lower()] = match[2]
        pins[path.name] = found
    return pins


def _declared() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = (Requirement(text) for text in project["dependencies"])
    return {req.name.lower(): req for req in reqs}


def test_every_pin_satisfies_pyproject() -> None:
    declared = _declared()
    for env, pins in _pinned().items():
        for name, version in pins.items():
            if name == "python":
                assert Version(version) in _python_spec(), env
                continue
            assert name in declared, f"{env}: {name} is not declared in pyproject.toml"
            assert declared[name].specifier.contains(version), (
                f"{env}: {name}={version} does not satisfy pyproject's {declared[name]}"
            )


def test_every_runtime_dependency_is_pinned_somewhere() -> None:
    pinned = set().union(*(set(p) for p in _pinned().values()))
    missing = set(_declared()) - pinned - RUN_BY_SNAKEMAKE_ITSELF
    assert not missing, f"declared in pyproject.toml but pinned in no envs/*.yaml: {missing}"


def test_every_rule_uses_a_pinned_env() -> None:
    envs = {p.name for p in (ROOT / "envs").glob("*.yaml")}
    for rule_file in (ROOT / "workflow" / "rules").glob("*.smk"):
        text = rule_file.read_text()
        rules = re.findall(r"^rule (\w+):", text, flags=re.M)
        conda = re.findall(r'conda:\s*\n\s*"\.\./\.\./envs/([\w.-]+)"', text)
        if rules and rule_file.name != "common.smk":
            assert len(conda) == len(rules), f"{rule_file.name}: a rule without conda:"
            assert set(conda) <= envs, f"{rule_file.name}: unknown env {set(conda) - envs}"


def _python_spec():
    from packaging.specifiers import SpecifierSet

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return SpecifierSet(project["requires-python"])
