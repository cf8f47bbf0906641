"""Prefect tasks: evaluate a trained model on its dataset version's held-out split."""

from __future__ import annotations

import json
import os

from doodleflow.data.report import artifact_key
from doodleflow.infra import settings
from doodleflow.training.eval.spec import EvalSpec
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE


def _record(res: dict, out_dir: str, title: str, key: str) -> dict:
    """Log, write eval.json next to the grid, attach both to the Prefect run."""
    log = get_run_logger()
    if not res["heldout"]:
        log.warning(f"{res['dataset']} v{res['version']} holds nothing out: evaluated on training rows")
    for what, note in res["models"].items():
        log.info(f"eval {what}: {note}")
    log.info(f"eval on {res['n']} samples: {res['metrics']}")
    write_eval_json(res, out_dir)
    _report(res, title, key)
    return res


def write_eval_json(res: dict, out_dir: str) -> str:
    """eval.json beside the grid. The grid is named relative to it: the scratch folder it was drawn in
    is deleted once both are published to the store. Non-finite metrics are null (JSON has no NaN)."""
    import math

    def finite(v):
        return None if isinstance(v, float) and not math.isfinite(v) else v

    doc = {**res, "grid": os.path.basename(res["grid"])}
    doc["metrics"] = {k: finite(v) for k, v in res["metrics"].items()}
    path = os.path.join(out_dir, "eval.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=2, default=str, allow_nan=False)
    return path


def _report(res: dict, title: str, key: str) -> None:
    """The scores and the sample grid on the Prefect run (the grid inlined: artifacts hold no files)."""
    import base64

    from prefect.artifacts import create_markdown_artifact

    lines = [
        f"# {title}",
        "",
        f"{res['n']} {'held-out' if res.get('heldout') else 'training'} samples of "
        f"`{res.get('dataset')}` v{res.get('version')}",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.4g} |" for k, v in res["metrics"].items()]
    lines += ["", *(f"- {k}: {v}" for k, v in res["models"].items())]
    with open(res["grid"], "rb") as f:
        lines += ["", f"![samples](data:image/png;base64,{base64.b64encode(f.read()).decode()})"]
    create_markdown_artifact("\n".join(lines), key=artifact_key("eval", key), description=title)


@task(name="evaluate-pbe", cache_policy=NO_CACHE)
def evaluate_pbe(checkpoint: str, spec: EvalSpec, out_dir: str) -> dict:
    import torch
    from doodleflow.training.eval.models import load_eval_models
    from doodleflow.training.eval.pbe import evaluate_pbe as run_eval
    from doodleflow.training.eval.pbe import heldout_rows
    from doodleflow.training.inference.pbe import load_for_inference

    model = load_for_inference(checkpoint)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    rows, info = heldout_rows(spec.store, spec.dataset, spec.version, spec.samples)
    models = load_eval_models(settings.home(), spec.clip_dir, spec.inception_dir)
    res = run_eval(model, rows, models, out_dir, steps=spec.steps, seed=spec.seed, gmm=spec.gmm)
    res.pop("outputs")
    title = f"Paint-by-Example evaluation of {checkpoint}"
    return _record({**res, **info}, out_dir, title, f"pbe-{spec.dataset}")


@task(name="evaluate-doodle", cache_policy=NO_CACHE)
def evaluate_doodle(card: dict, spec: EvalSpec, out_dir: str) -> dict:
    import torch
    from doodleflow.training.eval.models import load_eval_models
    from doodleflow.training.eval.photodoodle import evaluate_doodle as run_eval
    from doodleflow.training.eval.photodoodle import heldout_pairs
    from doodleflow.training.inference.photodoodle import source_of
    from doodleflow.training.photodoodle.model import load_model

    cuda = torch.cuda.is_available()
    model = load_model(source_of(card), torch.bfloat16 if cuda else None).to("cuda" if cuda else "cpu")
    rows, info = heldout_pairs(spec.store, spec.dataset, spec.version, spec.samples)
    models = load_eval_models(settings.home(), spec.clip_dir)
    res = run_eval(model, card, rows, models, out_dir, steps=spec.steps, seed=spec.seed)
    return _record(
        {**res, **info},
        out_dir,
        f"PhotoDoodle evaluation of {card['uri']}",
        f"editlora-{card.get('artist') or spec.dataset}",
    )
