"""The memory plan (training/memplan/): its parts against bytes counted independently, the savers'
effect on their parts, the refusal and `--micro-batch auto`. Tiny models (seconds of CPU each)."""

from __future__ import annotations

import pytest
import torch
from doodleflow.infra.errors import ConfigError
from doodleflow.training.memplan.auto import cached_plan, largest_micro_batch, refuse_if_over
from doodleflow.training.memplan.families import ADAMW8BIT_SCALE
from doodleflow.training.memplan.limits import from_resources, parse_gib, usable
from doodleflow.training.pbe.config import TrainConfig as PbEConfig
from doodleflow.training.photodoodle.config import TrainConfig as PDConfig

GIB = 2**30
pytestmark = pytest.mark.slow(seconds=60)  # ~8 tiny plans (seconds of CPU each)


def _tiny_flux_bytes(rank: int) -> tuple[int, int, int]:
    """(bf16 base bytes, its Linear weights' bytes, fp32 LoRA bytes) counted on the meta device."""
    from diffusers import FluxTransformer2DModel
    from doodleflow.training.photodoodle.config import LoraSettings
    from doodleflow.training.photodoodle.lora import add_lora
    from doodleflow.training.photodoodle.presets import TINY_TRANSFORMER

    with torch.device("meta"):
        tr = FluxTransformer2DModel(**TINY_TRANSFORMER)
        base = sum(p.numel() for p in tr.parameters()) * 2
        linears = sum(m.weight.numel() for m in tr.modules() if isinstance(m, torch.nn.Linear)) * 2
        lora = add_lora(tr, LoraSettings(rank=rank))
    return base, linears, sum(p.numel() for p in lora) * 4, len(lora)


@pytest.fixture(scope="module")
def plans():
    cfg = PDConfig.for_stage("editlora", "tiny")
    return {"reference": cached_plan(cfg), "24GB": cached_plan(cfg.replace(memory={"preset": "24GB"}))}


def test_parts_are_the_bytes_of_what_they_name(plans):
    ref = plans["reference"]
    base, _, lora, n = _tiny_flux_bytes(128)
    assert ref.parts["frozen"] == base  # bf16 base, as on the GPU
    assert ref.parts["trainable"] == lora  # fp32 LoRA
    assert ref.parts["optimizer"] == 2 * lora + 4 * n  # exp_avg, exp_avg_sq fp32 + a fp32 step each
    assert ref.parts["gradients"] <= lora
    assert sum(ref.parts.values()) == ref.peak
    assert ref.activations > 0 and ref.phase in ("forward", "backward", "optimizer step")
    assert ref.settings["precision"] == "bf16" and ref.settings["rank"] == 128


def test_savers_shrink_their_own_parts(plans):
    ref, small = plans["reference"], plans["24GB"]
    base, linears, lora, n = _tiny_flux_bytes(128)
    assert small.settings["quantize_base"] == "int8" and small.settings["optimizer"] == "adamw8bit"
    # int8 weight-only: the Linear weights at one byte, the rest (biases, norms) as they were
    assert small.parts["frozen"] == pytest.approx(base - linears / 2, rel=1e-3)
    assert small.parts["optimizer"] == pytest.approx((2 * lora) * ADAMW8BIT_SCALE + 4 * n, rel=1e-3)
    assert small.parts["trainable"] == ref.parts["trainable"]
    # checkpointing keeps block inputs only
    assert small.activations < ref.activations / 2


def test_refusal_is_one_line_with_plan_limit_and_fix(plans):
    cfg = PDConfig.for_stage("editlora", "tiny")
    limit = plans["reference"].peak_gib / 2  # half the plan
    lines = []
    with pytest.raises(ConfigError) as e:
        refuse_if_over(cfg, limit, lines.append)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"memory plan {plans['reference'].peak_gib:.1f} GiB exceeds the {limit:g} GiB GPU")
    assert "no memory preset fits" in msg  # the presets are for 24 GB cards and up
    assert lines and lines[0].startswith("memory plan: peak")
    assert refuse_if_over(cfg, 80.0) is plans["reference"]  # fits: the (cached) plan


def test_gpu_memory_parsing_and_cluster_types():
    assert parse_gib("24GB") == parse_gib("24GiB") == parse_gib("24") == 24.0
    with pytest.raises(ConfigError, match="--gpu-memory '24XB': expected a GPU memory size"):
        parse_gib("24XB")
    assert from_resources({"GPU": 8, "accelerator_type:A100-40G": 1}) == 40
    assert from_resources({"GPU": 2, "accelerator_type:H100": 1, "accelerator_type:L4": 1}) == 24
    assert from_resources({"CPU": 4}) is None
    assert usable(80) == pytest.approx(72.0)


def test_micro_batch_auto_keeps_the_global_batch():
    cfg = PbEConfig().replace(data={"resolution": 64, "batch_size": 8}, model={"bf16": True})
    peaks = {m: cached_plan(cfg.replace(data={"micro_batch": m})).peak_gib for m in (1, 2, 4)}
    assert peaks[1] < peaks[2] < peaks[4]
    limit = (peaks[2] + peaks[4]) / 2 / 0.9  # micro-batch 2 fits, 4 does not
    micro, plan = largest_micro_batch(cfg, limit)
    assert micro == 2 and plan.peak_gib == peaks[2]
    bp = cfg.replace(data={"micro_batch": micro}).batch_plan()
    assert (bp.global_batch, bp.micro_batch, bp.accumulation) == (8, 2, 4)
    with pytest.raises(ConfigError, match="not even a micro-batch of 1 fits"):
        largest_micro_batch(cfg, peaks[1] / 2)


def test_a_gpu_job_records_its_plan_and_a_cpu_job_says_why_not(tmp_path, plans):
    from doodleflow.training.memplan.record import plan_for_job
    from doodleflow.training.runs.rundir import RunDir

    run, lines = RunDir(str(tmp_path), "editlora", "r1"), []
    base = PDConfig.for_stage("editlora", "tiny")
    assert plan_for_job(base, run, lines.append, dict) is None and "not planned" in lines[-1]
    assert run.read_json("memory_plan.json") is None
    # a remote cluster: the limit is its accelerator type's memory
    remote = base.replace(run={"use_gpu": True}, launch={"ray_address": "ray://head:10001"})
    rec = plan_for_job(remote, run, lines.append, lambda: {"GPU": 4, "accelerator_type:L4": 1})
    assert rec["gpu_memory_gib"] == 24 and rec["peak_gib"] == plans["reference"].to_dict()["peak_gib"]
    assert run.read_json("memory_plan.json")["parts_bytes"] == rec["parts_bytes"]
    assert rec["parts_bytes"]["frozen"] == plans["reference"].parts["frozen"]
    assert lines[-1].startswith("memory plan: peak") and "GPU 24 GiB" in lines[-1]
