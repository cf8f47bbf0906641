"""Prefect tasks: evaluate a trained model on its dataset version's held-out split."""

from __future__ import annotations

import json
import os

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from data.report import artifact_key
from flows import runtime


def _publish(res: dict, title: str, key: str) -> None:
    """The scores and the sample grid on the Prefect run (the grid inlined: artifacts hold no files)."""
    import base64

    from prefect.artifacts import create_markdown_artifact

    lines = [f"# {title}", "", f"{res['n']} {'held-out' if res.get('heldout') else 'training'} samples of "
             f"`{res.get('dataset')}` v{res.get('version')}", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in res["metrics"].items()]
    lines += ["", *(f"- {k}: {v}" for k, v in res["models"].items())]
    with open(res["grid"], "rb") as f:
        lines += ["", f"![samples](data:image/png;base64,{base64.b64encode(f.read()).decode()})"]
    create_markdown_artifact("\n".join(lines), key=artifact_key("eval", key), description=title)


@task(name="evaluate-pbe", cache_policy=NO_CACHE)
def evaluate_pbe(checkpoint: str, store: str, dataset: str, version: int | None, out_dir: str,
                 clip_dir: str | None = None, inception_dir: str | None = None, samples: int = 8,
                 steps: int = 50, seed: int = 0, gmm: str | None = None) -> dict:
    import torch

    from training.eval.models import load_eval_models
    from training.eval.pbe import evaluate_pbe as run_eval
    from training.eval.pbe import heldout_rows
    from training.pbe.sample import load_for_inference

    log = get_run_logger()
    model = load_for_inference(checkpoint)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    rows, info = heldout_rows(store, dataset, version, samples)
    models = load_eval_models(runtime.home(), clip_dir, inception_dir)
    res = run_eval(model, rows, models, out_dir, steps=steps, seed=seed, gmm=gmm)
    res.pop("outputs")
    res.update(info)
    if not info["heldout"]:
        log.warning(f"{dataset} v{info['version']} has no held-out image: evaluated on training rows")
    for what, note in models.notes.items():
        log.info(f"eval {what}: {note}")
    with open(os.path.join(out_dir, "eval.json"), "w") as f:
        json.dump(res, f, indent=2, default=str)
    log.info(f"eval on {res['n']} held-out samples: {res['metrics']}")
    _publish(res, f"Paint-by-Example evaluation of {checkpoint}", f"pbe-{dataset}")
    return res


@task(name="evaluate-doodle", cache_policy=NO_CACHE)
def evaluate_doodle(card: dict, store: str, dataset: str, version: int | None, out_dir: str,
                    clip_dir: str | None = None, samples: int = 2, steps: int = 20, seed: int = 0) -> dict:
    import torch

    from training.eval.models import load_eval_models
    from training.eval.photodoodle import evaluate_doodle as run_eval
    from training.eval.photodoodle import heldout_pairs
    from training.photodoodle.generate import source_of
    from training.photodoodle.model import load_model

    log = get_run_logger()
    cuda = torch.cuda.is_available()
    model = load_model(source_of(card), torch.bfloat16 if cuda else None).to("cuda" if cuda else "cpu")
    rows, info = heldout_pairs(store, dataset, version, samples)
    models = load_eval_models(runtime.home(), clip_dir)
    res = run_eval(model, card, rows, models, out_dir, steps=steps, seed=seed)
    res.update(info)
    if not info["heldout"]:
        log.warning(f"{dataset} v{info['version']} holds no pair out: evaluated on training pairs")
    with open(os.path.join(out_dir, "eval.json"), "w") as f:
        json.dump(res, f, indent=2, default=str)
    log.info(f"eval on {res['n']} pairs: {res['metrics']} ({models.notes['clip']})")
    _publish(res, f"PhotoDoodle evaluation of {card['uri']}", f"editlora-{card.get('artist') or dataset}")
    return res
