"""The `train-pbe` flow: a Paint-by-Example Ray Train job on a dataset version.

Wiring only: resolve the config, optionally build the latent cache, run the job (waits for it),
and record the run (summary + loss curve + metrics artifacts, flow run id in the run directory).
"""

from __future__ import annotations

import os

from doodleflow.flows import runtime
from doodleflow.infra.errors import ConfigError
from doodleflow.infra.settings import resolve_store
from doodleflow.tasks.training import build_pbe_cache, publish_pbe_run, run_pbe_job
from doodleflow.training.pbe.config import build_config, model_source
from prefect import flow, get_run_logger


@flow(name="train-pbe")
def train_pbe(
    dataset: str,
    version: int | None = None,
    store: str | None = None,
    preset: str | None = None,
    pretrained: str | None = None,
    clip: str | None = None,
    init_model: str | None = None,
    steps: int = 100,
    workers: int = 1,
    use_gpu: bool = False,
    resume: bool = False,
    run_name: str | None = None,
    ray_address: str | None = None,
    config: dict | None = None,
    register_model: bool = True,
    evaluate: bool = True,
    eval_samples: int = 4,
    eval_steps: int = 50,
    eval_clip: str | None = None,
    eval_inception: str | None = None,
) -> dict:
    """`config` overrides settings by section, e.g. {"optim": {"lr": 1e-4}, "data": {"resolution": 256}}
    (sections and defaults: training/pbe/config.py, docs/training-pbe.md). `init_model` fine-tunes
    from a registered PbE model (NAME, NAME@alias or NAME:version), verified before any work."""
    logger = get_run_logger()
    store = resolve_store(store)
    cfg = build_config(
        config,
        store=store,
        dataset=dataset,
        version=version,
        steps=steps,
        workers=workers,
        use_gpu=use_gpu,
        resume=resume,
        run_name=run_name,
    )
    if init_model:
        source = registered_source(init_model, preset, pretrained, clip)
        logger.info(f"fine-tuning from {source.init_model} ({source.init_from})")
    else:
        source = model_source(preset, pretrained, clip, tiny_root=os.path.join(runtime.home(), "models"))
    cfg = cfg.replace(model={"source": source})
    if cfg.data.latent_cache == "build":
        build_pbe_cache(cfg, ray_address)
    result = run_pbe_job(cfg, ray_address)
    publish_pbe_run(store, result)
    if register_model:  # evaluate on the held-out split, then register with lineage (flows/registration.py)
        from doodleflow.flows.registration import evaluate_and_register_pbe

        result["registered"] = evaluate_and_register_pbe(
            store,
            result,
            dataset,
            cfg.run.version,
            cfg.to_dict(),
            evaluate,
            eval_samples,
            eval_steps,
            eval_clip,
            eval_inception,
            parent=source.init_model,
        )
    logger.info(
        f"run {result['run_id']}: {result['steps']} steps, final loss {result['final_loss']:.4f}, "
        f"checkpoint {result['checkpoint']}"
    )
    return result


def registered_source(ref: str, preset: str | None, pretrained: str | None, clip: str | None):
    """The model source for `--model REF`: the registered checkpoint, its files re-hashed first."""
    from doodleflow.training.pbe.model import init_source
    from doodleflow.training.registry import Registry

    if preset or pretrained or clip:
        raise ConfigError("--model fine-tunes a registered model: drop --preset/--pretrained/--clip")
    reg = Registry(home=runtime.home()).resolve(ref)  # raises TamperedArtifact on a modified file
    if reg.kind != "pbe-checkpoint":
        raise ConfigError(f"{reg.name}:{reg.version} is a {reg.kind!r}, not a Paint-by-Example checkpoint")
    sha = {f["path"]: f["sha256"] for f in reg.lineage["files"]}.get("model.safetensors")
    return init_source(reg.uri, f"{reg.name}:{reg.version}", sha)
