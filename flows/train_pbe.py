"""The `train-pbe` flow: a Paint-by-Example Ray Train job on a dataset version.

Wiring only: the run's whole config arrives as one parameter (training/pbe/config.py holds every
default; a deployment passes a partial dict of overrides by section), the latent cache is built when
asked, the job runs (the flow waits for it), and the run is recorded (summary, loss curve, metrics
artifacts, flow run id in the run directory), evaluated on the held-out split and registered.
"""

from __future__ import annotations

from doodleflow.flows.stopping import cancelled, unless_stopped
from doodleflow.infra.errors import ConfigError, Stopped
from doodleflow.infra.settings import home, resolve_store
from doodleflow.tasks.pbe import build_pbe_cache, report_pbe_run, run_pbe_job
from doodleflow.training.pbe.config import ModelSource, TrainConfig
from doodleflow.training.registry.refs import PBE_CHECKPOINT
from prefect import flow, get_run_logger


@flow(name="train-pbe")
def train_pbe(config: TrainConfig) -> dict:
    """Train, record, evaluate and register one run. `config.model.source.init_model` (NAME, NAME@alias
    or NAME:version) fine-tunes from a registered PbE model, its files verified before any work."""
    logger = get_run_logger()
    cfg = config.replace(run={"store": resolve_store(config.run.store or None)}).check()
    source = cfg.model.source
    if source.init_model and not source.init_from:
        source = registered_source(source.init_model)
        logger.info(f"fine-tuning from {source.init_model} ({source.init_from})")
        cfg = cfg.replace(model={"source": source})
    if cfg.data.latent_cache == "on":
        build_pbe_cache(cfg)
    try:
        result = unless_stopped(run_pbe_job(cfg))
    except Stopped as e:  # Ctrl-C, SIGTERM or a cancel in Prefect: checkpointed, --resume continues
        return cancelled(e)
    report_pbe_run(cfg.run.store, result)
    if cfg.publish.register:  # evaluate on the held-out split, then register (flows/registration.py)
        from doodleflow.flows.registration import evaluate_and_register_pbe

        result["registered"] = evaluate_and_register_pbe(cfg, result)
    loss = "n/a" if result["final_loss"] is None else f"{result['final_loss']:.4f}"
    logger.info(
        f"run {result['run_id']}: {result['steps']} steps, final loss {loss}, checkpoint {result['checkpoint']}"
    )
    return result


def registered_source(
    ref: str, preset: str | None = None, pretrained: str | None = None, clip: str | None = None
) -> ModelSource:
    """The model source for `--model REF`: the registered checkpoint, its files re-hashed first."""
    from doodleflow.training.pbe.model import init_source
    from doodleflow.training.registry import Registry

    if preset or pretrained or clip:
        raise ConfigError("--model fine-tunes a registered model: drop --preset/--pretrained/--clip")
    reg = Registry(home=home()).resolve(ref)  # raises TamperedArtifact on a modified file
    if reg.kind != PBE_CHECKPOINT:
        raise ConfigError(
            f"--model {ref}: {reg.name}:{reg.version} is a {reg.kind!r}, not a Paint-by-Example checkpoint"
        )
    sha = {f["path"]: f["sha256"] for f in reg.lineage["files"]}.get("model.safetensors")
    return init_source(reg.uri, f"{reg.name}:{reg.version}", sha)
