"""The prepared GPU run: each family at each memory preset, speed, MFU and the measured peak next to
the memory plan. One command, no download (random full-size weights), no Ray or Prefect.

    .venv/bin/python bench/gpu_check.py --json gpu.json --markdown gpu.md   # on one GPU, <= 8 min on an H100
    .venv/bin/python bench/gpu_check.py --tiny                                # CPU, tiny models, ~1-2 min

Per family and preset (PhotoDoodle EditLoRA at 512x768 + condition tokens, T5 512, rank 128, batch
1, cached; PbE at 512 px from the latent cache, micro-batch 16): seconds per step and samples/s over
`--steps` steps after 2 warm-up steps, MFU = the trainer's own FlopCounterMode count per sample x
samples/s / the GPU's dense bf16 peak (training/core/mfu.py; at full size these are the counts in
docs/benchmarks.md: ~111 TFLOP a PhotoDoodle step, 2.391 TFLOP a cached PbE sample),
`torch.cuda.max_memory_allocated` of the timed steps, and the plan (training/memplan) of the same
config, computed in worker processes on the CPU while the GPU runs.

The PhotoDoodle base is written once to local disk (`--work`, 24 GB at full size) and each preset
loads it through the project's own `load_transformer` (a quantized preset through diffusers'
TorchAoConfig, as a training run does). The GPU machine needs diffusers and torchao beside torch:
docs/benchmarks.md, "GPU check", says how to carry them.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PRESETS = {"photodoodle": ("reference", "80GB", "48GB", "24GB"), "pbe": ("reference", "80GB", "24GB")}


def configs(family: str, preset: str, tiny: bool, flux_dir: str | None = None):
    """The run config a case trains (and plans)."""
    memory = {} if preset == "reference" else {"preset": preset}
    if family == "photodoodle":
        from doodleflow.training.photodoodle.config import TrainConfig

        cfg = TrainConfig.for_stage(
            "editlora", "tiny" if tiny else "flux-dev", pretrained=None if tiny else flux_dir or "(config)"
        )
        return cfg.replace(memory=memory, optim={"warmup_steps": 0})  # fmt: skip
    from doodleflow.training.pbe.config import ModelSource, TrainConfig

    cfg = TrainConfig()
    if not tiny:
        cfg = cfg.replace(model={"source": ModelSource(kind="pbe", pretrained="(config)")})
    micro = 2 if tiny else 16
    res = 64 if tiny else 512
    return cfg.replace(memory=memory, optim={"warmup_steps": 0}, data={"batch_size": micro, "micro_batch": micro, "resolution": res})  # fmt: skip


def plan_case(family: str, preset: str, tiny: bool) -> dict:
    """Run in a worker process: the plan of the case's config (the GPU run's plan)."""
    from doodleflow.training.memplan.plan import plan_for

    return plan_for(configs(family, preset, tiny)).to_dict()


# -- building the trainers on the device -------------------------------------------------------------
def write_flux(tiny: bool, work: str, device: torch.device) -> str:
    """A FLUX transformer dir with random weights (built on the device: fast init, no fp32 copy)."""
    from diffusers import FluxTransformer2DModel
    from doodleflow.training.photodoodle.presets import FLUX_DEV_TRANSFORMER, TINY_TRANSFORMER

    path = os.path.join(work, "flux-tiny" if tiny else "flux-dev-random")
    if os.path.exists(os.path.join(path, "config.json")):
        return path
    prev = torch.get_default_dtype()
    torch.manual_seed(0)
    try:
        torch.set_default_dtype(torch.bfloat16 if device.type == "cuda" else torch.float32)
        with torch.device(device):
            tr = FluxTransformer2DModel(**(TINY_TRANSFORMER if tiny else FLUX_DEV_TRANSFORMER))
    finally:
        torch.set_default_dtype(prev)
    tr.save_pretrained(path)
    del tr
    return path


def flux_case(cfg, flux_dir: str, device: torch.device):
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline
    from doodleflow.training.photodoodle.forward import TextCondition
    from doodleflow.training.photodoodle.loss import EncodedBatch
    from doodleflow.training.photodoodle.model import PhotoDoodleModel, load_transformer
    from doodleflow.training.photodoodle.presets import SCHEDULER
    from doodleflow.training.photodoodle.quantize import check_platform
    from doodleflow.training.photodoodle.trainer import PhotoDoodleTrainer

    kind = cfg.savers(device.type == "cuda").quantize_base
    check_platform(kind, device)
    dtype = torch.bfloat16 if device.type == "cuda" else (torch.float32 if kind == "none" else None)
    tr = load_transformer(flux_dir, dtype, kind)
    none = dict(vae=None, text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None)
    pipe = FluxPipeline(transformer=tr, scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER), **none)
    trainer = PhotoDoodleTrainer(PhotoDoodleModel(pipe), cfg, device)
    c, d = tr.config, cfg.data
    g = torch.Generator().manual_seed(0)

    def r(*shape):
        return torch.randn(*shape, generator=g).to(device)

    h, w = d.height // 8, d.width // 8
    enc = EncodedBatch(r(1, 16, h, w), r(1, 16, h, w), TextCondition(r(1, d.max_sequence_length, c.joint_attention_dim), r(1, c.pooled_projection_dim)))  # fmt: skip
    return trainer, (lambda g: enc), trainer.flops_per_sample(enc), 1


def pbe_case(cfg, tiny: bool, device: torch.device):
    from doodleflow.training.pbe.loss import EncodedBatch
    from doodleflow.training.pbe.model import PbEModel
    from doodleflow.training.pbe.presets import (
        CLIP_L14,
        SD1_UNET,
        SD1_VAE,
        TINY_CLIP,
        TINY_UNET,
        TINY_VAE,
        random_components,
    )
    from doodleflow.training.pbe.trainer import PbETrainer

    unet, vae, clip = (TINY_UNET, TINY_VAE, TINY_CLIP) if tiny else (SD1_UNET, SD1_VAE, CLIP_L14)
    with torch.device(device):
        model = PbEModel(**random_components(unet, vae, clip))
    trainer = PbETrainer(model, cfg, device)
    b, z = cfg.data.micro_batch, cfg.data.resolution // 8
    enc = EncodedBatch(torch.randn(b, 8, z, z, device=device), torch.randn(b, 8, z, z, device=device),
                       torch.ones(b, 1, z, z, device=device), torch.randn(b, clip["hidden_size"], device=device))  # fmt: skip
    return trainer, enc, trainer.flops_per_sample(enc), b


def measure(trainer, batch, samples: int, steps: int, device: torch.device) -> dict:
    for _ in range(2):
        trainer.train_step(batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    s = (time.perf_counter() - t0) / steps
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"s_per_step": s, "samples_per_s": samples / s, "max_allocated_gib": peak}


def run_case(family: str, preset: str, a, device: torch.device, flux_dir: str | None) -> dict:
    from doodleflow.training.core.mfu import mfu, peak_flops

    cfg = configs(family, preset, a.tiny, flux_dir)
    if family == "photodoodle":
        trainer, batch, flops, samples = flux_case(cfg, flux_dir, device)
    else:
        trainer, batch, flops, samples = pbe_case(cfg, a.tiny, device)
    row = {
        "family": family,
        "preset": preset,
        "micro_batch": samples,
        **measure(trainer, batch, samples, a.steps, device),
    }
    row["tflops_per_sample"] = flops / 1e12
    row["mfu"] = mfu(flops, row["samples_per_s"], peak_flops(device))
    del trainer, batch
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def markdown(rows: list[dict], device_name: str) -> str:
    head = "| device | family | preset | micro-batch | s/step | samples/s | MFU | max allocated GiB | planned GiB | planned / measured |\n|---|---|---|---|---|---|---|---|---|---|"

    def f(v, fmt):
        return "n/a" if v is None else format(v, fmt)

    lines = [
        f"| {device_name} | {r['family']} | {r['preset']} | {r['micro_batch']} | {r['s_per_step']:.3f} | {r['samples_per_s']:.2f} "
        f"| {f(r['mfu'] and 100 * r['mfu'], '.1f')} % | {f(r['max_allocated_gib'], '.3f')} | {f(r.get('planned_gib'), '.3f')} "
        f"| {f(r['max_allocated_gib'] and r.get('planned_gib') and r['planned_gib'] / r['max_allocated_gib'], '.3f')} |"
        for r in rows
    ]  # fmt: skip
    return "\n".join([head, *lines])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny models (the CPU check of this script)")
    ap.add_argument("--families", default="photodoodle,pbe")
    ap.add_argument("--presets", help="only these presets (comma-separated: reference,80GB,48GB,24GB)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--work", help="where the random FLUX base is written (default: a temp dir)")
    ap.add_argument("--no-plan", action="store_true", help="skip the plans (measurements only)")
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    a = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu" and not a.tiny:
        ap.error("full size needs a GPU: pass --tiny on a CPU")
    from doodleflow.training.core.hf import quiet_hf

    quiet_hf()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU x{os.cpu_count()}"
    only = set(a.presets.split(",")) if a.presets else None
    cases = [(f, p) for f in a.families.split(",") for p in PRESETS[f] if only is None or p in only]
    ctx = multiprocessing.get_context("spawn")
    pool = None if a.no_plan else cf.ProcessPoolExecutor(max_workers=min(4, len(cases)), mp_context=ctx)
    plans = {} if pool is None else {c: pool.submit(plan_case, *c, a.tiny) for c in cases}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        flux_dir = write_flux(a.tiny, a.work or tmp, device) if "photodoodle" in a.families else None
        for family, preset in cases:
            t0 = time.perf_counter()
            row = run_case(family, preset, a, device, flux_dir)
            print(f"{family} {preset}: {row['s_per_step']:.3f} s/step, {row['samples_per_s']:.2f} samples/s, "
                  f"max allocated {row['max_allocated_gib']} GiB ({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
            rows.append(row)
    for row in rows:
        if pool is not None:
            plan = plans[(row["family"], row["preset"])].result()
            row["planned_gib"], row["plan"] = plan["peak_gib"], plan
    if pool is not None:
        pool.shutdown()
    out = {"device": name, "torch": torch.__version__, "tiny": a.tiny, "rows": rows}
    md = markdown(rows, name)
    print(md)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2, default=str)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(md + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
