"""`doodleflow inspect`: put a dataset version into FiftyOne and open the App."""

from __future__ import annotations

import argparse

from doodleflow.flows.commands.common import add_dataset, add_json, add_store


def register(sub, groups) -> None:
    p = sub.add_parser("inspect", help="build or update the FiftyOne dataset of a version and launch the App")
    add_dataset(p, required=True, help="dataset to inspect")
    p.add_argument("--version", help="version number (default: the latest)")
    add_store(p)
    p.add_argument("--port", type=int, default=5151, help="port of the FiftyOne App")
    p.add_argument("--address", default="127.0.0.1", help="where the App listens (0.0.0.0 to share)")
    p.add_argument("--no-launch", action="store_true", help="build or update only")
    p.add_argument(
        "--predictions",
        metavar="MODEL",
        help="add an `output` slice made by a registered PbE model "
        "(NAME, NAME@alias, NAME:version) on the held-out split, scored per sample",
    )
    p.add_argument("--samples", type=int, default=8, help="held-out samples to predict (with --predictions)")
    p.add_argument("--steps", type=int, default=50, help="sampler steps (with --predictions)")
    add_json(p)
    p.set_defaults(func=cmd_inspect)


def cmd_inspect(a: argparse.Namespace):
    from doodleflow.data.names import validate_name
    from doodleflow.data.store import DatasetStore
    from doodleflow.infra import settings
    from doodleflow.infra.settings import resolve_store
    from doodleflow.training.registry.refs import parse_ref

    validate_name(a.dataset, "dataset name")  # before FiftyOne's database starts
    DatasetStore(resolve_store(a.store), a.dataset).resolve(a.version)  # NotFoundError if absent
    if a.predictions:
        parse_ref(a.predictions)
    from doodleflow.data.inspection.fo_build import sync_version

    out = sync_version(
        resolve_store(a.store),
        a.dataset,
        a.version,
        settings.home(),
        log=lambda m: print(f"fiftyone: {m}", flush=True),
    )
    if a.predictions:
        from doodleflow.training.eval.fo_predictions import add_predictions

        out["predictions"] = add_predictions(
            resolve_store(a.store),
            a.dataset,
            out["version"],
            a.predictions,
            settings.home(),
            a.samples,
            a.steps,
        )
    text = (
        f"FiftyOne dataset {out['name']}: {out['samples']} samples ({out['added']} added, {out['removed']} "
        f"removed), {out['quarantined']} quarantined rows in the saved view 'quarantined'"
    )
    if a.no_launch:
        return out, text
    import fiftyone as fo

    session = fo.launch_app(fo.load_dataset(out["name"]), remote=True, port=a.port, address=a.address)
    out["url"] = f"http://{a.address}:{a.port}/datasets/{out['name']}"
    text += f"\nFiftyOne App: {out['url']}  (Ctrl-C to stop)"
    return out, text, session.wait
