"""`doodleflow ingest pairs | train omnieditor | train artist | train artists | generate doodle`."""

from __future__ import annotations

import argparse
import json
import sys

from doodleflow.flows.commands.common import add_json, add_store
from doodleflow.infra.errors import ConfigError


def register(sub, groups) -> None:
    ingest = sub.add_parser("ingest", help="turn source data into a versioned dataset")
    isub = ingest.add_subparsers(dest="target", required=True)
    p = isub.add_parser("pairs", help="PhotoDoodle editing pairs -> a versioned Parquet pair dataset")
    p.add_argument(
        "--source", required=True, help="folder with <style>/meta.jsonl, or N.jpg / N_blend.jpg + captions"
    )
    p.add_argument("--dataset", required=True)
    p.add_argument("--artist", help="artist/style of every pair (default: the style folder's name)")
    p.add_argument("--trigger", help="trigger word (default: the captions' sks... word, else the artist)")
    p.add_argument("--pairs-per-shard", type=int, default=64)
    add_store(p)
    add_json(p)
    p.set_defaults(func=cmd_ingest_pairs)

    o = groups["train"].add_parser(
        "omnieditor", help="PhotoDoodle stage 1: OmniEditor LoRA on Ray Train, then merge"
    )
    o.add_argument("--dataset", required=True, help="a general editing-pair dataset")
    _train_args(o)
    o.add_argument("--cache", choices=["auto", "on", "off"], help="encode pairs once (auto: small sets only)")
    o.add_argument("--no-merge", action="store_true", help="skip fusing the LoRA into a new EditLoRA base")
    o.set_defaults(func=cmd_train_omnieditor)

    a = groups["train"].add_parser("artist", help="PhotoDoodle stage 2: one artist's EditLoRA")
    a.add_argument("--artist", required=True)
    a.add_argument("--dataset", help="pair dataset (default: the one named after the artist)")
    _train_args(a)
    _base_arg(a)
    a.set_defaults(func=cmd_train_artist)

    m = groups["train"].add_parser(
        "artists", help="EditLoRAs of several artists, in parallel (one Ray job each)"
    )
    m.add_argument("--artists", required=True, help="comma-separated artist names")
    m.add_argument(
        "--dataset", help="one dataset holding every artist's pairs (default: one dataset per artist)"
    )
    _train_args(m)
    _base_arg(m)
    m.add_argument(
        "--max-parallel", type=int, help="at most this many artists at once (default: what Ray can place)"
    )
    m.set_defaults(func=cmd_train_artists)

    g = groups["generate"].add_parser("doodle", help="edit an image with an artist's EditLoRA")
    g.add_argument("--artist", help="use the artist's newest LoRA (or --run's)")
    g.add_argument(
        "--model", help="a registered EditLoRA: NAME, NAME@alias or NAME:version (sha256-verified)"
    )
    g.add_argument("--image", required=True)
    g.add_argument(
        "--prompt", required=True, help="the edit; the artist's trigger word is appended if missing"
    )
    g.add_argument("--out", required=True, help="output PNG")
    g.add_argument("--steps", type=int, default=20)
    g.add_argument("--guidance", type=float, default=3.5)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--run", help="a specific training run of the artist (default: the newest)")
    g.add_argument("--height", type=int, help="default: the size the LoRA was trained at")
    g.add_argument("--width", type=int)
    add_store(g)
    add_json(g)
    g.set_defaults(func=cmd_generate_doodle)


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=["tiny", "flux-dev"], default="tiny")
    p.add_argument("--pretrained", help="local diffusers FLUX.1-dev directory (preset flux-dev)")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--workers", type=int, default=1, help="Ray Train workers (DDP) per job")
    p.add_argument("--gpu", action="store_true", help="one GPU per worker")
    p.add_argument("--cpus-per-worker", type=float)
    p.add_argument("--rank", type=int, help="LoRA rank (default: 128 OmniEditor, 16 EditLoRA)")
    p.add_argument("--alpha", type=float, help="LoRA alpha (default: = rank)")
    p.add_argument("--position-mode", choices=["clone", "kontext", "offset"], default="clone")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run from its latest checkpoint")
    p.add_argument("--ray-address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    add_store(p)
    add_json(p)


def _base_arg(p: argparse.ArgumentParser) -> None:
    b = p.add_mutually_exclusive_group()
    b.add_argument("--base", help="EditLoRA base transformer: a dir/URI, or 'plain' (default: the newest merged "
                   "OmniEditor base in the store, else the plain base)")  # fmt: skip
    b.add_argument(
        "--base-model",
        help="a registered merged base to fine-tune from: NAME, NAME@alias or "
        "NAME:version (sha256-verified), e.g. photodoodle-merged-base@production",
    )


def _base(a: argparse.Namespace) -> str | None:
    if not getattr(a, "base_model", None):
        return a.base
    from doodleflow.flows.commands.registry import open_registry

    reg = open_registry().resolve(a.base_model)
    if reg.kind != "merged-base":
        raise ConfigError(f"--base-model {a.base_model} is a {reg.kind}, not a merged-base")
    return f"{reg.uri.rstrip('/')}/transformer"


def _common(a: argparse.Namespace) -> dict:
    return dict(store=a.store, preset=a.preset, pretrained=a.pretrained, steps=a.steps, rank=a.rank,
                alpha=a.alpha, position_mode=a.position_mode, workers=a.workers, use_gpu=a.gpu,
                cpus_per_worker=a.cpus_per_worker, seed=a.seed, resume=a.resume, ray_address=a.ray_address)  # fmt: skip


def cmd_ingest_pairs(a: argparse.Namespace) -> tuple[dict, str]:
    from doodleflow.flows.photodoodle_ingest import ingest_pairs

    s = ingest_pairs(source=a.source, dataset=a.dataset, store=a.store, artist=a.artist, trigger=a.trigger,
                     pairs_per_shard=a.pairs_per_shard)  # fmt: skip
    state = "new version" if s["created"] else "no change, latest version"
    text = (f"dataset {s['dataset']}: {state} {s['version']} with {s['pairs_total']} pairs\n  path: {s['path']}\n"
            f"  artists: {s['artists']}\n  triggers: {s['triggers']}\n  quarantined: {s['quarantined']}")  # fmt: skip
    return s, text


def cmd_train_omnieditor(a: argparse.Namespace) -> tuple[dict, str]:
    from doodleflow.flows.photodoodle import omnieditor

    r = omnieditor(dataset=a.dataset, cache=a.cache, merge=not a.no_merge, **_common(a))
    out = {k: r[k] for k in ("run_id", "lora", "steps", "final_loss", "merged_base", "run_dir")}
    text = (f"omnieditor run {r['run_id']}: {r['steps']} steps, final loss {r['final_loss']:.4f}\n"
            f"  lora: {r['lora']}\n  merged base: {r['merged_base']}")  # fmt: skip
    return out, text


def _artist_line(name: str, o: dict) -> str:
    if o["status"] != "completed":
        return f"  {name}: FAILED {o['error']}"
    return f"  {name}: {o['steps']} steps, final loss {o['final_loss']:.4f}, lora {o['lora']}"


def cmd_train_artist(a: argparse.Namespace) -> tuple[dict, str]:
    from doodleflow.data.names import validate_name
    from doodleflow.flows.photodoodle import train_artist

    validate_name(a.artist, "artist name")
    r = train_artist(artist=a.artist, dataset=a.dataset, base=_base(a), **_common(a))
    o = {"status": "completed", "lora": r["lora"], "steps": r["steps"], "final_loss": r["final_loss"],
         "run_id": r["run_id"]}  # fmt: skip
    return {"artists": {a.artist: o}}, _artist_line(a.artist, o)


def cmd_train_artists(a: argparse.Namespace) -> tuple[dict, str]:
    from doodleflow.flows.photodoodle import ArtistsFailed, artist_list, train_artists

    artist_list(a.artists)  # bad names fail here, before Prefect or Ray start
    state = train_artists(artists=a.artists, dataset=a.dataset, base=_base(a), max_parallel=a.max_parallel,
                          return_state=True, **_common(a))  # fmt: skip
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
            print(json.dumps(res, sort_keys=True, default=str))
        raise SystemExit(1)
    return res, text


def cmd_generate_doodle(a: argparse.Namespace) -> tuple[dict, str]:
    from doodleflow.infra.settings import resolve_store
    from doodleflow.training.photodoodle.generate import generate_doodle

    artist, run = a.artist, a.run
    if a.model:  # a registered EditLoRA: its files are verified, then its run is the one loaded
        from doodleflow.flows.commands.registry import open_registry

        reg = open_registry().resolve(a.model)
        if reg.kind != "editlora":
            raise ConfigError(f"--model {a.model} is a {reg.kind}, not an editlora")
        parts = reg.uri.rstrip("/").split("/")
        artist, run = parts[-2], parts[-1]  # <store>/loras/<artist>/<run>
    if not artist:
        raise ConfigError("give --artist or --model")
    print(f"generating with {artist}'s LoRA ...", file=sys.stderr)
    r = generate_doodle(resolve_store(a.store), artist, a.image, a.prompt, a.out, steps=a.steps,
                        guidance=a.guidance, seed=a.seed, run=run, height=a.height, width=a.width)  # fmt: skip
    return (
        r,
        f"wrote {r['out']} ({r['width']}x{r['height']}, {r['steps']} steps) with {r['lora']}\n  prompt: {r['prompt']}",
    )
