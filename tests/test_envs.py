"""The conda environments pin the versions pyproject.toml declares, and cover their stages.

Every rule names one of ``envs/*.yaml`` in its ``conda:``; each environment must hold every
third-party package its stages import: the rule's script and, through them, every module of
the ``spacepixels`` package they reach (read with ``ast``, so lazy imports count too).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]

RUN_BY_SNAKEMAKE_ITSELF = {"snakemake", "jsonschema"}
"""Dependencies of the planner (snakemake, and the config schemas it validates at parse
time), not of the jobs' environments."""

RULE = re.compile(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", flags=re.M | re.S)
CONDA = re.compile(r'conda:\s*\n\s*"\.\./\.\./(envs/[\w.-]+)"')
SCRIPT = re.compile(r'script:\s*\n\s*"\.\./\.\./(scripts/[\w.-]+)"')


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


def _rules() -> dict[str, tuple[str | None, str | None]]:
    """Every rule: its conda environment and its script (paths from the project root)."""
    rules = {}
    for rule_file in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for match in RULE.finditer(rule_file.read_text()):
            conda, script = CONDA.search(match[2]), SCRIPT.search(match[2])
            rules[match[1]] = (conda and conda[1], script and script[1])
    return rules


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
            if node.module == "spacepixels":
                modules |= {f"spacepixels.{alias.name}" for alias in node.names}
    return modules


def _third_party_imports(script: Path) -> set[str]:
    """Top-level third-party modules a script needs, through the spacepixels modules it uses."""
    seen: set[Path] = set()
    found: set[str] = set()
    todo = [script]
    while todo:
        for module in _imported_modules(todo.pop()):
            if module.split(".")[0] == "spacepixels":
                source = ROOT / "src" / (module.replace(".", "/") + ".py")
                if source.exists() and source not in seen:
                    seen.add(source)
                    todo.append(source)
            elif module.split(".")[0] not in sys.stdlib_module_names:
                found.add(module.split(".")[0])
    return found


def _provided_by(pins: set[str]) -> set[str]:
    """Import names available in an environment of these distributions and their requirements."""
    distributions, todo = set(), list(pins)
    while todo:
        name = todo.pop().lower()
        if name in distributions or name in ("python", "pip"):
            continue
        distributions.add(name)
        for text in importlib.metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is None:
                todo.append(requirement.name)
    modules = importlib.metadata.packages_distributions()
    return {
        module
        for module, owners in modules.items()
        if any(owner.lower() in distributions for owner in owners)
    }


def test_every_rule_names_an_existing_env_and_a_script() -> None:
    rules = _rules()
    assert {"check", "extract", "link", "solve", "measure"} <= set(rules)
    for rule, (env, script) in rules.items():
        if rule == "all":
            continue
        assert env, f"rule {rule} has no conda: line"
        assert (ROOT / env).exists(), f"rule {rule}: {env} does not exist"
        assert script and (ROOT / script).exists(), f"rule {rule}: no script {script}"


def test_each_env_covers_the_imports_of_its_stages() -> None:
    pins = _pinned()
    for rule, (env, script) in _rules().items():
        if not env or not script:
            continue
        provided = _provided_by(set(pins[Path(env).name]))
        missing = _third_party_imports(ROOT / script) - provided
        assert not missing, f"rule {rule} imports {sorted(missing)}, which {env} lacks"


def test_stage_groups_have_their_own_envs() -> None:
    envs = {rule: env for rule, (env, _) in _rules().items() if env}
    assert envs["check"] == envs["extract"] == envs["link"] == "envs/frames.yaml"
    assert envs["solve"] == envs["measure"] == "envs/solve.yaml"
    for rule in ("render", "report", "index"):
        if rule in envs:
            assert envs[rule] == "envs/report.yaml", rule
