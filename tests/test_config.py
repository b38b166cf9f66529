"""The configuration is validated key by key and merged per session and per stage."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from spacepixels import config as spconfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def registry():
    return spconfig.load_schema_registry(ROOT / "workflow" / "schemas")


def _shipped_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_shipped_config_is_valid(registry) -> None:
    spconfig.validate(_shipped_config(), "config.schema.yaml", registry, source="config.yaml")


def test_defaults_fill_what_a_user_config_leaves_out(registry) -> None:
    cfg = spconfig.validate(
        {"input_root": "/data/nights"}, "config.schema.yaml", registry, source="mine.yaml"
    )
    shipped = spconfig.validate(_shipped_config(), "config.schema.yaml", registry, source="c")
    for key in ("results_root", "min_frames", "resources", "check", "convert"):
        assert cfg[key] == shipped[key], key


def test_error_names_file_and_key(registry) -> None:
    bad = _shipped_config()
    bad["convert"]["keep"] = "yes"
    with pytest.raises(spconfig.ConfigError) as err:
        spconfig.validate(bad, "config.schema.yaml", registry, source="config/config.yaml")
    assert str(err.value).startswith("config/config.yaml: convert.keep: 'yes' is not of type")


def test_session_override_is_validated_and_named(tmp_path: Path, registry) -> None:
    folder = tmp_path / "2026-03-14"
    folder.mkdir()
    (folder / "M31.yaml").write_text("convert:\n  preview_max_size: -3\n")
    with pytest.raises(spconfig.ConfigError) as err:
        spconfig.load_session_overrides(tmp_path, "2026-03-14/M31", registry)
    assert "M31.yaml: convert.preview_max_size:" in str(err.value)

    (folder / "M31.yaml").write_text("extract_typo:\n  x: 1\n")
    with pytest.raises(spconfig.ConfigError, match="extract_typo"):
        spconfig.load_session_overrides(tmp_path, "2026-03-14/M31", registry)

    (folder / "M31.yaml").write_text("convert: [unclosed\n")
    with pytest.raises(spconfig.ConfigError, match=r"M31.yaml: line \d+ not valid YAML"):
        spconfig.load_session_overrides(tmp_path, "2026-03-14/M31", registry)


def test_merge_gives_each_stage_only_its_section(tmp_path: Path, registry) -> None:
    cfg = spconfig.validate(_shipped_config(), "config.schema.yaml", registry, source="c")
    (tmp_path / "n1").mkdir()
    (tmp_path / "n1" / "M1.yaml").write_text("convert:\n  keep: true\n")
    overrides = spconfig.load_session_overrides(tmp_path, "n1/M1", registry)

    merged = spconfig.merge_stage(cfg, overrides, "convert")
    assert merged["keep"] is True
    assert set(merged) == set(cfg["convert"])
    assert spconfig.merge_stage(cfg, overrides, "check") == cfg["check"]
    assert spconfig.load_session_overrides(tmp_path, "n2/none", registry) == {}


def test_shipped_defaults_are_the_package_defaults(registry) -> None:
    """config.yaml, the schema's defaults and the package's settings classes agree."""
    from spacepixels.check import CheckSettings
    from spacepixels.convert import ConvertSettings
    from spacepixels.extract import ExtractSettings
    from spacepixels.link import LinkSettings
    from spacepixels.measure import MeasureSettings
    from spacepixels.skymodel import SkySettings
    from spacepixels.solve import SolveSettings
    from spacepixels.tune import TuneSettings

    shipped = spconfig.validate(_shipped_config(), "config.schema.yaml", registry, source="c")
    from_schema = spconfig.validate({"input_root": "x"}, "config.schema.yaml", registry, source="s")
    for stage, settings_class in {
        "check": CheckSettings,
        "convert": ConvertSettings,
        "tune": TuneSettings,
        "sky": SkySettings,
        "extract": ExtractSettings,
        "link": LinkSettings,
        "solve": SolveSettings,
        "measure": MeasureSettings,
    }.items():
        assert settings_class.from_mapping(shipped[stage]) == settings_class(), stage
        assert settings_class.from_mapping(from_schema[stage]) == settings_class(), stage
