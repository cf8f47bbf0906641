"""Registration wiring shared by the training flows: evaluate what a run produced, then register it
with lineage (the lineage itself is recorded by training/registry/lineage.py).

Registry names: `pbe-<dataset>`, `photodoodle-omnieditor`, `photodoodle-merged-base`,
`editlora-<artist>`. Parents: EditLoRA -> the merged base it trained on -> the OmniEditor LoRA.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import contextmanager

from doodleflow.data.store import DatasetStore
from doodleflow.flows import runtime
from doodleflow.tasks.evaluation import evaluate_doodle, evaluate_pbe
from doodleflow.tasks.registry import register_artifact

MERGED = "photodoodle-merged-base"
OMNI = "photodoodle-omnieditor"


def dataset_lineage(store: str, name: str, version: int | None) -> dict:
    ds = DatasetStore(store, name)
    v = ds.resolve(version)
    return {"name": name, "version": v, "manifest_hash": ds.manifest(v)["content_hash"], "store": store}


def _curve(store: str, family: str, run_id: str) -> list[dict]:
    from doodleflow.training.common.metrics import MetricsLog
    from doodleflow.training.common.rundir import RunDir

    return MetricsLog.load(RunDir(store, family, run_id))


def _loss_png(store: str, family: str, run_id: str, out_dir: str) -> list[str]:
    from doodleflow.training.common.rundir import RunDir

    data = RunDir(store, family, run_id).read_bytes("loss.png")
    if not data:
        return []
    path = os.path.join(out_dir, "loss.png")
    with open(path, "wb") as f:
        f.write(data)
    return [path]


@contextmanager
def eval_outputs(store: str, rel: str):
    """A scratch directory for an evaluation's files (sample grid, eval.json, loss curve), published
    to `<store>/<rel>/` once everything in the block succeeded (the same on a local path and on S3:
    nothing stays on local disk), then removed. Yields {"dir": scratch}; "uri" is set after."""
    from doodleflow.training.common.store_dirs import publish_local_dir

    out = {"dir": tempfile.mkdtemp(prefix="doodleflow-eval-")}
    try:
        yield out
        out["uri"] = publish_local_dir(out["dir"], store, rel, "_published.json", {"created_at": time.time()})
    finally:
        shutil.rmtree(out["dir"], ignore_errors=True)


def evaluate_and_register_pbe(
    store: str,
    result: dict,
    dataset: str,
    version: int | None,
    config: dict,
    evaluate: bool = True,
    eval_samples: int = 4,
    eval_steps: int = 50,
    clip_dir: str | None = None,
    inception_dir: str | None = None,
    parent: str | None = None,
) -> dict:
    from doodleflow.training.common.rundir import RunDir

    ran = (RunDir(store, "pbe", result["run_id"]).read_json("run.json") or {}).get("dataset", {})
    lineage = dataset_lineage(store, dataset, ran.get("version") or version or None)

    def run_eval(out_dir: str) -> dict:
        return evaluate_pbe(result["checkpoint"], store, dataset, lineage["version"], out_dir, clip_dir,
                            inception_dir, eval_samples, eval_steps)  # fmt: skip

    return _evaluate_and_register(store, "pbe", result, f"pbe-{dataset}", "pbe-checkpoint", result["checkpoint"],
                                  config, lineage, parent, run_eval if evaluate else None)  # fmt: skip


def _evaluate_and_register(store: str, family: str, result: dict, name: str, kind: str, uri: str, config: dict,
                           lineage: dict, parent: str | None, run_eval) -> dict:  # fmt: skip
    """Evaluate (`run_eval(out_dir)`, unless None), then register with the metrics, the sample grid
    and the loss curve; the evaluation files are published to `<store>/eval/<family>/<run id>/`."""
    run_id = result["run_id"]
    metrics, images = {"final_loss": float(result["final_loss"]), "steps": result["steps"]}, []
    with eval_outputs(store, f"eval/{family}/{run_id}") as out:
        if run_eval is not None:
            ev = run_eval(out["dir"])
            metrics.update(ev["metrics"])
            images.append(ev["grid"])
        images += _loss_png(store, family, run_id, out["dir"])
        reg = register_artifact(name, kind, uri, config, lineage, parent=parent, metrics=metrics, images=images,
                                curve=_curve(store, family, run_id), trained=(family, run_id), store=store)  # fmt: skip
    return {**reg, "eval_dir": out["uri"]}


def register_omnieditor(store: str, result: dict, merged: dict | None, config: dict) -> dict:
    card = result["lora_card"]
    lineage = dataset_lineage(store, card["dataset"], card.get("version"))
    metrics = {"final_loss": float(result["final_loss"]), "steps": result["steps"]}
    with eval_outputs(store, f"eval/omnieditor/{result['run_id']}") as out:
        omni = register_artifact(
            OMNI,
            "omnieditor-lora",
            card["dir"],
            config,
            lineage,
            metrics=metrics,
            images=_loss_png(store, "omnieditor", result["run_id"], out["dir"]),
            curve=_curve(store, "omnieditor", result["run_id"]),
            trained=("omnieditor", result["run_id"]),
            store=store,
        )
    registered = {"omnieditor": omni}
    if merged:
        registered["merged_base"] = register_artifact(
            MERGED,
            "merged-base",
            merged["dir"],
            config,
            lineage,
            parent=f"{omni['name']}:{omni['version']}",
            store=store,
        )
    return registered


def _merged_parent(base_transformer: str | None) -> str | None:
    """The registered merged base an EditLoRA trained on (matched by its transformer's URI)."""
    if not base_transformer:
        return None
    from doodleflow.training.registry import Registry

    reg = Registry(home=runtime.home())
    try:
        versions = reg.versions(MERGED)
    except Exception:  # no merged base registered yet
        return None
    for r in reversed(versions):
        if base_transformer.rstrip("/").startswith(r.uri.rstrip("/")):
            return f"{r.name}:{r.version}"
    return None


def evaluate_and_register_artist(
    store: str,
    result: dict,
    config: dict,
    evaluate: bool = True,
    eval_samples: int = 2,
    eval_steps: int = 20,
    clip_dir: str | None = None,
) -> dict:
    card = result["lora_card"]
    lineage = dataset_lineage(store, card["dataset"], card.get("version"))

    def run_eval(out_dir: str) -> dict:
        return evaluate_doodle(card, store, card["dataset"], lineage["version"], out_dir, clip_dir, eval_samples,
                               eval_steps)  # fmt: skip

    return _evaluate_and_register(store, "editlora", result, f"editlora-{card['artist']}", "editlora", card["dir"],
                                  config, lineage, _merged_parent(card.get("base_transformer")),
                                  run_eval if evaluate else None)  # fmt: skip
