"""Training-step throughput: samples/s and MFU of one model's full optimisation step on synthetic data.

    .venv/bin/python bench/train_step.py --model pbe            # full size on CUDA, tiny on CPU
    .venv/bin/python bench/train_step.py --model pbe --size full --batch-size 32 --json out.json

Each model contributes "cases" (e.g. PbE with and without the latent cache) measured in the same
process, so their ratio holds even on a noisy machine. Weights are random: FLOPs do not depend on
the values. MFU = measured model FLOPs per sample (FlopCounterMode, 3x the trained forward plus the
frozen encoders' forward) x samples/s / the GPU's dense bf16 peak. No Ray, no Prefect.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from doodleflow.training.core.mfu import mfu, peak_flops, peak_memory_gib

from bench.step_case import Case


# -- Paint-by-Example ------------------------------------------------------------------------------
def _pbe_trainer(size: str, resolution: int, device: torch.device, checkpointing: bool | None):
    from doodleflow.training.pbe.config import TrainConfig
    from doodleflow.training.pbe.model import PbEModel, quiet_hf
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

    quiet_hf()
    cfgs = (SD1_UNET, SD1_VAE, CLIP_L14) if size == "full" else (TINY_UNET, TINY_VAE, TINY_CLIP)
    model = PbEModel(**random_components(*cfgs))
    cfg = TrainConfig().replace(
        optim={"warmup_steps": 0},
        data={"resolution": resolution},
        model={"gradient_checkpointing": checkpointing},
    )
    return PbETrainer(model, cfg, device)


def _pbe_batch(trainer, batch_size: int, resolution: int):
    from doodleflow.training.pbe.data import PixelBatch

    g = torch.Generator().manual_seed(0)
    dev, s = trainer.device, trainer.model.clip_size
    keep = torch.ones(batch_size, 1, resolution, resolution)
    keep[:, :, resolution // 4 : 3 * resolution // 4, resolution // 4 : 3 * resolution // 4] = 0
    return PixelBatch(
        target=(torch.rand(batch_size, 3, resolution, resolution, generator=g) * 2 - 1).to(dev),
        keep=keep.to(dev),
        reference=torch.randn(batch_size, 3, s, s, generator=g).to(dev),
    )


def pbe_cases(
    size: str, batch_size: int, resolution: int, device: torch.device, checkpointing: bool | None = None
) -> list[Case]:
    """Encoding on the fly (VAE x2 + CLIP per sample) vs training from the latent cache."""
    trainer = _pbe_trainer(size, resolution, device, checkpointing)
    pixels = _pbe_batch(trainer, batch_size, resolution)
    encoded = trainer.encode(pixels)
    return [
        Case("uncached", batch_size, lambda: trainer.train_step(pixels), trainer.flops_per_sample(pixels)),
        Case(
            "latent-cache", batch_size, lambda: trainer.train_step(encoded), trainer.flops_per_sample(encoded)
        ),
    ]


def pbe_flops(size: str, resolution: int) -> dict:
    """Model FLOPs per training sample counted on the meta device (no memory, no GPU needed)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.pipelines.deprecated.paint_by_example import PaintByExampleImageEncoder
    from doodleflow.training.core.mfu import count_flops
    from doodleflow.training.pbe.model import Denoiser
    from doodleflow.training.pbe.presets import CLIP_L14, SD1_UNET, SD1_VAE, TINY_CLIP, TINY_UNET, TINY_VAE
    from transformers import CLIPVisionConfig

    unet_cfg, vae_cfg, clip_cfg = (
        (SD1_UNET, SD1_VAE, CLIP_L14) if size == "full" else (TINY_UNET, TINY_VAE, TINY_CLIP)
    )
    with torch.device("meta"):
        vae, enc = AutoencoderKL(**vae_cfg), PaintByExampleImageEncoder(CLIPVisionConfig(**clip_cfg))
        den = Denoiser(UNet2DConditionModel(**unet_cfg), enc)
        h = resolution // 2 ** (len(vae_cfg["block_out_channels"]) - 1)
        x, t = torch.zeros(1, 9, h, h), torch.ones(1, dtype=torch.long)
        img, ref = (
            torch.zeros(1, 3, resolution, resolution),
            torch.zeros(1, 3, clip_cfg["image_size"], clip_cfg["image_size"]),
        )
        denoiser = count_flops(lambda: den(x, t, torch.zeros(1, clip_cfg["hidden_size"])))
        vae_enc = count_flops(lambda: vae.encode(img))
        clip = count_flops(lambda: enc.model(pixel_values=ref))
    cached = 3 * denoiser
    return {
        "denoiser_forward": denoiser,
        "vae_encode": vae_enc,
        "clip_forward": clip,
        "train_cached": cached,
        "train_uncached": cached + 2 * vae_enc + clip,
    }


# A PhotoDoodle entry adds its own `<name>_cases(size, batch_size, resolution, device, checkpointing)`.
from bench.photodoodle_step import photodoodle_cases  # noqa: E402  (full size on CUDA: pass --batch-size 1)

MODELS: dict[str, Callable[..., list[Case]]] = {"pbe": pbe_cases, "photodoodle": photodoodle_cases}
DEFAULT_BATCH = {
    ("pbe", "full"): 32,
    ("pbe", "tiny"): 4,
    ("photodoodle", "tiny"): 1,
}  # when not searched ('auto' on CUDA)


