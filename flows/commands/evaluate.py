"""`doodleflow eval`: evaluate a registered model on its dataset's held-out split."""

from __future__ import annotations

import argparse

from doodleflow.flows.commands.common import add_json, add_store


def register(sub, groups) -> None:
    e = sub.add_parser("eval", help="evaluate a registered model (NAME, NAME@alias, NAME:version)")
    e.add_argument("--model", required=True, help="registered model: NAME, NAME@alias or NAME:version")
    e.add_argument("--dataset", help="dataset to evaluate on (default: the one the model was trained on)")
    e.add_argument("--version", type=int, help="dataset version (default: the latest)")
    add_store(e)
    e.add_argument("--samples", type=int, default=4, help="held-out samples to evaluate")
    e.add_argument("--steps", type=int, help="sampler steps (default: 50 for PbE, 20 for PhotoDoodle)")
    e.add_argument("--clip", help="CLIP dir (transformers layout; default: a tiny random CLIP)")
    e.add_argument("--inception", help="FID Inception dir (default: a tiny random one)")
    e.add_argument(
        "--gmm",
        help="PbE quality score: .npz GMM weights over the same features (weights, means, covariances)",
    )
    add_json(e)
    e.set_defaults(func=cmd_eval)


def cmd_eval(a: argparse.Namespace):
    from doodleflow.data.names import validate_name
    from doodleflow.infra.errors import ConfigError
    from doodleflow.training.registry.refs import parse_ref

    ref = parse_ref(a.model)  # arguments first: before Prefect, MLflow or torch start
    if a.dataset:
        validate_name(a.dataset, "dataset name")
    if a.samples < 1 or (a.steps is not None and a.steps < 1):
        raise ConfigError("--samples and --steps must be >= 1")
    from doodleflow.flows.commands.registry import open_registry
    from doodleflow.infra.errors import NotFoundError

    if ref.name not in {m["name"] for m in open_registry().list()}:  # light: no MLflow import
        raise NotFoundError(f"no registered model {ref.name!r} (`doodleflow registry list` shows them)")
    from doodleflow.flows import prefect_api

    prefect_api.start()  # arguments checked: one Prefect API for the command and its workers
    from doodleflow.flows.evaluate import evaluate_model
    from doodleflow.training.eval.spec import EvalSpec

    spec = EvalSpec(
        a.store,
        a.dataset,
        a.version,
        a.samples,
        a.steps,
        clip_dir=a.clip,
        inception_dir=a.inception,
        gmm=a.gmm,
    )
    r = evaluate_model(model=a.model, spec=spec)
    r.pop("per_sample", None)
    notes = "; ".join(f"{k}: {v}" for k, v in r["models"].items())
    text = (
        f"{r['model']} on {r['dataset']} v{r['version']} ({r['n']} {'held-out' if r['heldout'] else 'training'} "
        f"samples): {r['metrics']}\n  grid: {r['grid']}\n  models: {notes}"
    )
    return r, text
