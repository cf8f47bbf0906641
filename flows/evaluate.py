"""The `evaluate` flow (`doodleflow eval`): score a registered model on a dataset version's held-out split."""

from __future__ import annotations

import json
import os

from doodleflow.data.fsutil import filesystem
from doodleflow.flows import runtime
from doodleflow.flows.registration import eval_outputs
from doodleflow.infra.errors import ConfigError
from doodleflow.infra.settings import resolve_store
from doodleflow.tasks.evaluation import evaluate_doodle, evaluate_pbe
from doodleflow.training.eval.spec import EvalSpec
from doodleflow.training.registry.refs import EDITLORA, PBE_CHECKPOINT
from prefect import flow


def _lora_card(uri: str) -> dict:
    from doodleflow.training.photodoodle.artifacts import LORA_CARD
    from doodleflow.training.photodoodle.lora import WEIGHT_NAME

    fs, path = filesystem(uri)
    card = json.loads(fs.cat_file(f"{path}/{LORA_CARD}"))
    return {**card, "dir": uri, "uri": f"{uri.rstrip('/')}/{card.get('weight_name', WEIGHT_NAME)}"}


@flow(name="evaluate")
def evaluate_model(model: str, spec: EvalSpec | None = None) -> dict:
    """`model` is a registry reference; `spec` says what to score and how, handed whole (its store and
    dataset left None: the ones the model was trained on; its steps left None: the family's)."""
    from doodleflow.training.registry import Registry

    reg = Registry(home=runtime.home()).resolve(model)  # verifies every file's sha256
    trained_on = reg.lineage.get("dataset") or {}
    spec = spec or EvalSpec()
    store = resolve_store(spec.store or trained_on.get("store"))
    dataset = spec.dataset or trained_on.get("name")
    if not dataset:
        raise ConfigError(f"{model}: no dataset recorded; pass --dataset")
    if reg.kind not in (PBE_CHECKPOINT, EDITLORA):
        raise ConfigError(
            f"{model} is a {reg.kind}: evaluation applies to {PBE_CHECKPOINT} and {EDITLORA} models"
        )
    spec = spec.with_defaults(reg.kind, store, dataset)
    with eval_outputs(store, f"eval/registered/{reg.name}/v{reg.version}/{dataset}") as out:
        if reg.kind == PBE_CHECKPOINT:
            res = evaluate_pbe(reg.uri, spec, out["dir"])
        else:
            res = evaluate_doodle(_lora_card(reg.uri), spec, out["dir"])
    grid = f"{out['uri']}/{os.path.basename(res['grid'])}"
    return {
        "model": f"{reg.name}:{reg.version}",
        "kind": reg.kind,
        **res,
        "grid": grid,
        "eval_dir": out["uri"],
    }
