"""`doodleflow train pbe` and `doodleflow generate pbe`."""

from __future__ import annotations

import argparse

from doodleflow.flows.commands.common import add_json, add_store


def register(sub, groups) -> None:
    _train_parser(
        groups["train"].add_parser("pbe", help="train Paint-by-Example on a dataset version (Ray Train job)")
    )
    _generate_parser(
        groups["generate"].add_parser(
            "pbe", help="repaint a masked region with a reference (Paint-by-Example)"
        )
    )


def _train_parser(t: argparse.ArgumentParser) -> None:
    t.add_argument("--dataset", required=True)
    t.add_argument("--version", type=int, help="dataset version (default: latest)")
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
    t.add_argument("--steps", type=int, default=100)
    t.add_argument("--workers", type=int, default=1, help="Ray Train workers (0 = in-process local mode)")
    t.add_argument("--gpus", action="store_true", help="one GPU per worker; DDP over NCCL, bf16")
    t.add_argument("--resume", action="store_true", help="continue the run from its latest checkpoint")
    t.add_argument("--run-name", help="run id (default: <dataset>-v<version>-<config hash>)")
    t.add_argument("--batch-size", type=int, help="per worker (default 4)")
    t.add_argument("--lr", type=float, help="AdamW learning rate (default 1e-5)")
    t.add_argument("--warmup-steps", type=int, help="linear warm-up (default 10000)")
    t.add_argument("--resolution", type=int, help="training resolution (default 512)")
    t.add_argument("--checkpoint-every", type=int, default=50)
    t.add_argument(
        "--latent-cache",
        choices=["auto", "build", "off"],
        default="auto",
        help="auto: train from the version's latent cache when present; build: make it first",
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument(
        "--ray-address", help="join this Ray cluster (default: $RAY_ADDRESS, else start a local one)"
    )
    t.add_argument("--no-register", action="store_true", help="skip evaluation and registration")
    t.add_argument("--no-eval", action="store_true", help="register without evaluating")
    t.add_argument("--eval-samples", type=int, default=4, help="held-out samples to evaluate")
    t.add_argument("--eval-steps", type=int, default=50, help="sampler steps per evaluated sample")
    t.add_argument("--eval-clip", help="CLIP ViT-B/32 dir for the region CLIP score (default: tiny random)")
    t.add_argument("--eval-inception", help="FID Inception dir (default: tiny random)")
    add_json(t)
    t.set_defaults(func=cmd_train)


def _generate_parser(g: argparse.ArgumentParser) -> None:
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--checkpoint", help="run checkpoint URI (.../checkpoints/step-N) or a diffusers Paint-by-Example dir"
    )
    src.add_argument("--model", help="a registered model: NAME, NAME@alias or NAME:version (sha256-verified)")
    g.add_argument("--image", required=True)
    g.add_argument("--mask", required=True, help="white = region to repaint")
    g.add_argument("--reference", required=True)
    g.add_argument("--out", required=True, help="output PNG")
    g.add_argument("--steps", type=int, default=50)
    g.add_argument("--guidance", type=float, default=5.0)
    g.add_argument("--seed", type=int, default=0)
    add_json(g)
    g.set_defaults(func=cmd_generate)


def _overrides(a: argparse.Namespace) -> dict:
    pick = {
        "optim": {"lr": a.lr, "warmup_steps": a.warmup_steps},
        "data": {"batch_size": a.batch_size, "resolution": a.resolution, "latent_cache": a.latent_cache},
        "run": {"checkpoint_every": a.checkpoint_every, "seed": a.seed},
    }
    return {s: {k: v for k, v in d.items() if v is not None} for s, d in pick.items()}


def cmd_train(a: argparse.Namespace) -> tuple[dict, str]:
    from doodleflow.flows.train_pbe import train_pbe

    r = train_pbe(
        dataset=a.dataset,
        version=a.version,
        store=a.store,
        preset=a.preset,
        pretrained=a.pretrained,
        clip=a.clip,
        init_model=a.model,
        steps=a.steps,
        workers=a.workers,
        use_gpu=a.gpus,
        resume=a.resume,
        run_name=a.run_name,
        ray_address=a.ray_address,
        config=_overrides(a),
        register_model=not a.no_register,
        evaluate=not a.no_eval,
        eval_samples=a.eval_samples,
        eval_steps=a.eval_steps,
        eval_clip=a.eval_clip,
        eval_inception=a.eval_inception,
    )
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
    from doodleflow.training.pbe.sample import generate

    checkpoint = a.checkpoint
    if a.model:  # resolve through the registry; a modified file is refused before loading
        from doodleflow.flows.commands.registry import open_registry

        checkpoint = open_registry().resolve(a.model).uri
    r = generate(checkpoint, a.image, a.mask, a.reference, a.out, a.steps, a.guidance, a.seed)
    return (
        r,
        f"wrote {r['out']} ({r['size'][0]}x{r['size'][1]}, {a.steps} steps, guidance {a.guidance}, seed {a.seed})",
    )