# -- measuring -------------------------------------------------------------------------------------
def auto_batch(
    model: str, size: str, resolution: int, device: torch.device, checkpointing: bool | None
) -> int:
    """The largest power-of-two batch whose steps (every case) fit in GPU memory."""
    best = 0
    for bs in (4, 8, 16, 32, 64, 128, 256):
        cases = None
        try:
            cases = MODELS[model](size, bs, resolution, device, checkpointing)
            for c in cases:
                c.step()
            best = bs
        except torch.OutOfMemoryError:
            break
        finally:
            del cases
            torch.cuda.empty_cache()
    if not best:
        raise RuntimeError("not even batch size 4 fits on this GPU")
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(case: Case, device: torch.device, steps: int) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        case.step()
    _sync(device)
    return case.batch_size * steps / (time.perf_counter() - t0)


def measure(cases: list[Case], device: torch.device, warmup: int, steps: int, rounds: int) -> list[dict]:
    """Cases interleaved over `rounds` (shared machines drift): median samples/s per case, and the
    median of the per-round ratios to the first case."""
    for c in cases:
        for _ in range(warmup):
            c.step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sps = [[_time(c, device, steps) for c in cases] for _ in range(rounds)]
    out = []
    for i, c in enumerate(cases):
        med = statistics.median(r[i] for r in sps)
        out.append(
            {
                "case": c.name,
                "batch_size": c.batch_size,
                "samples_per_s": med,
                "step_s": c.batch_size / med,
                "vs_first": statistics.median(r[i] / r[0] for r in sps),
                "train_tflops_per_sample": c.flops_per_sample / 1e12,
                "mfu": mfu(c.flops_per_sample, med, peak_flops(device)),
                "peak_mem_gib": peak_memory_gib(device),
            }
        )
    return out


def _flops_report(model: str, size: str, resolution: int) -> int:
    if model != "pbe":
        raise SystemExit(f"--flops-only is not implemented for {model}")
    f = pbe_flops(size, resolution)
    for k, v in f.items():
        print(f"{k:>18}: {v / 1e12:.4f} TFLOP/sample")
    print(
        f"latent cache saves {1 - f['train_cached'] / f['train_uncached']:.0%} of the model FLOPs "
        f"(ideal speed-up {f['train_uncached'] / f['train_cached']:.2f}x)"
    )
    for name, peak in (("H100 SXM", 989.4e12), ("H100 PCIe", 756e12)):
        for mfu_ in (0.25, 0.40):
            print(
                f"{name} at {mfu_:.0%} MFU: {mfu_ * peak / f['train_cached']:.0f} samples/s cached, "
                f"{mfu_ * peak / f['train_uncached']:.0f} uncached"
            )
    return 0


def _print_report(out: dict, rounds: int) -> None:
    results = out["results"]
    for r in results:
        extra = (
            f" | MFU {100 * r['mfu']:.1f}% | peak {r['peak_mem_gib']:.1f} GiB" if r["mfu"] is not None else ""
        )
        print(
            f"{out['model']} {out['size']} {out['resolution']}px {r['case']:>12}: bs {r['batch_size']} | "
            f"{r['samples_per_s']:.2f} samples/s | {r['step_s'] * 1000:.0f} ms/step | "
            f"{r['train_tflops_per_sample']:.4f} TFLOP/sample{extra}"
        )
    if "speedup" in out:
        print(
            f"{results[1]['case']} / {results[0]['case']}: {out['speedup']:.2f}x samples/s on {out['device']} "
            f"(median of {rounds} interleaved rounds)"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(MODELS), required=True)
    ap.add_argument("--size", choices=["tiny", "full"], help="default: full on CUDA, tiny on CPU")
    ap.add_argument(
        "--batch-size", help="per step, or 'auto' to fill the GPU (default: auto on CUDA, 4 on CPU)"
    )
    ap.add_argument("--grad-checkpointing", choices=["on", "off"], help="default: on for CUDA, off on CPU")
    ap.add_argument("--resolution", type=int, default=512)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved repetitions; medians are reported")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument(
        "--flops-only", action="store_true", help="count model FLOPs per sample (meta device) and stop"
    )
    a = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    size = a.size or ("full" if device.type == "cuda" else "tiny")
    if a.flops_only:
        return _flops_report(a.model, size, a.resolution)
    ckpt = None if a.grad_checkpointing is None else a.grad_checkpointing == "on"
    if device.type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    bs_arg = a.batch_size or ("auto" if device.type == "cuda" else str(DEFAULT_BATCH[(a.model, size)]))
    bs = auto_batch(a.model, size, a.resolution, device, ckpt) if bs_arg == "auto" else int(bs_arg)
    cases = MODELS[a.model](size, bs, a.resolution, device, ckpt)
    results = measure(cases, device, a.warmup, a.steps, a.rounds)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU x{os.cpu_count()}"
    out = {
        "model": a.model,
        "size": size,
        "resolution": a.resolution,
        "device": name,
        "torch": torch.__version__,
        "grad_checkpointing": ckpt if ckpt is not None else device.type == "cuda",
        "results": results,
    }
    if len(results) == 2:
        out["speedup"] = results[1]["vs_first"]  # median of per-round ratios
    _print_report(out, a.rounds)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
