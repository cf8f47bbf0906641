"""`doodleflow fetch openimages`: OpenImages annotation files and verified images, laid out for `refresh`."""

from __future__ import annotations

import argparse
import os

from doodleflow.flows.commands.common import add_json, add_store, at_least


def register(sub, groups) -> None:
    f = sub.add_parser("fetch", help="download a public dataset into the layout refresh reads")
    targets = f.add_subparsers(dest="target", required=True)
    o = targets.add_parser(
        "openimages", help="OpenImages boxable annotations and images, every image verified (size and MD5)"
    )
    o.add_argument("--dest", required=True, help="local directory: becomes `refresh --source DEST`")
    o.add_argument(
        "--split", default="train", choices=("train", "validation", "test"), help="OpenImages subset"
    )
    o.add_argument(
        "--from",
        dest="images_from",
        default="s3://open-images-dataset",
        help="images: s3://bucket[/prefix] or a local directory holding <split>/<ImageID>.jpg",
    )
    o.add_argument(
        "--annotations",
        help="mirror of the annotation files (s3://, https:// or a directory; "
        "default: the official https files)",
    )
    o.add_argument("--classes", help="only images with a box of these classes: comma-separated names or MIDs")
    o.add_argument(
        "--limit", type=int, help="at most N images: the N smallest ImageIDs (a deterministic sample)"
    )
    o.add_argument("--absent", metavar="DATASET", help="the images absent from DATASET's latest version")
    add_store(o)
    o.add_argument(
        "--verify",
        default="auto",
        choices=("auto", "index", "etag"),
        help="check each image against the index's OriginalSize/OriginalMD5 (index) or the "
        "object's own size and ETag (etag); auto: etag for the public bucket (its copies are "
        "rescaled), index for a mirror",
    )
    o.add_argument(
        "--anonymous",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="unsigned S3 requests (default: yes for the public bucket or without credentials)",
    )
    o.add_argument("--threads", type=int, default=16, help="downloads in flight per worker")
    o.add_argument("--retries", type=int, default=2, help="retries of a failed or mismatching download")
    o.add_argument("--workers", type=int, help="local pool size (default: all cores)")
    o.add_argument(
        "--ray-address", help="run chunks on Ray: address, 'auto' or 'local' (default: $RAY_ADDRESS)"
    )
    add_json(o)
    o.set_defaults(func=cmd_fetch_openimages)


def check_fetch(a: argparse.Namespace):
    """Every argument checked before anything starts (one line, exit 2); returns the fetch's config."""
    from doodleflow.data.names import validate_name
    from doodleflow.data.oi_fetch import FetchConfig
    from doodleflow.data.oi_remote import check_uri
    from doodleflow.infra.errors import ConfigError
    from doodleflow.infra.settings import resolve_store

    at_least(a.workers, 1, "--workers")
    check_uri(a.images_from, "--from")
    if a.annotations:
        check_uri(a.annotations, "--annotations")
    if a.absent:
        validate_name(a.absent, "dataset name")
    classes = tuple(c.strip() for c in (a.classes or "").split(",") if c.strip())
    if a.classes is not None and not classes:
        raise ConfigError("--classes: no class given")
    cfg = FetchConfig(
        dest=os.path.abspath(a.dest),
        split=a.split,
        images_from=a.images_from,
        annotations_from=a.annotations,
        classes=classes,
        limit=a.limit,
        absent=a.absent,
        store=a.store,
        verify=a.verify,
        anonymous=a.anonymous,
        threads=a.threads,
        retries=a.retries,
    )
    store = resolve_store(a.store)
    if a.absent:
        from doodleflow.data.store import DatasetStore
        from doodleflow.infra.errors import NotFoundError

        if DatasetStore(store, a.absent).latest() is None:
            raise NotFoundError(
                f"--absent {a.absent}: no such dataset in {store} (`doodleflow datasets` lists them)"
            )
    return cfg


def cmd_fetch_openimages(a: argparse.Namespace) -> tuple[dict, str]:
    cfg = check_fetch(a)
    from doodleflow.flows import prefect_api

    prefect_api.start()
    from doodleflow.flows.fetch_openimages import _text, fetch_openimages
    from doodleflow.flows.task_runners import make_task_runner

    s = fetch_openimages.with_options(task_runner=make_task_runner(a.workers, a.ray_address))(cfg.to_dict())
    return s, "\n".join(
        [_text(s), f"  report: {s['report']}", f"  next: doodleflow refresh --source {s['dest']}"]
    )
