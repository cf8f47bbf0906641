"""`doodleflow train pbe` and `doodleflow generate pbe`."""

from __future__ import annotations

import argparse
import dataclasses

from doodleflow.flows.commands.common import add_json, add_store
from doodleflow.flows.commands.options import DefaultsHelp, Opt, add_options, overrides
from doodleflow.flows.commands.sizing import (
    GPU_MEMORY,
    OPTIMIZER,
    auto_micro_batch,
    micro_batch_arg,
    pop_auto,
)
from doodleflow.infra.errors import ConfigError
from doodleflow.training.core.memory import MEMORY_PRESETS
from doodleflow.training.pbe.config import ModelSource, TrainConfig, model_source
from doodleflow.training.registry.refs import PBE_CHECKPOINT


def register(sub, groups) -> None:
    _train_parser(
        groups["train"].add_parser(
            "pbe",
            help="train Paint-by-Example on a dataset version (Ray Train job)",
            formatter_class=DefaultsHelp,
        )
    )
    _generate_parser(
        groups["generate"].add_parser(
            "pbe",
            help="repaint a masked region with a reference (Paint-by-Example)",
            formatter_class=DefaultsHelp,
        )
    )


TRAIN_OPTIONS = [
    Opt("--version", "run.version", "dataset version (0 = the latest)", int),
    Opt("--steps", "run.steps", "optimizer steps to train to (a resumed run continues to this count)", int),
    Opt("--workers", "run.workers", "Ray Train workers, DDP (0 = in-process local mode)", int),
    Opt("--gpus", "run.use_gpu", "one GPU per worker; DDP over NCCL, bf16", flag_only=True),
    Opt("--resume", "run.resume", "continue the run from its latest checkpoint", flag_only=True),
    Opt("--run-name", "run.run_name", "run id (default: <dataset>-v<version>-<config hash>)"),
    Opt("--batch-size", "data.batch_size", "global batch: all workers and accumulation steps together", int),
    Opt(
        "--micro-batch",
        "data.micro_batch",
        "samples per worker per forward pass, or auto: the largest whose memory plan fits the GPU; "
        "gradient accumulation makes up the global batch",
        micro_batch_arg,
        derived="the largest divisor of batch/workers up to 4",
    ),
    Opt("--lr", "optim.lr", "AdamW learning rate (not scaled by the batch)", float),
    Opt("--warmup-steps", "optim.warmup_steps", "linear LR warm-up steps", int),
    Opt("--resolution", "data.resolution", "training resolution in pixels (a multiple of 64)", int),
    Opt("--checkpoint-every", "run.checkpoint_every", "steps between checkpoints", int),
    Opt(
        "--cache",
        "data.latent_cache",
        "the version's latent cache (encoded once): auto: use it when present; on: build it first; "
        "off: encode every step (the same vocabulary as the PhotoDoodle commands' --cache)",
        choices=("auto", "on", "off"),
    ),
    Opt(
        "--sample-by",
        "data.sample_by",
        "image: each epoch one stored (box, variant) per image, as "
        "Paint-by-Example; box: every stored sample",
        choices=("image", "box"),
    ),
    Opt(
        "--seed", "run.seed", "seed of every random draw (noise, timesteps, shuffles, the tiny weights)", int
    ),
    Opt(
        "--ray-address",
        "launch.ray_address",
        "join this Ray cluster (default: $RAY_ADDRESS, else a local one)",
    ),
    Opt(
        "--sample-every",
        "sample.every",
        "while training, repaint held-out samples every N steps: "
        "a grid in the run folder, MLflow and the Prefect run; 0 = off",
        int,
    ),
    Opt("--eval-samples", "publish.eval_samples", "held-out samples to evaluate", int),
    Opt("--eval-steps", "publish.eval_steps", "sampler steps per evaluated sample", int),
    Opt(
        "--eval-clip",
        "publish.eval_clip",
        "CLIP ViT-B/32 dir for the region CLIP score (default: tiny random)",
    ),
    Opt("--eval-inception", "publish.eval_inception", "FID Inception dir (default: tiny random)"),
    Opt(
        "--eval-gmm",
        "publish.eval_gmm",
        "quality score: .npz GMM weights over the same features (default: not scored)",
    ),
    Opt(
        "--memory",
        "memory.preset",
        "memory savers for a GPU of this size (docs/training-pbe.md, Memory savers)",
        choices=MEMORY_PRESETS,
        derived="none: the reference settings",
    ),
    OPTIMIZER,
    GPU_MEMORY,
]


def _train_parser(t: argparse.ArgumentParser) -> None:
    t.add_argument(
        "--dataset", required=True, help="the Paint-by-Example dataset to train on (its name in the store)"
    )
    add_store(t)
    t.add_argument(
        "--preset",
        choices=["tiny", "sd1"],
        help="tiny: small random model (default without "
        "--pretrained); sd1: start from --pretrained (SD v1 dir) + --clip (CLIP ViT-L/14 dir)",
    )
    t.add_argument(
        "--pretrained", help="SD v1 diffusers dir (with --clip), or a Paint-by-Example diffusers dir"
    )
    t.add_argument("--clip", help="CLIP ViT-L/14 dir (transformers layout)")
    t.add_argument(
        "--model",
        help="fine-tune from a registered PbE model: NAME, NAME@alias or NAME:version (sha256-verified)",
    )
    add_options(t, TRAIN_OPTIONS, TrainConfig())
    t.add_argument("--no-register", action="store_true", help="skip evaluation and registration")
    t.add_argument("--no-eval", action="store_true", help="register without evaluating")
    add_json(t)
    t.set_defaults(func=cmd_train)


