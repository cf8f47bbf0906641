"""The `evaluate` flow (`doodleflow eval`): score a registered model on a dataset version's held-out split."""

from __future__ import annotations

import json
import os
from dataclasses import replace

from doodleflow.data.fsutil import filesystem
from doodleflow.flows import runtime
from doodleflow.flows.registration import eval_outputs
from doodleflow.infra.errors import ConfigError
from doodleflow.infra.settings import resolve_store
from doodleflow.tasks.evaluation import evaluate_doodle, evaluate_pbe
from doodleflow.training.eval.spec import EvalSpec
from prefect import flow


def _lora_card(uri: str) -> dict:
    from doodleflow.training.photodoodle.artifacts import LORA_CARD
    from doodleflow.training.photodoodle.lora import WEIGHT_NAME

    fs, path = filesystem(uri)
    card = json.loads(fs.cat_file(f"{path}/{LORA_CARD}"))
    return {**card, "dir": uri, "uri": f"{uri.rstrip('/')}/{card.get('weight_name', WEIGHT_NAME)}"}


@flow(name="evaluate")
def evaluate_model(
    model: str,
    dataset: str | None = None,
    version: int | None = None,
    store: str | None = None,
    samples: int = 4,
    steps: int | None = None,
    clip: str | None = None,
    inception: str | None = None,
    gmm: str | None = None,
) -> dict:
    """`model` is a registry reference; the dataset defaults to the one the model was trained on."""
    from doodleflow.training.registry import Registry

    reg = Registry(home=runtime.home()).resolve(model)  # verifies every file's sha256
    trained_on = reg.lineage.get("dataset") or {}
    store = resolve_store(store or trained_on.get("store"))
    dataset = dataset or trained_on.get("name")
    if not dataset:
        raise ConfigError(f"{model}: no dataset recorded; pass --dataset")
    if reg.kind not in ("pbe-checkpoint", "editlora"):
        raise ConfigError(
            f"{model} is a {reg.kind}: evaluation applies to pbe-checkpoint and editlora models"
        )
    with eval_outputs(store, f"eval/registered/{reg.name}/v{reg.version}/{dataset}") as out:
        spec = EvalSpec(store, dataset, version, samples, clip_dir=clip, inception_dir=inception, gmm=gmm)
        if reg.kind == "pbe-checkpoint":
            res = evaluate_pbe(reg.uri, replace(spec, steps=steps or 50), out["dir"])
        else:
            res = evaluate_doodle(_lora_card(reg.uri), replace(spec, steps=steps or 20), out["dir"])
    grid = f"{out['uri']}/{os.path.basename(res['grid'])}"
    return {
        "model": f"{reg.name}:{reg.version}",
        "kind": reg.kind,
        **res,
        "grid": grid,
        "eval_dir": out["uri"],
    }
