"""`doodleflow refresh | datasets | demo`."""

from __future__ import annotations

import argparse
import json
import os

from doodleflow.data.config import CurationConfig
from doodleflow.flows.commands.common import (
    add_dataset,
    add_json,
    add_seed,
    add_store,
    at_least,
    check_source_and_names,
)


def register(sub, groups) -> None:
    r = sub.add_parser(
        "refresh", help="OpenImages boxes -> Paint-by-Example triples, as a new dataset version"
    )
    r.add_argument("--source", required=True, help="directory or s3:// URI with the CSVs and images/")
    add_dataset(r, required=True, help="dataset to write a new version of")
    r.add_argument("--images", help="images root (default: <source>/images)")
    add_store(r)
    add_seed(r)
    # None unless given, so that a --config file's value stands; the defaults are CurationConfig's.
    r.add_argument(
        "--variants", type=int, help=f"augmented samples per box (default: {CurationConfig.variants})"
    )
    r.add_argument(
        "--samples-per-shard",
        type=int,
        help=f"samples per work unit (one Parquet part each) (default: {CurationConfig.samples_per_shard})",
    )
    r.add_argument(
        "--config",
        metavar="FILE",
        help="curation settings as a .json, .yaml or .toml file, by section as CurationConfig "
        "(data/config.py: seed, variants, boxes.min_area, sample.image_size, ...)",
    )
    r.add_argument(
        "--set",
        action="append",
        metavar="SECTION.FIELD=VALUE",
        help="one curation setting, e.g. boxes.min_area=0.05 or sample.bezier_mask_prob=0.3 "
        "(repeatable; applied after --config and the flags above)",
    )
    r.add_argument("--workers", type=int, help="local pool size (default: all cores)")
    r.add_argument(
        "--ray-address",
        help="run shards on Ray: cluster address, 'auto', or 'local' "
        "(default: $RAY_ADDRESS, else a local process pool)",
    )
    r.add_argument(
        "--fiftyone", action="store_true", help="update the version's FiftyOne dataset as the last step"
    )
    r.add_argument(
        "--require-images",
        action="store_true",
        help="quarantine the boxes of annotated images missing under the images root as missing_image "
        "(default: they are not downloaded yet, listed once per image in _absent_images.parquet)",
    )
    r.add_argument(
        "--upright",
        action="store_true",
        help="turn each image and its boxes by the image index's Rotation (OpenImages' intended "
        "orientation) before building its samples (default: the pixels as stored, as the boxes were drawn)",
    )
    add_json(r)
    r.set_defaults(func=cmd_refresh, seed=None)  # --seed given wins over --config; absent: the file's or 0

    d = sub.add_parser("datasets", help="list datasets, or the versions of one")
    d.add_argument("name", nargs="?", help="a dataset: list its versions (default: list every dataset)")
    d.add_argument("--version", help="show one version's manifest summary (a number or 'latest')")
    add_store(d)
    add_json(d)
    d.set_defaults(func=cmd_datasets)

    m = sub.add_parser("demo", help="run the main job on embedded defaults with a small bundled sample")
    m.add_argument("--images", type=int, default=24, help="synthetic images to generate")
    m.add_argument(
        "--steps", type=int, help="training steps per stage (default: PbE 20, OmniEditor and EditLoRA 6)"
    )
    add_store(m)
    add_json(m)
    m.set_defaults(func=cmd_demo)


def check_refresh(a: argparse.Namespace) -> CurationConfig:
    """Every argument checked before Prefect, a pool or Ray starts (a bad one costs < 2 s, writes
    nothing); returns the refresh's config."""
    from doodleflow.infra.errors import ConfigError

    check_source_and_names(a, {"dataset": "dataset name"})
    cfg = CurationConfig.from_dict(curation_settings(a))
    if a.workers is not None and a.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {a.workers}")
    if a.images and "://" not in a.images and not os.path.isdir(a.images):
        raise ConfigError(f"--images {a.images}: no such directory")
    _check_boxes_source(a.source, a.images)
    return cfg


def curation_settings(a: argparse.Namespace) -> dict:
    """The refresh's settings by section: the --config file, then the flags given, then each --set."""
    from doodleflow.data.config_sources import load_file, merge, parse_sets

    d = load_file(a.config) if a.config else {}
    flags = {"seed": a.seed, "variants": a.variants, "samples_per_shard": a.samples_per_shard}
    d = merge(d, {k: v for k, v in flags.items() if v is not None})
    for flag in ("require_images", "upright"):  # store_true flags: given = True, else the file's
        if getattr(a, flag):
            d[flag] = True
    return merge(d, parse_sets(a.set))


