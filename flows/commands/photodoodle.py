"""`doodleflow ingest pairs | train omnieditor | train artist | train artists | generate doodle`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from doodleflow.flows.commands.common import add_json, add_store, at_least, check_source_and_names, json_safe
from doodleflow.flows.commands.options import DefaultsHelp, Opt, add_options, overrides
from doodleflow.flows.commands.sizing import (
    GPU_MEMORY,
    OPTIMIZER,
    auto_micro_batch,
    micro_batch_arg,
    pop_auto,
)
from doodleflow.infra.errors import ConfigError
from doodleflow.training.core.memory import ENCODER_PLACES, MEMORY_PRESETS, QUANTIZE_BASE
from doodleflow.training.photodoodle.config import PLAIN_BASE, TrainConfig, artist_names
from doodleflow.training.registry.refs import EDITLORA, MERGED_BASE


def register(sub, groups) -> None:
    _ingest_parser(sub)
    _train_parsers(groups["train"])
    _doodle_parser(groups["generate"])


def _ingest_parser(sub) -> None:
    ingest = sub.add_parser("ingest", help="turn source data into a versioned dataset")
    isub = ingest.add_subparsers(dest="target", required=True)
    p = isub.add_parser("pairs", help="PhotoDoodle editing pairs -> a versioned Parquet pair dataset")
    p.add_argument(
        "--source", required=True, help="folder with <style>/meta.jsonl, or N.jpg / N_blend.jpg + captions"
    )
    p.add_argument("--dataset", required=True, help="pair dataset to write a new version of")
    p.add_argument("--artist", help="artist/style of every pair (default: the style folder's name)")
    p.add_argument("--trigger", help="trigger word (default: the captions' sks... word, else the artist)")
    p.add_argument("--pairs-per-shard", type=int, default=64, help="pairs per Parquet part")
    add_store(p)
    add_json(p)
    p.set_defaults(func=cmd_ingest_pairs)


def _train_parsers(train) -> None:
    o = train.add_parser(
        "omnieditor",
        help="PhotoDoodle stage 1: OmniEditor LoRA on Ray Train, then merge",
        formatter_class=DefaultsHelp,
    )
    o.add_argument("--dataset", required=True, help="a general editing-pair dataset (its name in the store)")
    _train_args(o)
    add_options(o, OMNIEDITOR_OPTIONS, TrainConfig.for_stage("omnieditor"))
    o.add_argument("--no-merge", action="store_true", help="skip fusing the LoRA into a new EditLoRA base")
    o.set_defaults(func=cmd_train_omnieditor)

    a = train.add_parser(
        "artist", help="PhotoDoodle stage 2: one artist's EditLoRA", formatter_class=DefaultsHelp
    )
    a.add_argument("--artist", required=True, help="whose EditLoRA (a name: letters, digits, '_', '-', '.')")
    a.add_argument("--dataset", help="pair dataset (default: the one named after the artist)")
    _train_args(a)
    _base_arg(a)
    add_options(a, EVAL_OPTIONS, TrainConfig.for_stage("editlora"))
    a.set_defaults(func=cmd_train_artist)

    m = train.add_parser(
        "artists",
        help="EditLoRAs of several artists, in parallel (one Ray job each)",
        formatter_class=DefaultsHelp,
    )
    m.add_argument("--artists", required=True, help="comma-separated artist names")
    m.add_argument(
        "--dataset", help="one dataset holding every artist's pairs (default: one dataset per artist)"
    )
    _train_args(m)
    _base_arg(m)
    add_options(m, ARTISTS_OPTIONS + EVAL_OPTIONS, TrainConfig.for_stage("editlora"))
    m.set_defaults(func=cmd_train_artists)


def _doodle_parser(generate) -> None:
    g = generate.add_parser("doodle", help="edit an image with an artist's EditLoRA")
    g.add_argument("--artist", help="use the artist's newest LoRA (or --run's)")
    g.add_argument(
        "--model", help="a registered EditLoRA: NAME, NAME@alias or NAME:version (sha256-verified)"
    )
    g.add_argument("--image", required=True, help="the photo to edit")
    g.add_argument(
        "--prompt", required=True, help="the edit; the artist's trigger word is appended if missing"
    )
    g.add_argument(
        "--out", required=True, help="output image; the format follows the suffix (.png, .jpg, .webp)"
    )
    g.add_argument("--steps", type=int, default=20, help="sampler steps")
    g.add_argument("--guidance", type=float, default=3.5, help="FLUX guidance (distilled, no true CFG)")
    g.add_argument("--seed", type=int, default=0, help="seed of the initial noise")
    g.add_argument("--run", help="a specific training run of the artist (default: the newest)")
    g.add_argument(
        "--height",
        type=int,
        help="output height, rounded to a multiple of 16 (default: the photo's aspect "
        "at the LoRA's pixel budget; only --width given: the photo's aspect)",
    )
    g.add_argument("--width", type=int, help="output width, rounded to a multiple of 16 (as --height)")
    g.add_argument(
        "--quantize-base",
        choices=QUANTIZE_BASE,
        default="none",
        help="frozen FLUX weights weight-only quantized (int8 anywhere; fp8: CUDA sm89+; nf4: bitsandbytes)",
    )
    add_store(g)
    add_json(g)
    g.set_defaults(func=cmd_generate_doodle)


TRAIN_OPTIONS = [
    Opt(
        "--preset",
        "model.source.preset",
        "tiny: small random FLUX (tests, demo); flux-dev: --pretrained",
        choices=("tiny", "flux-dev"),
    ),
    Opt("--pretrained", "model.source.pretrained", "local diffusers FLUX.1-dev directory (preset flux-dev)"),
    Opt("--steps", "run.steps", "optimizer steps to train to (a resumed run continues to this count)", int),
    Opt("--workers", "run.workers", "Ray Train workers (DDP) per job", int),
    Opt("--gpus", "run.use_gpu", "one GPU per worker; DDP over NCCL, bf16 base", flag_only=True),
    Opt(
        "--cpus-per-worker",
        "launch.cpus_per_worker",
        "CPUs each worker reserves",
        float,
        derived="sized to the cluster",
    ),
    Opt("--batch-size", "data.batch_size", "global batch: all workers and accumulation steps together", int),
    Opt(
        "--micro-batch",
        "data.micro_batch",
        "pairs per worker per forward pass, or auto: the largest whose memory plan fits the GPU; "
        "gradient accumulation makes up the global batch",
        micro_batch_arg,
        derived="1",
    ),
    Opt("--lr", "optim.lr", "AdamW learning rate", float),
    Opt("--rank", "model.lora.rank", "LoRA rank (the reference trains 128)", int),
    Opt("--alpha", "model.lora.alpha", "LoRA alpha", float, derived="= rank"),
    Opt(
        "--position-mode",
        "model.condition.position_mode",
        "condition token ids: clone (PhotoDoodle), kontext (index channel 1), offset (OminiControl's shift)",
        choices=("clone", "kontext", "offset"),
    ),
    Opt(
        "--height",
        "data.height",
        "training height in pixels (a multiple of 16); with --aspect bucket, height x width is the pixel budget",
        int,
        derived="the preset's: 768 flux-dev, 96 tiny",
    ),
    Opt(
        "--width",
        "data.width",
        "training width in pixels (a multiple of 16)",
        int,
        derived="the preset's: 512 flux-dev, 64 tiny",
    ),
    Opt(
        "--aspect",
        "data.aspect",
        "bucket: each pair at the bucket nearest its aspect, --height x --width pixels; "
        "stretch: every pair resized to --height x --width (PhotoDoodle's loader)",
        choices=("bucket", "stretch"),
    ),
    Opt(
        "--checkpoint-every",
        "run.checkpoint_every",
        "steps between checkpoints",
        int,
        derived="half the steps, at most 500",
    ),
    Opt("--seed", "run.seed", "seed of every random draw (LoRA init, noise, sigmas, captions, order)", int),
    Opt("--resume", "run.resume", "continue the run from its latest checkpoint", flag_only=True),
    Opt("--run-name", "run.run_name", "run id (default: [<artist>-]<dataset>-v<version>-<config hash>)"),
    Opt(
        "--sample-every",
        "sample.every",
        "while training, edit held-out sources (and each --sample-prompt) every N steps: a grid in the run folder, MLflow and the Prefect run; 0 = off",
        int,
    ),
    Opt(
        "--ray-address",
        "launch.ray_address",
        "join this Ray cluster (default: $RAY_ADDRESS, else a local Ray)",
    ),
]
TRAIN_OPTIONS += [
    Opt(
        "--memory",
        "memory.preset",
        "memory savers for a GPU of this size (docs/training-photodoodle.md, Memory savers)",
        choices=MEMORY_PRESETS,
        derived="none: the reference settings",
    ),
    Opt(
        "--quantize-base",
        "memory.quantize_base",
        "frozen FLUX weights weight-only quantized (fp8: CUDA sm89+, nf4: bitsandbytes on CUDA)",
        choices=QUANTIZE_BASE,
        derived="the --memory preset's, else none",
    ),
    OPTIMIZER,
    Opt(
        "--encoders",
        "memory.encoders",
        "text encoders: auto (on the device only to build the cache or stream), cpu, device",
        choices=ENCODER_PLACES,
        derived="auto",
    ),
    GPU_MEMORY,
]
OMNIEDITOR_OPTIONS = [
    Opt(
        "--cache",
        "data.cache",
        "encode the pairs once (auto: sets of at most 2000 pairs)",
        choices=("auto", "on", "off"),
    ),
]
# The EditLoRA's evaluation after training (train artist / artists).
EVAL_OPTIONS = [
    Opt("--eval-samples", "publish.eval_samples", "held-out pairs to evaluate", int),
    Opt("--eval-steps", "publish.eval_steps", "sampler steps per evaluated pair", int),
    Opt("--eval-clip", "publish.eval_clip", "CLIP ViT-B/32 dir for the CLIP scores (default: tiny random)"),
]
ARTISTS_OPTIONS = [
    Opt(
        "--max-parallel",
        "launch.max_parallel",
        "at most this many artists at once",
        int,
        derived="what Ray can place",
    ),
]


def _train_args(p: argparse.ArgumentParser) -> None:
    add_options(p, TRAIN_OPTIONS, TrainConfig.for_stage("editlora"))
    p.add_argument(
        "--sample-prompt",
        action="append",
        help="an edit instruction of your own for the samples while training, applied to the first "
        "held-out source (repeatable; the trigger word is appended)",
    )
    p.add_argument("--no-register", action="store_true", help="skip evaluation and registration")
    p.add_argument("--no-eval", action="store_true", help="register without evaluating")
    add_store(p)
    add_json(p)


def _base_arg(p: argparse.ArgumentParser) -> None:
    b = p.add_mutually_exclusive_group()
    b.add_argument(
        "--base",
        help="EditLoRA base transformer: a dir/URI of a merged base, or 'flux' for the plain "
        "FLUX base (default: the newest merged OmniEditor base in the store; none is an error)",
    )
    b.add_argument(
        "--base-model",
        help="a registered merged base to fine-tune from: NAME, NAME@alias or "
        "NAME:version (sha256-verified), e.g. photodoodle-merged-base@production",
    )


def _base(a: argparse.Namespace) -> str | None:
    if not getattr(a, "base_model", None):
        base = getattr(a, "base", None)
        if base and base != PLAIN_BASE:
            from doodleflow.training.photodoodle.artifacts import transformer_dir

            return transformer_dir(base)  # a missing or wrong folder: one line, before start-up
        return base
    from doodleflow.flows.commands.registry import open_registry

    reg = open_registry(a.store).resolve(a.base_model)
    if reg.kind != MERGED_BASE:
        raise ConfigError(f"--base-model {a.base_model} is a {reg.kind}, not a merged-base")
    return f"{reg.uri.rstrip('/')}/transformer"


def train_config(a: argparse.Namespace, stage: str, extra: Sequence[Opt] = ()) -> TrainConfig:
    """The run's config from the flags (artist and dataset set by the command), checked before any
    server, pool or cluster starts; nothing is written."""
    from doodleflow.infra.settings import resolve_store

    values = overrides(a, TRAIN_OPTIONS + list(extra))
    auto = pop_auto(values)
    run = values.setdefault("run", {})
    run.update(stage=stage, store=resolve_store(a.store), dataset=a.dataset or "")
    values["model"].setdefault("source", {})["base_transformer"] = _base(a)
    values.setdefault("sample", {})["prompts"] = tuple(a.sample_prompt or ())
    values.setdefault("publish", {}).update(register=not a.no_register, evaluate=not a.no_eval)
    if stage == "omnieditor":
        values["publish"]["merge"] = not a.no_merge
    cfg = TrainConfig.from_dict(values)
    return auto_micro_batch(cfg) if auto else cfg


def preflight_run(cfg: TrainConfig, a: argparse.Namespace, opts: Sequence[Opt] = ()) -> TrainConfig:
    """One run's config, checked before start-up: its dataset holds pairs, the base it trains on
    exists, and its run id is new, or (--resume) the config is the recorded run's
    (flows/commands/runs.py)."""
    import dataclasses

    from doodleflow.flows.commands.runs import settle_run
    from doodleflow.training.photodoodle.artifacts import base_choice
    from doodleflow.training.runtime.preflight import preflight

    version = preflight(cfg, kind="photodoodle-pairs")
    src = cfg.model.source
    resume_named = cfg.run.resume and cfg.run.run_name  # its base is the recorded one
    if not resume_named and (cfg.run.stage == "editlora" or src.base_transformer):
        src = dataclasses.replace(src, base_transformer=base_choice(cfg.run.store, src)[0])
    run_id = cfg.replace(run={"version": version}, model={"source": src}).run_id()
    given: dict = {"run": {"artist": cfg.run.artist}} if getattr(a, "artist", None) else {}
    if a.dataset:
        given.setdefault("run", {})["dataset"] = cfg.run.dataset
    if getattr(a, "base", None) or getattr(a, "base_model", None):
        given["model"] = {"source": {"base_transformer": cfg.model.source.base_transformer}}
    flags = {"run.dataset": "--dataset", "run.artist": "--artist", "model.source.base_transformer": "--base"}
    opts = TRAIN_OPTIONS + list(opts)
    return settle_run(cfg, run_id, cfg.family, a, opts, given, flags, _recorded_base)


def _recorded_base(recorded: TrainConfig, record: dict) -> TrainConfig:
    """An EditLoRA recorded without a base transformer trained on the plain FLUX base: resuming it
    asks for that base again (`flux`), not for the newest merged one."""
    import dataclasses

    src = recorded.model.source
    if recorded.run.stage == "editlora" and (record.get("base") == "flux" or not src.base_transformer):
        return recorded.replace(model={"source": dataclasses.replace(src, base_transformer=PLAIN_BASE)})
    return recorded


def cmd_ingest_pairs(a: argparse.Namespace) -> tuple[dict, str]:
    check_source_and_names(a, {"dataset": "dataset name", "artist": "artist name"})
    at_least(a.pairs_per_shard, 1, "--pairs-per-shard")
    from doodleflow.flows import prefect_api

    prefect_api.start()  # arguments checked: one Prefect API for the command and its workers
    from doodleflow.flows.photodoodle_ingest import ingest_pairs

    s = ingest_pairs(
        source=a.source,
        dataset=a.dataset,
        store=a.store,
        artist=a.artist,
        trigger=a.trigger,
        pairs_per_shard=a.pairs_per_shard,
    )
    state = "new version" if s["created"] else "no change, latest version"
    text = (
        f"dataset {s['dataset']}: {state} {s['version']} with {s['pairs_total']} pairs\n  path: {s['path']}\n"
        f"  artists: {s['artists']}\n  triggers: {s['triggers']}\n  quarantined: {s['quarantined']}"
    )
    return s, text


def cmd_train_omnieditor(a: argparse.Namespace) -> tuple[dict, str]:
    cfg = preflight_run(train_config(a, "omnieditor", OMNIEDITOR_OPTIONS), a, OMNIEDITOR_OPTIONS)
    from doodleflow.flows import prefect_api

    prefect_api.start()  # arguments checked: one Prefect API for the command and its workers
    from doodleflow.flows.photodoodle import omnieditor
    from doodleflow.flows.stopping import outcome

    r = outcome(omnieditor(cfg, return_state=True))  # a stopped run raises Stopped (flows/cli.py)
    out = {k: r[k] for k in ("run_id", "lora", "steps", "final_loss", "merged_base", "run_dir")}
    text = (
        f"omnieditor run {r['run_id']}: {r['steps']} steps, final loss {r['final_loss']:.4f}\n"
        f"  lora: {r['lora']}\n  merged base: {r['merged_base']}"
    )
    return out, text


def _artist_line(name: str, o: dict) -> str:
    if o["status"] != "completed":
        return f"  {name}: FAILED {o['error']}"
    return f"  {name}: {o['steps']} steps, final loss {o['final_loss']:.4f}, lora {o['lora']}"


def cmd_train_artist(a: argparse.Namespace) -> tuple[dict, str]:
    from doodleflow.data.names import validate_name

    validate_name(a.artist, "artist name")
    cfg = train_config(a, "editlora", EVAL_OPTIONS)
    cfg = preflight_run(
        cfg.replace(run={"artist": a.artist, "dataset": a.dataset or a.artist}), a, EVAL_OPTIONS
    )
    from doodleflow.flows import prefect_api

    prefect_api.start()  # arguments checked: one Prefect API for the command and its workers
    from doodleflow.flows.photodoodle import train_artist
    from doodleflow.flows.stopping import outcome

    r = outcome(train_artist(cfg, return_state=True))  # a stopped run raises Stopped (flows/cli.py)
    o = {"status": "completed", **{k: r[k] for k in ("lora", "steps", "final_loss", "run_id")}}
    return {"artists": {a.artist: o}}, _artist_line(a.artist, o)


def cmd_train_artists(a: argparse.Namespace) -> tuple[dict, str]:
    names = artist_names(a.artists)  # bad names fail here, before Prefect or Ray start
    cfg = train_config(a, "editlora", ARTISTS_OPTIONS + EVAL_OPTIONS)
    if a.resume:
        raise ConfigError("train artists starts new runs: resume one artist's run with train artist --resume")
    for n in names:
        preflight_run(
            cfg.replace(run={"artist": n, "dataset": a.dataset or n}), a, ARTISTS_OPTIONS + EVAL_OPTIONS
        )
    from doodleflow.flows import prefect_api

    prefect_api.start()  # arguments checked: one Prefect API for the command and its workers
    from doodleflow.flows.photodoodle import ArtistsFailed, train_artists

    state = train_artists(names, cfg, return_state=True)
    res = state.result(raise_on_failure=False)
    if isinstance(res, ArtistsFailed):
        res = res.summary
    elif isinstance(res, BaseException):
        raise res  # the flow failed before any artist ran (bad input): the CLI reports it
    text = "\n".join(_artist_line(n, o) for n, o in res["artists"].items())
    if res["failed"]:
        # Still a result (the others finished): print it as usual, then exit non-zero.
        print(text)
        if a.json:
            print(json.dumps(json_safe(res), sort_keys=True, default=str, allow_nan=False))
        raise SystemExit(1)
    return res, text


def cmd_generate_doodle(a: argparse.Namespace) -> tuple[dict, str]:
    from doodleflow.infra.settings import resolve_store
    from doodleflow.training.inference.image_files import output_format, read_image

    if "://" not in a.image:  # a missing or non-image file: one line, before any model loads
        read_image(a.image, "--image")
    output_format(a.out)
    from doodleflow.training.inference.photodoodle import DoodleRequest, generate_doodle

    artist, run = a.artist, a.run
    if a.model:  # a registered EditLoRA: its files are verified, then its run is the one loaded
        from doodleflow.flows.commands.registry import open_registry

        reg = open_registry(a.store).resolve(a.model)
        if reg.kind != EDITLORA:
            raise ConfigError(f"--model {a.model} is a {reg.kind}, not an editlora")
        parts = reg.uri.rstrip("/").split("/")
        artist, run = parts[-2], parts[-1]  # <store>/loras/<artist>/<run>
    if not artist:
        raise ConfigError("give --artist or --model")
    print(f"generating with {artist}'s LoRA ...", file=sys.stderr)
    req = DoodleRequest(
        a.image, a.prompt, a.out, a.steps, a.guidance, a.seed, run, a.height, a.width, a.quantize_base
    )
    r = generate_doodle(resolve_store(a.store), artist, req)
    return (
        r,
        f"wrote {r['out']} ({r['width']}x{r['height']}, {r['steps']} steps) with {r['lora']}\n  prompt: {r['prompt']}"
        f"\n  {r['resized']}",
    )
