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
from dataclasses import replace

from doodleflow.data.store import DatasetStore
from doodleflow.flows import runtime
from doodleflow.tasks.evaluation import evaluate_doodle, evaluate_pbe
from doodleflow.tasks.registry import register_artifact
from doodleflow.training.eval.spec import EvalSpec
from doodleflow.training.pbe.config import TrainConfig as PbEConfig
from doodleflow.training.photodoodle.config import TrainConfig as DoodleConfig
from doodleflow.training.registry.record import ArtifactRecord
from doodleflow.training.registry.refs import EDITLORA, MERGED_BASE, OMNIEDITOR_LORA, PBE_CHECKPOINT

MERGED = "photodoodle-merged-base"
OMNI = "photodoodle-omnieditor"


def dataset_lineage(store: str, name: str, version: int | None) -> dict:
    ds = DatasetStore(store, name)
    v = ds.resolve(version)
    return {"name": name, "version": v, "manifest_hash": ds.manifest(v)["content_hash"], "store": store}


def _curve(store: str, family: str, run_id: str) -> list[dict]:
    from doodleflow.training.runs.metrics import MetricsLog
    from doodleflow.training.runs.rundir import RunDir

    return MetricsLog.load(RunDir(store, family, run_id))


def _loss_png(store: str, family: str, run_id: str, out_dir: str) -> list[str]:
    from doodleflow.training.runs.rundir import RunDir

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
    from doodleflow.training.runs.store_dirs import upload_dir

    out = {"dir": tempfile.mkdtemp(prefix="doodleflow-eval-")}
    try:
        yield out
        out["uri"] = upload_dir(out["dir"], store, rel, "_published.json", {"created_at": time.time()})
    finally:
        shutil.rmtree(out["dir"], ignore_errors=True)


def evaluate_and_register_pbe(cfg: PbEConfig, result: dict) -> dict:
    """Evaluate a finished PbE run on its dataset version's held-out split (unless
    `cfg.publish.evaluate` is off), then register its checkpoint; the parent is the registered model
    it fine-tuned from, if any."""
    from doodleflow.training.runs.rundir import RunDir

    store, p = cfg.run.store, cfg.publish
    ran = (RunDir(store, "pbe", result["run_id"]).read_json("run.json") or {}).get("dataset", {})
    lineage = dataset_lineage(store, cfg.run.dataset, ran.get("version") or cfg.run.version or None)
    spec = EvalSpec.after_training(p, store, cfg.run.dataset, lineage["version"])
    record = ArtifactRecord(
        f"pbe-{cfg.run.dataset}",
        PBE_CHECKPOINT,
        result["checkpoint"],
        cfg.to_dict(),
        lineage,
        parent=cfg.model.source.init_model,
    )
    run_eval = (lambda out_dir: evaluate_pbe(result["checkpoint"], spec, out_dir)) if p.evaluate else None
    return _evaluate_and_register(store, "pbe", result, record, run_eval)


def _evaluate_and_register(store: str, family: str, result: dict, record: ArtifactRecord, run_eval) -> dict:
    """Evaluate (`run_eval(out_dir)`, unless None), then register `record` with the metrics, the sample
    grid and the loss curve; the evaluation files are published to `<store>/eval/<family>/<run id>/`."""
    run_id = result["run_id"]
    metrics = {"final_loss": float(result["final_loss"]), "steps": result["steps"]}
    images = list(record.images)  # the caller's record stays as it was
    with eval_outputs(store, f"eval/{family}/{result.get('eval_name', run_id)}") as out:
        if run_eval is not None:
            ev = run_eval(out["dir"])
            metrics.update(ev["metrics"])
            images.append(ev["grid"])
        images += _loss_png(store, family, run_id, out["dir"])
        done = replace(
            record,
            metrics=metrics,
            images=images,
            curve=_curve(store, family, run_id),
            trained=(family, run_id),
        )
        reg = register_artifact(done, store=store)
    return {**reg, "eval_dir": out["uri"]}


def register_omnieditor(store: str, result: dict, merged: dict | None, config: dict) -> dict:
    card = result["lora_card"]
    lineage = dataset_lineage(store, card["dataset"], card.get("version"))
    metrics = {"final_loss": float(result["final_loss"]), "steps": result["steps"]}
    with eval_outputs(store, f"eval/omnieditor/{result.get('eval_name', result['run_id'])}") as out:
        record = ArtifactRecord(
            OMNI,
            OMNIEDITOR_LORA,
            card["dir"],
            config,
            lineage,
            metrics=metrics,
            images=_loss_png(store, "omnieditor", result["run_id"], out["dir"]),
            curve=_curve(store, "omnieditor", result["run_id"]),
            trained=("omnieditor", result["run_id"]),
        )
        omni = register_artifact(record, store=store)
    registered = {"omnieditor": omni}
    if merged:
        parent = f"{omni['name']}:{omni['version']}"
        record = ArtifactRecord(MERGED, MERGED_BASE, merged["dir"], config, lineage, parent=parent)
        registered["merged_base"] = register_artifact(record, store=store)
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


def evaluate_and_register_artist(cfg: DoodleConfig, result: dict, config: dict) -> dict:
    """Evaluate an EditLoRA on its artist's held-out pairs (unless `cfg.publish.evaluate` is off), then
    register it; `config` is what the lineage records (the run's config and the base it trained on)."""
    store, card = cfg.run.store, result["lora_card"]
    lineage = dataset_lineage(store, card["dataset"], card.get("version"))
    spec = EvalSpec.after_training(cfg.publish, store, card["dataset"], lineage["version"])
    parent = _merged_parent(card.get("base_transformer"))
    record = ArtifactRecord(
        f"editlora-{card['artist']}", EDITLORA, card["dir"], config, lineage, parent=parent
    )
    run_eval = (lambda out_dir: evaluate_doodle(card, spec, out_dir)) if cfg.publish.evaluate else None
    return _evaluate_and_register(store, "editlora", result, record, run_eval)
