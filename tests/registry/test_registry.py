"""The MLflow-backed registry on a real SQLite store: lineage round-trip, aliases, tamper refusal."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys

import pytest
import torch
from doodleflow.infra.errors import ConfigError, NotFoundError
from doodleflow.training.registry import Registry, TamperedArtifact, parse_ref
from doodleflow.training.registry.refs import ModelRef
from safetensors.torch import save_file


def _artifact(path, seed: int) -> str:
    os.makedirs(path, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    save_file({"w": torch.randn(4, 4, generator=g)}, os.path.join(path, "weights.safetensors"))
    with open(os.path.join(path, "config.json"), "w") as f:
        f.write('{"rank": 4}')
    return str(path)


@pytest.fixture
def registry(tmp_path):
    return Registry(home=str(tmp_path / "home"))


def test_refs_parse():
    assert parse_ref("pbe") == ModelRef("pbe")
    assert parse_ref("editlora-alice@production") == ModelRef("editlora-alice", alias="production")
    assert parse_ref("pbe:3") == ModelRef("pbe", version=3)
    for bad in ("", "../x", "a@", "a:b", "a b"):
        with pytest.raises(ValueError, match="invalid model reference"):
            parse_ref(bad)


def test_lineage_round_trip_through_sqlite(registry, tmp_path):
    omni = registry.register(
        "photodoodle-omnieditor",
        "omnieditor-lora",
        _artifact(tmp_path / "omni", 1),
        config={"rank": 128, "lr": 1e-4},
        dataset={"name": "pairs", "version": 2, "manifest_hash": "abc"},
        flow_run_id="run-1",
        metrics={"final_loss": 0.25},
    )
    base = registry.register(
        "photodoodle-merged-base",
        "merged-base",
        _artifact(tmp_path / "base", 2),
        config={},
        parent=f"{omni.name}:{omni.version}",
    )
    lora = registry.register(
        "editlora-alice",
        "editlora",
        _artifact(tmp_path / "alice", 3),
        config={"rank": 4},
        parent=f"{base.name}:{base.version}",
        metrics={"final_loss": 0.5},
    )
    # a fresh client on the same SQLite file sees everything
    again = Registry(home=str(tmp_path / "home"))
    got = again.show("editlora-alice")
    assert (got.version, got.kind, got.uri) == (1, "editlora", str(tmp_path / "alice"))
    assert got.lineage["parent"] == "photodoodle-merged-base:1" and got.lineage["metrics"] == {
        "final_loss": 0.5
    }
    assert {f["path"] for f in got.lineage["files"]} == {"weights.safetensors", "config.json"}
    assert len(got.lineage["git_commit"]) in (40, 7) or got.lineage["git_commit"] == "unknown"
    chain, ref = [], got.lineage["parent"]
    while ref:
        r = again.resolve(ref)
        chain.append((r.name, r.kind))
        ref = r.lineage["parent"]
    assert chain == [
        ("photodoodle-merged-base", "merged-base"),
        ("photodoodle-omnieditor", "omnieditor-lora"),
    ]
    o = again.show("photodoodle-omnieditor", 1)
    assert o.lineage["dataset"] == {"name": "pairs", "version": 2, "manifest_hash": "abc"}
    assert o.lineage["config"] == {"rank": 128, "lr": 1e-4} and o.lineage["prefect_flow_run_id"] == "run-1"
    kinds = {m["name"]: m["kind"] for m in again.list()}
    assert kinds == {
        "editlora-alice": "editlora",
        "photodoodle-merged-base": "merged-base",
        "photodoodle-omnieditor": "omnieditor-lora",
    }
    assert [m["name"] for m in again.list(kind="editlora")] == ["editlora-alice"]
    assert lora.run_id != omni.run_id


def test_promotion_and_alias_resolution(registry, tmp_path):
    for i in range(3):
        registry.register("pbe", "pbe-checkpoint", _artifact(tmp_path / f"ck{i}", i), config={"step": i})
    assert registry.resolve("pbe").version == 3  # no alias: the latest
    registry.promote("pbe", 2, "production")
    assert registry.resolve("pbe@production").version == 2
    assert registry.resolve("pbe:1").uri == str(tmp_path / "ck0")
    assert registry.show("pbe", 2).aliases == ["production"]
    registry.promote("pbe", 3, "production")  # moving an alias
    assert registry.resolve("pbe@production").version == 3
    with pytest.raises(LookupError):
        registry.resolve("pbe@staging")
    with pytest.raises(LookupError):
        registry.resolve("nope")
    with pytest.raises(NotFoundError, match="no registered model version pbe:9"):
        registry.promote("pbe", 9, "production")
    with pytest.raises(ConfigError, match="invalid model reference"):
        registry.promote("pbe", 1, "bad alias")


def test_tampered_or_missing_files_are_refused(registry, tmp_path):
    path = _artifact(tmp_path / "ck", 0)
    registry.register("pbe", "pbe-checkpoint", path, config={})
    assert registry.resolve("pbe").version == 1
    save_file({"w": torch.zeros(4, 4)}, os.path.join(path, "weights.safetensors"))
    with pytest.raises(TamperedArtifact, match=r"weights.safetensors has sha256 .* refusing"):
        registry.resolve("pbe")
    registry.resolve("pbe", verify=False)  # inspection without loading stays possible
    os.remove(os.path.join(path, "config.json"))
    with pytest.raises(TamperedArtifact):
        registry.resolve("pbe")


def test_unknown_kind_is_rejected(registry, tmp_path):
    with pytest.raises(ValueError, match="unknown artifact kind"):
        registry.register("x", "weights", _artifact(tmp_path / "a", 0), config={})


def test_fast_listing_matches_mlflow(registry, tmp_path):
    """`list` reads MLflow's SQLite tables directly; it must answer exactly what MLflow answers."""
    for i in range(2):
        registry.register("pbe", "pbe-checkpoint", _artifact(tmp_path / f"ck{i}", i), config={})
    registry.register("editlora-bob", "editlora", _artifact(tmp_path / "bob", 5), config={})
    registry.promote("pbe", 1, "production")
    registry.promote("pbe", 2, "staging")
    registry.client.delete_model_version("pbe", "2")  # a deleted version is not the latest
    for kind in (None, "pbe-checkpoint", "editlora"):
        assert registry.list(kind) == registry._list_mlflow(kind)
    assert registry.list() == [
        {"name": "editlora-bob", "kind": "editlora", "latest_version": 1, "aliases": {}},
        {"name": "pbe", "kind": "pbe-checkpoint", "latest_version": 1, "aliases": {"production": 1}},
    ]
    with pytest.raises(ConfigError, match="unknown kind 'bogus'"):
        registry.list("bogus")


