"""PhotoDoodle EditLoRA step: seconds per step, MFU and peak memory on synthetic, already-encoded pairs.

    .venv/bin/python bench/photodoodle_step.py                      # full size on CUDA, tiny on CPU
    .venv/bin/python bench/photodoodle_step.py --rank 128 --json out.json
    .venv/bin/python bench/photodoodle_step.py --flops-only         # full-size FLOPs on the meta device
    .venv/bin/python bench/train_step.py --model photodoodle --batch-size 1

What is timed is what a cached EditLoRA step runs (training/photodoodle/trainer.py): the FLUX
transformer on [noisy target tokens | clean condition tokens] + T5/CLIP text, flow-matching loss on
the target tokens, backward into the LoRA, clip, AdamW. Full size = FLUX.1-dev's transformer with
random weights (FLOPs do not depend on the values), bf16 base, fp32 LoRA, at 512x768 (w x h):
2 x 1536 image tokens + 512 T5 tokens. MFU = counted model FLOPs per step (FlopCounterMode, forward +
backward, ~2x forward for a LoRA on a frozen base) x steps/s / the GPU's dense bf16 peak. No Ray, no
Prefect, no VAE or T5 weights (the cache replaces them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from doodleflow.training.core.mfu import count_flops, mfu, peak_flops, peak_memory_gib


def _transformer(size: str, device: torch.device):
    """The transformer built in place: full size directly in bf16 on the GPU (23.8 GB, no fp32 copy)."""
    from diffusers import FluxTransformer2DModel
    from doodleflow.training.photodoodle.presets import FLUX_DEV_TRANSFORMER, TINY_TRANSFORMER

    cfg = FLUX_DEV_TRANSFORMER if size == "full" else TINY_TRANSFORMER
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    prev = torch.get_default_dtype()
    torch.manual_seed(0)
    try:
        torch.set_default_dtype(dtype)
        with torch.device(device):
            return FluxTransformer2DModel(**cfg)
    finally:
        torch.set_default_dtype(prev)


def _trainer(size: str, device: torch.device, rank: int, checkpointing: bool, height: int, width: int):
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline
    from doodleflow.training.photodoodle.config import TrainConfig
    from doodleflow.training.photodoodle.model import PhotoDoodleModel, quiet_hf
    from doodleflow.training.photodoodle.presets import SCHEDULER
    from doodleflow.training.photodoodle.trainer import PhotoDoodleTrainer

    quiet_hf()
    parts = dict(vae=None, text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None)
    pipe = FluxPipeline(
        transformer=_transformer(size, device),
        scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER),
        **parts,
    )
    # pretrained only names the weights for the config; nothing is loaded from it here
    cfg = TrainConfig.for_stage(
        "editlora", "flux-dev" if size == "full" else "tiny", pretrained="random-weights"
    )
    cfg = cfg.replace(model={"lora": cfg.model.lora.__class__(rank=rank, alpha=float(rank)),
                             "gradient_checkpointing": checkpointing}, data={"height": height, "width": width})  # fmt: skip
    return PhotoDoodleTrainer(PhotoDoodleModel(pipe), cfg, device)


def _encoded(trainer, batch_size: int, height: int, width: int, text_len: int):
    """Random latents and text embeddings of the shapes the cache serves."""
    from doodleflow.training.photodoodle.forward import TextCondition
    from doodleflow.training.photodoodle.loss import EncodedBatch

    c = trainer.model.transformer.config
    g = torch.Generator().manual_seed(0)
    h, w = height // 8, width // 8
    dev = trainer.device

    def r(*shape):
        return torch.randn(*shape, generator=g).to(dev)

    text = TextCondition(
        r(batch_size, text_len, c.joint_attention_dim), r(batch_size, c.pooled_projection_dim)
    )
    return EncodedBatch(r(batch_size, 16, h, w), r(batch_size, 16, h, w), text)


def photodoodle_cases(size: str, batch_size: int, resolution: int, device: torch.device,
                      checkpointing: bool | None = None, rank: int | None = None) -> list:  # fmt: skip
    """bench/train_step.py's model entry. `resolution` is the width; the height is 1.5x (the
    reference's 768x512 h x w); the T5 length is the preset's (512 full, 32 tiny)."""
    from doodleflow.training.photodoodle.config import PRESET_DATA, REFERENCE_RANK

    from bench.step_case import Case

    width, height = resolution, resolution * 3 // 2
    text_len = PRESET_DATA["flux-dev" if size == "full" else "tiny"]["max_sequence_length"]
    trainer = _trainer(size, device, rank or REFERENCE_RANK, bool(checkpointing), height, width)
    enc = _encoded(trainer, batch_size, height, width, text_len)
    flops = trainer.flops_per_sample(enc)
    return [
        Case(
            f"editlora-r{trainer.cfg.model.lora.rank}",
            batch_size,
            lambda: trainer.train_step(lambda g: enc),
            flops,
        )
    ]


def flops_only(height: int, width: int, text_len: int = 512, rank: int = 16) -> dict:
    """Full-size model FLOPs per sample on the meta device (no memory, no GPU): the transformer's
    forward on [target | condition] tokens, and forward + backward with the LoRA as trained."""
    from diffusers import FluxTransformer2DModel
    from doodleflow.training.photodoodle.config import ConditionConfig, LoraSettings
    from doodleflow.training.photodoodle.forward import TextCondition, predict
    from doodleflow.training.photodoodle.lora import add_lora
    from doodleflow.training.photodoodle.presets import FLUX_DEV_TRANSFORMER
    from doodleflow.training.photodoodle.tokens import sequence_ids

    h, w = height // 8, width // 8
    n = (h // 2) * (w // 2)
    with torch.device("meta"):
        tr = FluxTransformer2DModel(**FLUX_DEV_TRANSFORMER)
        add_lora(tr, LoraSettings(rank=rank, alpha=float(rank)))
        x = torch.zeros(1, 2 * n, 64)
        text = TextCondition(torch.zeros(1, text_len, 4096), torch.zeros(1, 768))
        ids = sequence_ids(h, w, ConditionConfig())
        sigma = torch.ones(1)
        fwd = count_flops(lambda: predict(tr, x, sigma, text, ids, 1.0))
        train = count_flops(
            lambda: predict(tr, x, sigma, text, ids, 1.0)[:, :n].float().pow(2).mean().backward()
        )
    return {"image_tokens": 2 * n, "text_tokens": text_len, "forward_tflops": fwd / 1e12, "train_tflops": train / 1e12,
            "lora_rank": rank}  # fmt: skip


def _time_steps(step, device: torch.device, steps: int) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t0) / steps


def run(a: argparse.Namespace, device: torch.device) -> dict:
    size = a.size or ("full" if device.type == "cuda" else "tiny")
    ckpt = a.grad_checkpointing == "on"
    [case] = photodoodle_cases(size, a.batch_size, a.width, device, ckpt, a.rank)
    for _ in range(a.warmup):
        case.step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = [_time_steps(case.step, device, a.steps) for _ in range(a.rounds)]
    s = statistics.median(times)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU x{os.cpu_count()}"
    return {"model": "photodoodle-editlora", "size": size, "device": name, "torch": torch.__version__,
            "width": a.width, "height": a.width * 3 // 2, "batch_size": a.batch_size, "lora": case.name,
            "grad_checkpointing": ckpt, "s_per_step": s, "steps_per_round": a.steps, "rounds": a.rounds,
            "train_tflops_per_step": case.flops_per_sample * a.batch_size / 1e12,
            "mfu": mfu(case.flops_per_sample, a.batch_size / s, peak_flops(device)),
            "peak_mem_gib": peak_memory_gib(device)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=["tiny", "full"], help="default: full on CUDA, tiny on CPU")
    ap.add_argument("--width", type=int, default=512, help="image width; height is 1.5x (512x768)")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--rank", type=int, help="LoRA rank (default: the EditLoRA default, 16)")
    ap.add_argument("--grad-checkpointing", choices=["on", "off"], default="off")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="repetitions; the median is reported")
    ap.add_argument("--flops-only", action="store_true", help="full-size FLOPs on the meta device, then stop")
    ap.add_argument("--json", help="also write the result here")
    a = ap.parse_args(argv)
    if a.flops_only:
        out = flops_only(a.width * 3 // 2, a.width, rank=a.rank or 16)
        print(json.dumps(out, indent=2))
        return 0
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    out = run(a, device)
    mfu_txt = (
        f" | MFU {100 * out['mfu']:.1f}% | peak {out['peak_mem_gib']:.1f} GiB"
        if out["mfu"] is not None
        else ""
    )
    print(f"photodoodle {out['size']} {out['width']}x{out['height']} {out['lora']} bs {out['batch_size']}: "
          f"{out['s_per_step']:.3f} s/step | {out['train_tflops_per_step']:.4f} TFLOP/step{mfu_txt} on {out['device']}")  # fmt: skip
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
