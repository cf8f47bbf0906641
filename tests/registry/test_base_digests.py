"""sha256-verified covers the frozen base: a PbE checkpoint's lineage records every file of its base
directory, and loading by reference refuses a base whose bytes changed (one VAE tensor scaled)."""

from __future__ import annotations

import json
import os

import pytest
from doodleflow.infra import settings
from doodleflow.infra.errors import TamperedArtifact
from doodleflow.training.registry import Registry
from doodleflow.training.registry.bases import digests
from safetensors.torch import load_file, save_file


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from doodleflow.training.pbe.config import ModelSource, TrainConfig
    from doodleflow.training.pbe.model import load_pbe_dir
    from doodleflow.training.pbe.presets import save_tiny_pbe
    from doodleflow.training.pbe.trainer import PbETrainer
    from doodleflow.training.runs.rundir import RunDir

    root = str(tmp_path_factory.mktemp("models"))
    cfg = TrainConfig().replace(model={"source": ModelSource(kind="tiny", tiny_root=root)})
    tiny = save_tiny_pbe(root)
    model, opt, state = PbETrainer(load_pbe_dir(tiny), cfg).state_tensors()
    run = RunDir(str(tmp_path_factory.mktemp("store")), "pbe", "base-run")
    return run.write_checkpoint(1, model, opt, {**state, "config": cfg.to_dict()}), tiny


def test_scaled_base_vae_tensor_is_refused(checkpoint, tmp_path):
    ck, tiny = checkpoint
    reg = Registry(home=str(tmp_path / "home"))
    r = reg.register("pbe-base", "pbe-checkpoint", ck, config={})
    [base] = r.lineage["base"]
    vae = "vae/diffusion_pytorch_model.safetensors"
    assert base["root"] == tiny and vae in {f["path"] for f in base["files"]}
    assert reg.resolve("pbe-base").version == 1  # untouched: loads
    path = os.path.join(tiny, vae)
    tensors = load_file(path)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] * 1.5
    save_file(tensors, path)
    with pytest.raises(
        TamperedArtifact, match=r"diffusion_pytorch_model.safetensors has sha256 .* modified base"
    ):
        reg.resolve("pbe-base")
    reg.resolve("pbe-base", verify=False)  # inspection without loading stays possible


def test_base_digests_are_cached_by_size_and_mtime(tmp_path):
    d = tmp_path / "base"
    d.mkdir()
    (d / "w.bin").write_bytes(b"a" * 1000)
    first = digests(str(d))
    cache = json.load(open(os.path.join(settings.home(), "cache", "sha256.json")))
    assert cache[str(d / "w.bin")]["sha256"] == first[0]["sha256"]
    assert digests(str(d)) == first  # from the cache
    (d / "w.bin").write_bytes(b"b" * 1000)  # same size, new mtime: hashed again
    assert digests(str(d))[0]["sha256"] != first[0]["sha256"]


def test_a_checkpoint_loaded_by_path_checks_its_runs_base(tmp_path):
    """`generate pbe --checkpoint` (no registry): the run recorded its base's digests when it started."""
    from doodleflow.training.inference.pbe import load_for_inference
    from doodleflow.training.pbe.config import ModelSource, TrainConfig
    from doodleflow.training.pbe.model import frozen_base_dirs, load_pbe_dir
    from doodleflow.training.pbe.presets import save_tiny_pbe
    from doodleflow.training.pbe.trainer import PbETrainer
    from doodleflow.training.registry.bases import BASES, record_run_bases
    from doodleflow.training.runs.rundir import RunDir

    root = str(tmp_path / "models")
    cfg = TrainConfig().replace(model={"source": ModelSource(kind="tiny", tiny_root=root)})
    tiny = save_tiny_pbe(root)
    run = RunDir(str(tmp_path / "store"), "pbe", "by-path")
    record_run_bases(run, frozen_base_dirs(cfg.to_dict()))
    model, opt, state = PbETrainer(load_pbe_dir(tiny), cfg).state_tensors()
    ck = run.write_checkpoint(1, model, opt, {**state, "config": cfg.to_dict()})
    [base] = run.read_json(BASES)
    assert base["root"] == tiny and any(f["path"].startswith("vae/") for f in base["files"])
    load_for_inference(ck)  # untouched: loads
    path = os.path.join(tiny, "vae/diffusion_pytorch_model.safetensors")
    tensors = load_file(path)
    name = sorted(tensors)[0]
    save_file({**tensors, name: tensors[name] * 1.5}, path)
    with pytest.raises(TamperedArtifact, match="modified base"):
        load_for_inference(ck)
