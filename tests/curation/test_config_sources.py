"""Every CurationConfig field is settable from the CLI (`--config FILE`, `--set section.field=value`), with
one precedence (defaults < file < flags < --set), and a typo is a one-line ConfigError naming the key."""

from __future__ import annotations

import dataclasses
import json

import pytest
from doodleflow.data.config import BoxFilterConfig, CurationConfig, SampleConfig
from doodleflow.data.config_sources import build, load_file, merge, parse_sets
from doodleflow.flows.cli import _parser
from doodleflow.flows.commands.curation import check_refresh
from doodleflow.infra.errors import ConfigError


def _fields(cls, prefix: str = "") -> list[str]:
    return [f"{prefix}{f.name}" for f in dataclasses.fields(cls)]


def _refresh(tmp_path, *extra: str) -> CurationConfig:
    src = tmp_path / "src"  # the smallest tree the refresh's source check accepts
    if not src.exists():
        (src / "images").mkdir(parents=True)
        (src / "class-descriptions-boxable.csv").write_text("/m/01,Thing\n")
        (src / "train-annotations-bbox.csv").write_text("ImageID,LabelName,XMin,XMax,YMin,YMax\n")
    a = _parser().parse_args(["refresh", "--source", str(src), "--dataset", "d", *extra])
    return check_refresh(a)


def _other_value(v):
    """A valid value different from the default `v`, as a --set string."""
    if isinstance(v, bool):
        return json.dumps(not v), (not v)
    if isinstance(v, int):
        return str(v + 1), v + 1
    if isinstance(v, float):
        return str(v / 2), v / 2
    return "/m/01,/m/02", ("/m/01", "/m/02")  # the label tuples


def test_every_field_of_every_section_can_be_set_with_set(tmp_path):
    # every field of BoxFilterConfig and SampleConfig, and the top level's own
    d = CurationConfig()
    paths = _fields(BoxFilterConfig, "boxes.") + _fields(SampleConfig, "sample.")
    paths += [p for p in _fields(CurationConfig) if p not in ("boxes", "sample")]
    assert len(paths) == 24
    for path in paths:
        section, _, name = path.rpartition(".")
        default = getattr(getattr(d, section) if section else d, name)
        text, want = _other_value(default)
        if path == "boxes.max_area":
            text, want = "0.9", 0.9  # half the default would fall below min_area (refused, below)
        cfg = _refresh(tmp_path, "--set", f"{path}={text}")
        got = getattr(getattr(cfg, section) if section else cfg, name)
        assert got == want and type(got) is type(want), (path, got, want)
        assert cfg != d


def test_config_file_then_flags_then_set(tmp_path):
    for name, text in [
        ("c.json", json.dumps({"seed": 3, "variants": 2, "boxes": {"min_area": 0.05}})),
        ("c.yaml", "seed: 3\nvariants: 2\nboxes:\n  min_area: 0.05\n"),
        ("c.toml", "seed = 3\nvariants = 2\n[boxes]\nmin_area = 0.05\n"),
    ]:
        f = tmp_path / name
        f.write_text(text)
        cfg = _refresh(tmp_path, "--config", str(f))
        assert (cfg.seed, cfg.variants, cfg.boxes.min_area, cfg.boxes.max_area) == (3, 2, 0.05, 0.8)
        cfg = _refresh(tmp_path, "--config", str(f), "--variants", "4", "--set", "boxes.min_area=0.1")
        assert (cfg.seed, cfg.variants, cfg.boxes.min_area) == (3, 4, 0.1)
        assert _refresh(tmp_path, "--config", str(f), "--set", "variants=5").variants == 5
    # nothing given: exactly the defaults (and the same content hash as before this option existed)
    assert _refresh(tmp_path) == CurationConfig()
    assert _refresh(tmp_path, "--require-images").require_images is True


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--set", "boxes.min_aera=0.1"], "unknown setting boxes.min_aera (known: allow_labels"),
        (["--set", "sample.image_size=big"], "sample.image_size: expected int, got 'big'"),
        (["--set", "boxes.drop_group_of=1"], "boxes.drop_group_of: expected bool, got 1"),
        (["--set", "seed"], "--set 'seed': use --set section.field=value"),
        (["--set", "seed.x=1"], "seed: expected int, got {'x': 1}"),
        (["--set", "boxes.max_area=0.01"], "need 0 <= min_area <= max_area <= 1"),
        (["--config", "/no/such.yaml"], "--config /no/such.yaml: No such file or directory"),
        (["--config", "x.ini"], "--config x.ini: use a .json, .yaml, .yml or .toml file"),
    ],
)
def test_bad_settings_name_the_key(tmp_path, extra, message):
    with pytest.raises(ConfigError) as e:
        _refresh(tmp_path, *extra)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_config_file_that_does_not_parse_names_the_file(tmp_path):
    f = tmp_path / "c.json"
    f.write_text("{seed: ")
    with pytest.raises(ConfigError, match=r"c.json: not valid JSON"):
        load_file(str(f))
    f.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="the top level must be a mapping"):
        load_file(str(f))


def test_round_trip_and_partial_dicts():
    cfg = CurationConfig(
        seed=4, boxes=BoxFilterConfig(deny_labels=("/m/x",)), sample=SampleConfig(jpeg_quality=80)
    )
    assert CurationConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert build(CurationConfig, {"boxes": {"min_side_px": 8}}) == CurationConfig(
        boxes=BoxFilterConfig(min_side_px=8)
    )
    assert parse_sets(["a.b=1", "a.c=x", "d=[1, 2]"]) == {"a": {"b": 1, "c": "x"}, "d": [1, 2]}
    assert merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}
