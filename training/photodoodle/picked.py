"""A LoRA checkpoint a person picked (training/runs/picked.py) saved as the run's own LoRA is
at its end (training/photodoodle/job.py:save_run_lora): the run's base loaded, the adapter added and
filled from the checkpoint, written in diffusers' format with its card. An EditLoRA goes to
`loras/<artist>/<run>-step<N>/` (so `generate doodle --model` and `--run` load it), an OmniEditor LoRA
to `runs/omnieditor/<run>/lora-step<N>/`."""

from __future__ import annotations

from doodleflow.training.photodoodle.config import TrainConfig
from doodleflow.training.runs.picked import Picked


def trained_on(cfg: TrainConfig, run_card: dict | None) -> str:
    """What the LoRA trained on, as the run's own card says, else from the base it loaded."""
    from doodleflow.training.photodoodle.artifacts import MERGED_ROOT

    if run_card and run_card.get("trained_on"):
        return run_card["trained_on"]
    base = cfg.model.source.base_transformer
    if not base:
        return "flux"
    return "merged-omnieditor" if f"/{MERGED_ROOT}/" in base.replace("\\", "/") else "given"


def trigger_of(cfg: TrainConfig) -> str | None:
    from doodleflow.data.store import DatasetStore

    if not cfg.run.artist:
        return None
    m = DatasetStore(cfg.run.store, cfg.run.dataset).manifest(cfg.run.version)
    return m.get("inputs", {}).get("triggers", {}).get(cfg.run.artist)


def save_picked_lora(picked: Picked) -> tuple[TrainConfig, dict]:
    """(the run's config, the card of the LoRA saved from `picked`'s checkpoint)."""
    from doodleflow.training.photodoodle.artifacts import (
        artist_lora_rel,
        find_lora,
        omnieditor_lora_rel,
        save_lora,
    )
    from doodleflow.training.photodoodle.job import lora_card
    from doodleflow.training.photodoodle.lora import add_lora, load_trainable_state_dict
    from doodleflow.training.photodoodle.model import load_model
    from doodleflow.training.runs.rundir import read_checkpoint_uri

    cfg = TrainConfig.from_dict(picked.state["config"])
    name = f"{cfg.run_id()}-step{picked.step}"
    if cfg.run.stage == "editlora":
        rel = artist_lora_rel(cfg.run.artist, name)
        try:
            run_card = find_lora(cfg.run.store, cfg.run.artist, cfg.run_id())
        except Exception:  # a cancelled run never saved its own LoRA
            run_card = None
    else:
        rel, run_card = omnieditor_lora_rel(cfg.run_id(), picked.step), None
    model = load_model(cfg.model.source)
    add_lora(model.transformer, cfg.model.lora, seed=cfg.run.seed)
    weights, _, _ = read_checkpoint_uri(picked.checkpoint)
    load_trainable_state_dict(model.transformer, weights)
    info = {"steps": picked.step, "final_loss": picked.final_loss, "picked_from": picked.checkpoint}
    card = lora_card(cfg, trigger_of(cfg), info, trained_on(cfg, run_card))
    return cfg, save_lora(cfg.run.store, rel, model.transformer, cfg.model.lora, card)
