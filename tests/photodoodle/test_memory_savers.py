"""The memory savers of #19 item 4 on the tiny FLUX (training/core/memory.py): each `--memory` preset
trains in process (an int8-quantized base included), its LoRA loads into a stock, unquantized diffusers
pipeline, 8-bit AdamW state survives a checkpoint, an OmniEditor LoRA trained on a quantized base merges
into full-precision weights, and a saver the platform lacks is refused in one line."""

from __future__ import annotations

import json
import os

import pytest
import torch
from doodleflow.infra.errors import ConfigError
from doodleflow.training.photodoodle.batches import cached_epochs, cached_pairs
from doodleflow.training.photodoodle.config import PLAIN_BASE, ModelSource, TrainConfig
from doodleflow.training.photodoodle.job import plan_job, save_run_lora
from doodleflow.training.photodoodle.lora import trainable_state_dict
from doodleflow.training.photodoodle.model import load_training_model
from doodleflow.training.photodoodle.trainer import PhotoDoodleTrainer
from doodleflow.training.runs.rundir import RunDir
from doodleflow.training.runtime.loop import WorkerContext, train

from tests.photodoodle.helpers import make_pair_dataset
from tests.photodoodle.test_train import _unfinish


def _cfg(store: str, tiny_dir: str, memory: dict, **run) -> TrainConfig:
    """An EditLoRA at the reference rank 128 (LoRA matrices of >= 4096 values get 8-bit state)."""
    cfg = TrainConfig.for_stage("editlora", "tiny", store=store, dataset="magic", artist="magic", **run)
    source = ModelSource(preset="tiny", tiny_root=os.path.dirname(tiny_dir), base_transformer=PLAIN_BASE)
    return cfg.replace(model={"source": source}, memory=memory, optim={"lr": 1e-3})


def _train(cfg: TrainConfig) -> tuple[dict, PhotoDoodleTrainer]:
    """The Ray job's worker path (training/photodoodle/family.py:worker) in process, on the CPU."""
    plan = plan_job(cfg, log=lambda m: None)
    info = {"cache_dir": plan.cache_dir, "artist_filter": plan.artist_filter, "trigger": plan.trigger}
    model = load_training_model(plan.cfg, "cpu")
    cache = cached_pairs(plan.cfg, info, model, "cpu", 0)
    trainer = PhotoDoodleTrainer(model, plan.cfg, "cpu")

    def save_final(t, extra):
        return save_run_lora(plan.cfg, plan.trigger, t.model.transformer, extra, plan.base)

    ctx = WorkerContext(log=lambda m: None, save_final=save_final)
    result = train(trainer, plan.run, cached_epochs(cache, trainer, 0, 1), ctx)
    lines = plan.run.read_bytes("metrics.jsonl").decode().splitlines()
    return {**result, "losses": [json.loads(r)["loss"] for r in lines if r]}, trainer


@pytest.fixture(scope="module")
def runs(tiny_dir, tmp_path_factory):
    """The reference settings (= the 80GB preset) and the other presets, 6 steps on the same 4 pairs
    and seed."""
    root = tmp_path_factory.mktemp("savers")
    store = str(root / "store")
    make_pair_dataset(str(root), store, "magic", 4)
    presets = {"reference": {}, "48GB": {"preset": "48GB"}, "24GB": {"preset": "24GB"}}
    return {
        name: _train(_cfg(store, tiny_dir, mem, steps=6, checkpoint_every=3, run_name=f"r-{name}"))
        for name, mem in presets.items()
    }


