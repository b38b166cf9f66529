"""The workflow's configuration: validation, defaults and per-session overrides.

``config/config.yaml`` holds one section per stage. A session may override any key of
those sections in ``config/sessions/<session id>.yaml`` (the path mirrors the tree of
nights: ``config/sessions/2026-03-14/M31.yaml``). Both are checked against the JSON
schemas in ``workflow/schemas/`` and every error names the file and the key, e.g.
``config/sessions/2026-03-14/M31.yaml: convert.keep: 'yes' is not of type 'boolean'``.

Each rule is handed only its own stage's merged section, so that Snakemake's parameter
tracking reruns exactly the stage whose settings changed, and what follows it, for that
session alone.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from spacepixels.settings import STAGES

__all__ = [
    "STAGES",
    "ConfigError",
    "load_schema_registry",
    "validate",
    "load_session_overrides",
    "merge_stage",
]

logger = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A configuration file is wrong; the message names the file and the key."""


def load_schema_registry(schema_dir: str | Path) -> Registry:
    """Every ``*.schema.yaml`` in ``schema_dir``, addressable by file name in ``$ref``."""
    resources = []
    for path in sorted(Path(schema_dir).glob("*.schema.yaml")):
        contents = yaml.safe_load(path.read_text(encoding="utf-8"))
        resources.append((path.name, Resource.from_contents(contents)))
    return Registry().with_resources(resources)


def _key_path(parts: Any) -> str:
    return ".".join(str(p) for p in parts) or "(top level)"


def _fill_defaults(instance: Any, schema: Mapping[str, Any], resolver: Any) -> None:
    """Insert the schema's ``default`` values for keys the instance leaves out."""
    if "$ref" in schema:
        resolved = resolver.lookup(schema["$ref"])
        schema, resolver = resolved.contents, resolved.resolver
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        sub_resolver = resolver
        if "$ref" in sub:
            resolved = resolver.lookup(sub["$ref"])
            # A default beside the $ref wins over the referenced schema's own.
            sub = {**resolved.contents, **{k: v for k, v in sub.items() if k != "$ref"}}
            sub_resolver = resolved.resolver
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            _fill_defaults(instance[key], sub, sub_resolver)


def validate(
    instance: Any,
    schema_name: str,
    registry: Registry,
    *,
    source: str,
    set_defaults: bool = True,
) -> Any:
    """Check a configuration against a schema and fill in its defaults.

    Parameters
    ----------
    instance : mapping
        The configuration as read from YAML (changed in place when filling defaults).
    schema_name : str
        File name of the schema in the registry, e.g. ``"config.schema.yaml"``.
    registry : referencing.Registry
        From :func:`load_schema_registry`.
    source : str
        The file the configuration came from, for the error message.
    set_defaults : bool
        Fill in defaults for keys left out.

    Returns
    -------
    The instance, with defaults filled in.

    Raises
    ------
    ConfigError
        On the first error, as ``<source>: <key path>: <what is wrong>``.
    """
    schema = registry.contents(schema_name)
    validator = Draft202012Validator(schema, registry=registry)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{source}: {_key_path(first.absolute_path)}: {first.message}{more}")
    if set_defaults:
        _fill_defaults(instance, schema, registry.resolver(base_uri=schema_name))
    return instance


def load_session_overrides(
    sessions_dir: str | Path, session_id: str, registry: Registry
) -> dict[str, Any]:
    """The validated overrides for one session, or ``{}`` when it has no file.

    Raises
    ------
    ConfigError
        When the file is not valid YAML or breaks the session schema.
    """
    path = Path(sessions_dir) / f"{session_id}.yaml"
    if not path.is_file():
        return {}
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{path}:{line} not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if values is None:
        return {}
    validate(values, "session.schema.yaml", registry, source=str(path), set_defaults=False)
    return values


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def merge_stage(
    config: Mapping[str, Any], overrides: Mapping[str, Any], stage: str
) -> dict[str, Any]:
    """One stage's settings for one session: the config section with the session's overrides."""
    if stage not in STAGES:
        raise KeyError(f"unknown stage {stage!r}")
    return _deep_merge(config.get(stage) or {}, overrides.get(stage) or {})