def _check_boxes_source(source: str, images: str | None) -> None:
    """The source is an OpenImages tree (the CSVs and images/); a PhotoDoodle pairs folder is named
    as one, with the command that ingests it."""
    import posixpath

    from doodleflow.data.fsutil import filesystem
    from doodleflow.data.openimages import locate_source
    from doodleflow.infra.errors import ConfigError, InputError

    try:
        locate_source(source, images)
    except InputError as e:
        fs, root = filesystem(source)
        names = [posixpath.basename(p) for p in fs.find(root, maxdepth=2)] if fs.isdir(root) else []
        if any(n == "meta.jsonl" or "_blend." in n for n in names):
            raise ConfigError(
                f"--source {source} holds PhotoDoodle editing pairs (meta.jsonl or N_blend.jpg), not "
                "OpenImages boxes: `doodleflow ingest pairs --source ... --dataset ...` makes a pair dataset"
            ) from e
        raise


def cmd_refresh(a: argparse.Namespace) -> tuple[dict, str]:
    cfg = check_refresh(a)
    from doodleflow.data.snapshot import unchanged_refresh
    from doodleflow.infra.settings import resolve_store

    # The nightly no-change case answers from the input snapshot before Prefect starts (seconds).
    s = unchanged_refresh(a.source, a.images, cfg, resolve_store(a.store), a.dataset)
    if s is not None:
        return s, _refresh_text(s)
    from doodleflow.flows import prefect_api

    prefect_api.start()  # arguments checked: one Prefect API for the command and its workers
    from doodleflow.flows.dataset_refresh import dataset_refresh
    from doodleflow.flows.task_runners import make_task_runner

    runner = make_task_runner(a.workers, a.ray_address)
    s = dataset_refresh.with_options(task_runner=runner)(
        source=a.source,
        dataset=a.dataset,
        store=a.store,
        images=a.images,
        config=cfg,
        update_fiftyone=a.fiftyone,
    )
    return s, _refresh_text(s)


def _refresh_text(s: dict) -> str:
    state = "new version" if s["created"] else "no change, latest version"
    lines = [
        f"dataset {s['dataset']}: {state} {s['version']} with {s['samples_total']} samples "
        f"({s['samples_new']} new)",
        f"  path: {s['path']}",
        f"  dropped: {s['dropped']}",
        f"  quarantined: {s['quarantined']}",
        f"  images absent (not downloaded): {s.get('images_absent', 0)}",
    ]
    return "\n".join(lines + [f"  warning: {w}" for w in s.get("warnings", [])])


def cmd_datasets(a: argparse.Namespace) -> tuple[dict, str]:
    from doodleflow.data.store import DatasetStore, list_datasets
    from doodleflow.infra.errors import NotFoundError
    from doodleflow.infra.settings import resolve_store

    store = resolve_store(a.store)
    if not a.name:
        out = {
            n: {"versions": (ds := DatasetStore(store, n)).versions(), "latest": ds.latest()}
            for n in list_datasets(store)
        }
        res: dict = {"store": store, "datasets": out}
    else:
        ds = DatasetStore(store, a.name)
        if not ds.versions():
            raise NotFoundError(f"no dataset {a.name!r} in {store} (`doodleflow datasets` lists them)")
        if a.version:
            m = ds.manifest(ds.resolve(a.version))
            keys = (
                "dataset",
                "version",
                "created_at",
                "rows_total",
                "samples_new",
                "dropped",
                "quarantined",
                "config_hash",
                "content_hash",
                "parent",
            )
            res = {k: m[k] for k in keys} | {"path": ds.uri(ds.version_path(m["version"]))}
        else:
            res = {
                "dataset": a.name,
                "versions": [
                    {
                        "version": v,
                        "rows": (m := ds.manifest(v))["rows_total"],
                        "new": m["samples_new"],
                        "created_at": m["created_at"],
                        "path": ds.uri(ds.version_path(v)),
                    }
                    for v in ds.versions()
                ],
            }
    return res, json.dumps(res, indent=2, default=str)


def cmd_demo(a: argparse.Namespace) -> tuple[dict, str]:
    check_source_and_names(a, {})
    at_least(a.images, 4, "--images")  # fewer leaves no held-out image and no full batch
    at_least(a.steps, 1, "--steps")
    from doodleflow.flows import prefect_api

    prefect_api.start()  # arguments checked: one Prefect API for the command and its workers
    from doodleflow.flows.demo import run_demo

    out = run_demo(a.store, a.images, a.steps)
    return out, out.pop("text")