def test_each_preset_applies_its_savers(runs):
    ref, p24 = runs["reference"][1], runs["24GB"][1]
    # 80GB is the reference settings (planned 50.4 GiB at full size): the same savers and run id
    c = ref.cfg.replace(memory={"preset": "80GB"})
    assert c.savers() == ref.cfg.savers() and c.config_hash() == ref.cfg.config_hash()
    assert not ref.model.transformer.is_gradient_checkpointing
    assert runs["48GB"][1].model.transformer.is_gradient_checkpointing
    assert p24.model.transformer.is_gradient_checkpointing
    assert type(runs["48GB"][1].optimizer) is torch.optim.AdamW
    # 24GB: the frozen base is int8 weight-only (torchao through diffusers' TorchAoConfig), the LoRA
    # (PEFT's torchao wrapper) and its gradients full precision.
    q = p24.model.transformer.transformer_blocks[0].attn.to_q
    assert type(q).__name__ == "TorchaoLoraLinear"
    w = q.base_layer.weight
    assert type(w).__name__ == "Int8Tensor" and w.qdata.dtype == torch.int8
    assert all(p.dtype == torch.float32 and not type(p).__name__.startswith("Int8") for p in p24.params)
    base_ref = ref.model.transformer.transformer_blocks[0].attn.to_q.base_layer.weight
    assert type(base_ref) is torch.nn.Parameter and base_ref.dtype == torch.float32
    # the cached run released the text encoders before the transformer moved to the device
    assert p24.model.encoders_released and ref.model.encoders_released


def test_8bit_optimizer_state_is_uint8_codes(runs):
    opt = runs["24GB"][1].optimizer
    assert type(opt).__name__ == "AdamW8bit"
    states = [opt.state[p] for p in runs["24GB"][1].params]
    big = [s for s in states if type(s["exp_avg"]).__name__ == "OptimState8bit"]
    small = [s for s in states if type(s["exp_avg"]) is torch.Tensor]
    assert len(big) >= len(states) // 2 and all(s["exp_avg"].codes.dtype == torch.uint8 for s in big)
    # 1 byte per value + one fp32 scale per 256 values, against AdamW's 4 bytes
    s = big[0]["exp_avg_sq"]
    assert s.codes.numel() == s.numel() and s.scale.numel() * 256 == s.numel()
    assert all(st["exp_avg"].dtype == torch.float32 for st in small)  # < 4096 values: fp32, as bitsandbytes
    ref_opt = runs["reference"][1].optimizer
    assert type(ref_opt) is torch.optim.AdamW


def test_losses_are_finite_and_close_to_the_reference_step(runs):
    ref = runs["reference"][0]["losses"]
    for name, (result, _) in runs.items():
        assert len(result["losses"]) == 6 and all(torch.isfinite(torch.tensor(result["losses"]))), name
        # step 1 differs from the reference only by the int8 rounding of the frozen base
        assert result["losses"][0] == pytest.approx(ref[0], rel=0.05), name
    assert runs["24GB"][0]["losses"][0] != ref[0]  # the base really is quantized
    assert runs["48GB"][0]["losses"][0] == pytest.approx(ref[0], rel=1e-5)  # checkpointing: same math


def test_preset_loras_load_into_a_stock_unquantized_pipeline(runs, tiny_dir):
    from diffusers import FluxPipeline
    from doodleflow.training.runs.localize import local_file
    from safetensors.torch import load_file

    for name in ("24GB", "48GB"):
        result, trainer = runs[name]
        path = local_file(result["lora"])
        keys = set(load_file(path))
        assert keys and all(k.startswith("transformer.") and ".lora_" in k for k in keys)
        pipe = FluxPipeline.from_pretrained(tiny_dir)
        pipe.load_lora_weights(path, adapter_name="a")
        loaded = pipe.transformer.transformer_blocks[0].attn.to_q.lora_B["a"].weight
        trained = trainable_state_dict(trainer.model.transformer)
        mine = next(
            v
            for k, v in trained.items()
            if k.endswith("transformer_blocks.0.attn.to_q.lora_B.default.weight")
        )
        assert torch.equal(loaded, mine), name