def test_nan_metric_is_warned_about_and_stored_as_null(registry, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        r = registry.register(
            "pbe", "pbe-checkpoint", _artifact(tmp_path / "ck", 0), config={}, metrics={"fid": math.nan}
        )
    assert "metric fid = nan" in caplog.text
    assert registry.show("pbe", r.version).lineage["metrics"] == {"fid": None}
    assert json.loads(registry.client.get_model_version("pbe", "1").tags["metrics"]) == {"fid": None}


def test_cli_list_is_light_and_show_draws_no_download_bar(registry, tmp_path):
    """`registry list` imports no MLflow (nor Prefect/torch); `show` of a local registry prints no bar."""
    registry.register("pbe", "pbe-checkpoint", _artifact(tmp_path / "ck", 0), config={})
    env = {**os.environ, "DOODLEFLOW_HOME": str(tmp_path / "home")}
    code = (
        "import sys; from doodleflow.flows.cli import main; rc = main(['registry', 'list', '--json']);"
        "heavy = sorted({'mlflow', 'prefect', 'torch', 'ray', 'albumentations'} & set(sys.modules));"
        "print('HEAVY', heavy); sys.exit(rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout and '"name": "pbe"' in out.stdout
    show = subprocess.run(
        [sys.executable, "-m", "doodleflow.flows.cli", "registry", "show", "pbe"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert show.returncode == 0, show.stderr
    assert "Downloading artifacts" not in show.stderr and '"kind": "pbe-checkpoint"' in show.stdout
    bogus = subprocess.run(
        [sys.executable, "-m", "doodleflow.flows.cli", "registry", "list", "--kind", "bogus"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bogus.returncode == 2 and "invalid choice: 'bogus'" in bogus.stderr
