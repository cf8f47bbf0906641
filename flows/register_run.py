"""The `register-run-step` flow: register the checkpoint of a finished or cancelled run at the step a
person picked (from its grid of samples while training), with the same evaluation and lineage as the
registration that ends each training flow (flows/registration.py)."""

from __future__ import annotations

from doodleflow.tasks.registry import save_picked_lora
from doodleflow.training.runs.picked import pick
from prefect import flow, get_run_logger


@flow(name="register-run-step")
def register_run_step(store: str, run: str, step: int) -> dict:
    """`run`: FAMILY/RUN or a run id; `step`: a step with a checkpoint. Returns the registration."""
    from doodleflow.flows.registration import evaluate_and_register_pbe, register_omnieditor

    picked = pick(store, run, step)
    name = f"{picked.run.run_id}-step{step}"  # its evaluation files: eval/<family>/<run>-step<N>/
    result = {"run_id": picked.run.run_id, "steps": step, "eval_name": name, "checkpoint": picked.checkpoint,
              "final_loss": float("nan") if picked.final_loss is None else picked.final_loss}  # fmt: skip
    get_run_logger().info(
        f"registering {picked.family}/{picked.run.run_id} at step {step}: {picked.checkpoint}"
    )
    if picked.family == "pbe":
        from doodleflow.training.pbe.config import TrainConfig

        return evaluate_and_register_pbe(TrainConfig.from_dict(picked.state["config"]), result)
    cfg, card = save_picked_lora(picked)
    result.update(lora_card=card, lora=card["uri"])
    if picked.family == "editlora":
        from doodleflow.flows.photodoodle import _register_artist

        return _register_artist(result, cfg)
    return register_omnieditor(store, result, None, cfg.to_dict())["omnieditor"]
