"""The memory savers on the CPU (#19 item 4): an EditLoRA step's time, peak RSS, frozen-weight and
optimizer-state bytes, and how far each saver moves the training, against the reference settings
measured in the same run.

    .venv/bin/python bench/memory_savers.py                  # medium: FLUX width, 1 double + 1 single block
    .venv/bin/python bench/memory_savers.py --size tiny      # the test preset (seconds)
    .venv/bin/python bench/memory_savers.py --json out.json

Each variant runs in its own process (peak RSS is per process: VmHWM, reset with /proc/self/clear_refs
after the model is built, so it is the training steps' peak, resident weights included). The base is
saved once with random weights and loaded by the project's own path (training/photodoodle/model.py:
`load_transformer`, diffusers' TorchAoConfig for int8), the LoRA is rank 128 on PhotoDoodle's targets,
the batch is a cached one (no encoders). Accuracy: the first step's loss against the reference's (the
int8 rounding of the base), and after the steps the LoRA's distance from the reference's LoRA relative
to how far the reference moved (8-bit moments and the int8 base together).
CPU figures only: GPU step times and `max_memory_allocated` come from bench/gpu_check.py.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import doodleflow.training  # noqa: F401  (before diffusers: it quiets torchao's import)

from bench.common import machine_line, pin_one_core  # first: it sets the thread variables

VARIANTS = {  # name: (the run's memory section, model.gradient_checkpointing) (training/core/memory.py)
    "reference": ({}, None),
    "checkpointing": ({}, True),
    "int8-base": ({"quantize_base": "int8"}, None),  # turns checkpointing on (training/core/memory.py)
    "int8-base-no-ckpt": ({"quantize_base": "int8"}, "off"),  # bench only: what the config refuses
    "adamw8bit": ({"optimizer": "adamw8bit"}, None),
    "24GB-preset": ({"preset": "24GB"}, None),  # all three (its encoders: none in a cached step)
}
MEDIUM = {"num_layers": 1, "num_single_layers": 1}  # FLUX.1-dev's width, 2 of its 57 blocks
# (height, width, T5 length) of the cached batch; medium keeps the sequence short (2 x 16 image + 32 text
# tokens) so a step takes seconds on a CPU: its memory is the weights' and the optimizer's, as at
# full size with checkpointing, and the activations' share is what the GPU plan reports.
SHAPES = {"tiny": (96, 64, 32), "medium": (64, 64, 32)}


def tensor_bytes(t) -> int:
    """Bytes a tensor holds, a quantized subclass counted by its inner tensors."""
    if hasattr(t, "__tensor_flatten__") and type(t).__name__ not in ("Parameter", "Tensor"):
        attrs, _ = t.__tensor_flatten__()
        return sum(tensor_bytes(getattr(t, a)) for a in attrs)
    return t.numel() * t.element_size()


def status_mib(field: str) -> float:
    """A /proc/self/status memory line (VmHWM: peak resident, VmRSS: resident now), MiB."""
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) for x in f if x.startswith(field + ":")) / 1024


def save_base(size: str, root: str) -> str:
    import torch
    from diffusers import FluxTransformer2DModel
    from doodleflow.training.photodoodle.presets import FLUX_DEV_TRANSFORMER, TINY_TRANSFORMER

    cfg = TINY_TRANSFORMER if size == "tiny" else {**FLUX_DEV_TRANSFORMER, **MEDIUM}
    torch.manual_seed(0)
    FluxTransformer2DModel(**cfg).save_pretrained(root)
    return root


def child(variant: str, base: str, size: str, steps: int) -> dict:
    """One variant: build, reset the peak, train `steps` steps (the first untimed), report."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline
    from doodleflow.training.photodoodle.config import TrainConfig
    from doodleflow.training.photodoodle.lora import trainable_state_dict
    from doodleflow.training.photodoodle.model import PhotoDoodleModel, load_transformer, quiet_hf
    from doodleflow.training.photodoodle.presets import SCHEDULER

    from bench.photodoodle_step import _encoded

    quiet_hf()
    mem, ckpt = VARIANTS[variant]
    cfg = TrainConfig.for_stage("editlora", "tiny").replace(memory=mem, optim={"lr": 1e-3})
    cfg = cfg.replace(model={"gradient_checkpointing": None if ckpt == "off" else ckpt})
    transformer = load_transformer(base, None, cfg.savers(False).quantize_base)
    parts = dict(vae=None, text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None)
    pipe = FluxPipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER), **parts
    )
    from doodleflow.training.photodoodle.trainer import PhotoDoodleTrainer

    trainer = PhotoDoodleTrainer(PhotoDoodleModel(pipe), cfg, "cpu")
    if ckpt == "off":  # autograd then saves a dequantized copy of each weight for backward
        transformer.disable_gradient_checkpointing()
    height, width, text = SHAPES[size]
    enc = _encoded(trainer, 1, height, width, text)
    frozen = sum(tensor_bytes(p) for n, p in transformer.named_parameters() if "lora_" not in n)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM: the peak from here is the training steps'
    rss_start = status_mib("VmRSS")
    losses, times = [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        losses.append(trainer.train_step(lambda g: enc)["loss"])
        times.append(time.perf_counter() - t0)
    state = sum(
        tensor_bytes(v) for s in trainer.optimizer.state.values() for v in s.values() if torch.is_tensor(v)
    )
    lora = {k: v.float() for k, v in trainable_state_dict(transformer).items()}
    torch.save(lora, os.path.join(os.path.dirname(base), f"lora-{variant}.pt"))
    return {"variant": variant, "savers": trainer.savers.__dict__, "step_s": sorted(times[1:])[len(times[1:]) // 2],
            "peak_rss_mib": status_mib("VmHWM"), "rss_start_mib": rss_start, "frozen_mib": frozen / 2**20, "optimizer_state_mib": state / 2**20,
            "losses": losses}  # fmt: skip


def lora_drift(root: str, variant: str, start: dict) -> float:
    """|LoRA_variant - LoRA_reference| / |LoRA_reference - LoRA_start| after the same steps."""
    import torch

    ref = torch.load(os.path.join(root, "lora-reference.pt"), weights_only=True)
    got = torch.load(os.path.join(root, f"lora-{variant}.pt"), weights_only=True)
    num = sum(float((got[k] - ref[k]).pow(2).sum()) for k in ref) ** 0.5
    den = sum(float((ref[k] - start[k]).pow(2).sum()) for k in ref) ** 0.5
    return num / den


def initial_lora(base: str) -> dict:
    """The LoRA's seeded init (the same in every variant: add_lora draws it from the run's seed)."""
    from diffusers import FluxTransformer2DModel
    from doodleflow.training.photodoodle.config import LoraSettings
    from doodleflow.training.photodoodle.lora import add_lora, trainable_state_dict

    t = FluxTransformer2DModel.from_pretrained(base)
    add_lora(t, LoraSettings(), seed=0)
    return {k: v.float() for k, v in trainable_state_dict(t).items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=("tiny", "medium"), default="medium")
    ap.add_argument("--steps", type=int, default=4, help="steps per variant (the first is not timed)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--base", help=argparse.SUPPRESS)
    a = ap.parse_args()
    pin_one_core()
    if a.child:
        print(json.dumps(child(a.child, a.base, a.size, a.steps)))
        return
    import torch

    print(machine_line({"torch": torch.__version__}))
    with tempfile.TemporaryDirectory() as root:
        base = save_base(a.size, os.path.join(root, "base"))
        rows = []
        for v in VARIANTS:
            cmd = [
                sys.executable,
                __file__,
                "--child",
                v,
                "--base",
                base,
                "--size",
                a.size,
                "--steps",
                str(a.steps),
            ]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(f"  {v}: done", flush=True)
        start = initial_lora(base)
        for r in rows:
            r["lora_drift"] = lora_drift(root, r["variant"], start)
    report(rows, a.size, a.steps)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


def report(rows: list[dict], size: str, steps: int) -> None:
    ref = rows[0]
    print(f"EditLoRA step on the CPU, {size} FLUX, rank 128, {steps} steps per variant; ratios vs reference")
    print("| variant | step s | x ref | RSS before steps MiB | peak RSS MiB | peak growth MiB | frozen MiB | "
          "optimizer MiB | first-loss rel. diff | LoRA drift |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        d = abs(r["losses"][0] - ref["losses"][0]) / abs(ref["losses"][0])
        print(f"| {r['variant']} | {r['step_s']:.3f} | {r['step_s'] / ref['step_s']:.2f} | {r['rss_start_mib']:.0f} | "
              f"{r['peak_rss_mib']:.0f} | {r['peak_rss_mib'] - r['rss_start_mib']:.0f} | {r['frozen_mib']:.1f} | "
              f"{r['optimizer_state_mib']:.1f} | {d:.2e} | {r['lora_drift']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