def test_8bit_state_checkpoint_resumes_exactly(runs, tiny_dir, tmp_path):
    """The 24GB run split at step 3 and resumed continues bit-identically (8-bit codes, scales,
    the tensor lr: training/core/checkpoint.py)."""
    straight = runs["24GB"][0]
    store = straight["run_dir"].split("/runs/")[0]
    cfg = _cfg(store, tiny_dir, {"preset": "24GB"}, steps=3, checkpoint_every=3, run_name="split")
    _train(cfg)
    _unfinish(store, "split")  # as a run stopped after its step-3 checkpoint: a finished one is not retrained
    resumed, trainer = _train(cfg.replace(run={"steps": 6, "resume": True}))
    assert resumed["resumed_from"] == 3
    assert resumed["final_loss"] == pytest.approx(straight["final_loss"], abs=0)
    a, b = (
        trainable_state_dict(runs["24GB"][1].model.transformer),
        trainable_state_dict(trainer.model.transformer),
    )
    assert all(torch.equal(a[k], b[k]) for k in a)
    ckpt = RunDir(store, "editlora", "split").read_checkpoint(3)[1]
    assert any(k.startswith("exp_avg#codes/") and v.dtype == torch.uint8 for k, v in ckpt.items())


def test_a_saver_the_platform_lacks_is_refused_in_one_line(tiny_dir, tmp_path):
    from doodleflow.training.pbe.config import TrainConfig as PbEConfig

    cfg = _cfg(str(tmp_path), tiny_dir, {"quantize_base": "fp8"})
    with pytest.raises(
        ConfigError, match=r"^--quantize-base fp8 needs a CUDA GPU \(this run's device is cpu\)"
    ):
        load_training_model(cfg, "cpu")
    with pytest.raises(ConfigError, match=r"^--quantize-base nf4 needs a CUDA GPU"):
        load_training_model(cfg.replace(memory={"quantize_base": "nf4"}), "cpu")
    with pytest.raises(ConfigError, match=r"^--quantize-base fp8 needs CUDA GPUs \(--gpus\)"):
        cfg.check()  # the preflight refuses it before any worker starts
    with pytest.raises(ConfigError, match=r"^--memory must be one of 80GB, 48GB, 24GB; got '16GB'"):
        cfg.replace(memory={"preset": "16GB"})
    with pytest.raises(ConfigError, match=r"^--quantize-base does not apply to Paint by Example"):
        PbEConfig().replace(memory={"quantize_base": "int8"})
    # torchao's int8 linear saves a dequantized copy of its weight for backward: only checkpointing
    # keeps the saving, so a quantized base turns it on, and refuses it turned off
    assert cfg.replace(memory={"quantize_base": "int8"}).savers().gradient_checkpointing
    with pytest.raises(ConfigError, match=r"^--quantize-base needs gradient checkpointing: autograd keeps"):
        cfg.replace(memory={"quantize_base": "int8"}, model={"gradient_checkpointing": False})
    # an explicit saver wins over its preset; a run with a weight-changing saver gets its own id
    c = cfg.replace(memory={"preset": "24GB", "quantize_base": "none"})
    assert c.savers().quantize_base == "none" and c.savers().optimizer == "adamw8bit"
    assert c.config_hash() != cfg.replace(memory={"quantize_base": "none"}).config_hash()
    assert TrainConfig.from_dict(c.to_dict()).savers() == c.savers()