def train_config(a: argparse.Namespace) -> TrainConfig:
    """The run's config from the flags, checked against the store: refuses a bad value, name or
    reference before any server, pool or cluster starts (nothing is written)."""
    from doodleflow.infra.settings import resolve_store
    from doodleflow.training.runtime.preflight import preflight

    if a.model:
        if a.preset or a.pretrained or a.clip:
            raise ConfigError("--model fine-tunes a registered model: drop --preset/--pretrained/--clip")
        source = ModelSource(init_model=a.model)  # the flow resolves and verifies it
    else:
        source = model_source(a.preset, a.pretrained, a.clip)
    values = overrides(a, TRAIN_OPTIONS)
    auto = pop_auto(values)
    values.setdefault("run", {}).update(store=resolve_store(a.store), dataset=a.dataset)
    values.setdefault("publish", {}).update(register=not a.no_register, evaluate=not a.no_eval)
    values["model"] = {"source": dataclasses.asdict(source)}
    cfg = TrainConfig.from_dict(values)
    if auto:
        cfg = auto_micro_batch(cfg)
    version = preflight(cfg, kind="pbe-triples")
    if a.model and not a.resume:
        return cfg  # its run id depends on the registered files, resolved by the flow (which checks it)
    return _settle(cfg, cfg.replace(run={"version": version}).run_id(), a)


# The model flags, as the run records them (the source's fields).
SOURCE_FLAGS = {"kind": "--preset", "pretrained": "--pretrained", "clip": "--clip", "init_model": "--model"}


def _settle(cfg: TrainConfig, run_id: str, a: argparse.Namespace) -> TrainConfig:
    """A new run id must be free; --resume continues the recorded run (flows/commands/runs.py)."""
    from doodleflow.flows.commands.runs import settle_run

    passed = {"kind": a.preset, "pretrained": a.pretrained, "clip": a.clip, "init_model": a.model}
    given = {"run": {"dataset": a.dataset}, "model": {"source": {k: v for k, v in passed.items() if v}}}
    flags = {"run.dataset": "--dataset", **{f"model.source.{k}": f for k, f in SOURCE_FLAGS.items()}}
    return settle_run(cfg, run_id, "pbe", a, TRAIN_OPTIONS, given, flags)


def _generate_parser(g: argparse.ArgumentParser) -> None:
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--checkpoint", help="run checkpoint URI (.../checkpoints/step-N) or a diffusers Paint-by-Example dir"
    )
    src.add_argument("--model", help="a registered model: NAME, NAME@alias or NAME:version (sha256-verified)")
    g.add_argument("--image", required=True, help="the photo to edit")
    g.add_argument(
        "--mask",
        required=True,
        help="the region to repaint, the size of --image: any pixel with a channel >= 128 (white, red...) "
        "repaints; black and transparent pixels keep the photo; a mask that marks nothing is refused",
    )
    g.add_argument(
        "--resize-mask", action="store_true", help="stretch a mask of another size to the image (nearest)"
    )
    g.add_argument("--reference", required=True, help="the exemplar image to paint into the region")
    g.add_argument(
        "--out", required=True, help="output image; the format follows the suffix (.png, .jpg, .webp)"
    )
    g.add_argument(
        "--no-composite",
        action="store_true",
        help="write the model's raw output (its 512x512 square, regenerated outside the mask too) instead of "
        "the edit at the photo's size with the photo's pixels outside the mask",
    )
    g.add_argument("--steps", type=int, default=50, help="sampler (PLMS) steps")
    g.add_argument("--guidance", type=float, default=5.0, help="classifier-free guidance scale")
    g.add_argument(
        "--seed", type=int, default=0, help="seed of the initial noise: the same seed, the same image"
    )
    add_store(g)
    add_json(g)
    g.set_defaults(func=cmd_generate)


def cmd_train(a: argparse.Namespace) -> tuple[dict, str]:
    cfg = train_config(a)
    from doodleflow.flows import prefect_api

    prefect_api.start()  # arguments checked: one Prefect API for the command and its workers
    from doodleflow.flows.stopping import outcome
    from doodleflow.flows.train_pbe import train_pbe

    r = outcome(train_pbe(cfg, return_state=True))  # a stopped run raises Stopped (flows/cli.py)
    resumed = f" (resumed from step {r['resumed_from']})" if r.get("resumed_from") else ""
    loss = "n/a" if r["final_loss"] is None else f"{r['final_loss']:.4f}"
    text = (
        f"run {r['run_id']}: {r['steps']} steps, final loss {loss}{resumed}\n"
        f"  checkpoint: {r['checkpoint']}\n  metrics:    {r['metrics']}\n  loss curve: {r['loss_curve']}"
    )
    if r.get("registered"):
        reg = r["registered"]
        text += f"\n  registered: {reg['name']}:{reg['version']} (eval: {reg.get('metrics')})"
    return r, text


def cmd_generate(a: argparse.Namespace) -> tuple[dict, str]:
    from doodleflow.training.inference.pbe import generate

    checkpoint = a.checkpoint
    if a.model:  # resolve through the registry; a modified file is refused before loading
        from doodleflow.flows.commands.registry import open_registry

        reg = open_registry(a.store).resolve(a.model)
        if reg.kind != PBE_CHECKPOINT:
            raise ConfigError(f"--model {a.model} is a {reg.kind}, not a Paint-by-Example checkpoint")
        checkpoint = reg.uri
    r = generate(
        checkpoint,
        a.image,
        a.mask,
        a.reference,
        a.out,
        a.steps,
        a.guidance,
        a.seed,
        resize_mask=a.resize_mask,
        composite=not a.no_composite,
    )
    return (
        r,
        f"wrote {r['out']} ({r['size'][0]}x{r['size'][1]}, {a.steps} steps, guidance {a.guidance}, seed {a.seed})"
        f"\n  resized: {r['resized']}",
    )
