"""`registry register --run RUN --step N` for an EditLoRA (issue 22 item 6): the checkpoint at the
picked step is saved as a LoRA (diffusers' format, with its card), evaluated on the held-out pairs
and registered with its lineage naming the run and the step, as the run's own registration is."""

from __future__ import annotations

import os

import pytest
from doodleflow.training.photodoodle.batches import cached_epochs, cached_pairs
from doodleflow.training.photodoodle.config import PLAIN_BASE, ModelSource, TrainConfig
from doodleflow.training.photodoodle.job import plan_job, save_run_lora
from doodleflow.training.photodoodle.model import load_model
from doodleflow.training.photodoodle.trainer import PhotoDoodleTrainer
from doodleflow.training.runtime.loop import WorkerContext, train
from safetensors.torch import load_file

from tests.photodoodle.helpers import make_pair_dataset


def test_a_picked_editlora_step_is_saved_evaluated_and_registered(tiny_dir, tmp_path, prefect_api):
    from doodleflow.flows.register_run import register_run_step
    from doodleflow.training.registry import Registry

    mp = pytest.MonkeyPatch()
    mp.setenv("DOODLEFLOW_HOME", str(tmp_path / "home"))
    try:
        store = str(tmp_path / "home" / "store")
        make_pair_dataset(str(tmp_path), store, "magic", 12)
        cfg = TrainConfig.for_stage("editlora", "tiny", store=store, dataset="magic", artist="magic",
                                    steps=2, checkpoint_every=1, run_name="pick")  # fmt: skip
        source = ModelSource(preset="tiny", tiny_root=os.path.dirname(tiny_dir), base_transformer=PLAIN_BASE)
        cfg = cfg.replace(model={"source": source}, sample={"every": 0})
        plan = plan_job(cfg, log=lambda m: None)
        info = {"cache_dir": plan.cache_dir, "artist_filter": plan.artist_filter, "trigger": plan.trigger}
        model = load_model(plan.cfg.model.source)
        trainer = PhotoDoodleTrainer(model, plan.cfg, "cpu")
        batches = cached_epochs(cached_pairs(plan.cfg, info, model, "cpu", 0), trainer, 0, 1)

        def save_final(t, extra):
            return save_run_lora(plan.cfg, plan.trigger, t.model.transformer, extra, plan.base)

        result = train(trainer, plan.run, batches, WorkerContext(log=lambda m: None, save_final=save_final))

        reg = register_run_step(store, "editlora/pick", 2)
        lineage = Registry().show(reg["name"], reg["version"]).lineage
    finally:
        mp.undo()
    assert reg["name"] == "editlora-magic" and reg["kind"] == "editlora"
    assert lineage["uri"].endswith("loras/magic/pick-step2")  # names the run and the step
    card = lineage["config"]["base"]
    assert card == {"trained_on": "flux", "transformer": None}
    assert lineage["metrics"]["steps"] == 2 and "clip_text_score" in lineage["metrics"]
    # The last step picked: the same LoRA, tensor for tensor, as the run saved at its end.
    mine = load_file(os.path.join(lineage["uri"], "pytorch_lora_weights.safetensors"))
    final = load_file(os.path.join(result["lora_card"]["dir"], "pytorch_lora_weights.safetensors"))
    assert mine.keys() == final.keys() and all((mine[k] == final[k]).all() for k in final)