def test_a_lora_trained_on_a_quantized_base_merges_into_full_precision(runs, tiny_dir, tmp_path):
    """training/photodoodle/merge.py loads the base unquantized and fuses there: the merged weight is
    the fp32 base plus the LoRA's delta, exactly as stock diffusers fuses it; a quantized transformer is
    refused (fusing would round the delta to the int8 grid)."""
    from diffusers import FluxPipeline, FluxTransformer2DModel
    from doodleflow.training.photodoodle.merge import fuse_lora_file, merge_omnieditor
    from doodleflow.training.photodoodle.model import load_transformer
    from doodleflow.training.runs.localize import local_dir, local_file

    lora = runs["24GB"][0]["lora"]
    source = ModelSource(preset="tiny", tiny_root=os.path.dirname(tiny_dir))
    merged = merge_omnieditor(str(tmp_path / "store"), "omni-q", source, lora)
    got = FluxTransformer2DModel.from_pretrained(local_dir(merged["transformer"]))
    stock = FluxPipeline.from_pretrained(tiny_dir)
    stock.load_lora_weights(local_file(lora), adapter_name="x")
    stock.fuse_lora(adapter_names=["x"])
    stock.unload_lora_weights()
    w = got.transformer_blocks[0].attn.to_q.weight
    assert type(w) is torch.nn.Parameter and w.dtype == torch.float32
    assert torch.allclose(w, stock.transformer.transformer_blocks[0].attn.to_q.weight, atol=1e-6)
    base = FluxTransformer2DModel.from_pretrained(tiny_dir, subfolder="transformer")
    assert not torch.equal(w, base.transformer_blocks[0].attn.to_q.weight)  # the delta is in
    quantized = load_transformer(tiny_dir, None, "int8", "transformer")
    with pytest.raises(ConfigError, match="^a LoRA is merged into the full-precision base"):
        fuse_lora_file(quantized, lora)


def test_generate_doodle_on_an_int8_base(tiny_dir, tmp_path, monkeypatch):
    """`generate doodle --quantize-base int8`: the artist's LoRA on a quantized base edits the photo
    close to the full-precision result."""
    import numpy as np
    from doodleflow.training.inference.photodoodle import DoodleRequest, generate_doodle
    from PIL import Image

    from tests.photodoodle.helpers import PHOTO, save_artist_lora

    monkeypatch.setenv("DOODLEFLOW_HOME", str(tmp_path / "home"))
    store = str(tmp_path / "store")
    save_artist_lora(tiny_dir, store)
    outs = {}
    for kind in ("none", "int8"):
        outs[kind] = str(tmp_path / f"{kind}.png")
        req = DoodleRequest(PHOTO, "add a halo", outs[kind], steps=2, seed=1, quantize_base=kind)
        generate_doodle(store, "lulu", req)
    a, b = (np.asarray(Image.open(outs[k]), dtype=np.float32) for k in ("none", "int8"))
    assert a.shape == b.shape == (96, 64, 3)
    assert 0 < np.abs(a - b).mean() < 4.0  # int8 rounding moves pixels by a few levels, no more
    with pytest.raises(ConfigError, match="^--quantize-base fp8 needs a CUDA GPU"):
        generate_doodle(store, "lulu", DoodleRequest(PHOTO, "x", outs["none"], quantize_base="fp8"))


def test_the_cli_flags_set_the_memory_section(tmp_path):
    """`--memory` and the saver flags reach the config the train commands build; unset flags leave
    the preset's choice (None), so an explicit flag wins over the preset."""
    from doodleflow.flows.cli import _parser
    from doodleflow.flows.commands.options import overrides
    from doodleflow.flows.commands.pbe import TRAIN_OPTIONS as PBE_OPTIONS
    from doodleflow.flows.commands.photodoodle import train_config
    from doodleflow.training.pbe.config import TrainConfig as PbEConfig

    store = ["--store", str(tmp_path)]
    a = _parser().parse_args(
        ["train", "artist", "--artist", "x", "--memory", "24GB", "--quantize-base", "fp8", *store]
    )
    cfg = train_config(a, "editlora")
    assert cfg.memory.preset == "24GB" and cfg.memory.optimizer is None
    s = cfg.savers()
    assert (s.gradient_checkpointing, s.quantize_base, s.optimizer, s.encoders) == (
        True,
        "fp8",
        "adamw8bit",
        "auto",
    )
    a = _parser().parse_args(["train", "pbe", "--dataset", "d", "--memory", "24GB", *store])
    pbe = PbEConfig.from_dict(overrides(a, PBE_OPTIONS))  # train_config also checks the dataset exists
    assert pbe.savers(cuda=False).optimizer == "adamw8bit" and pbe.savers(cuda=False).gradient_checkpointing
