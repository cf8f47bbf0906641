"""EvalSpec is built once from a family's publish settings (or from `doodleflow eval`'s flags) and handed
whole: both families' evaluation after training is configurable, the PbE quality score included."""

from __future__ import annotations

import pytest
from doodleflow.flows.cli import _parser
from doodleflow.flows.commands.options import overrides
from doodleflow.flows.commands.pbe import TRAIN_OPTIONS
from doodleflow.flows.commands.photodoodle import EVAL_OPTIONS, train_config
from doodleflow.infra.errors import ConfigError
from doodleflow.training.eval.spec import EvalSpec
from doodleflow.training.pbe.config import PublishConfig as PbEPublish
from doodleflow.training.pbe.config import TrainConfig as PbEConfig
from doodleflow.training.photodoodle.config import PublishConfig as DoodlePublish
from doodleflow.training.registry.refs import EDITLORA, KINDS, PBE_CHECKPOINT


def test_after_training_takes_every_eval_setting_of_either_family():
    p = PbEPublish(eval_samples=3, eval_steps=7, eval_clip="/c", eval_inception="/i", eval_gmm="/g.npz")
    assert EvalSpec.after_training(p, "s", "d", 2) == EvalSpec("s", "d", 2, 3, 7, 0, "/c", "/i", "/g.npz")
    # PhotoDoodle: the old fixed values are the defaults; no FID or quality score in that family
    assert EvalSpec.after_training(DoodlePublish(), "s", "a", None) == EvalSpec("s", "a", None, 2, 20)
    d = DoodlePublish(eval_samples=5, eval_steps=3, eval_clip="/c")
    assert EvalSpec.after_training(d, "s", "a", 1) == EvalSpec("s", "a", 1, 5, 3, clip_dir="/c")
    with pytest.raises(ConfigError, match="--eval-steps must be at least 1, got 0"):
        DoodlePublish(eval_steps=0)


def test_defaults_left_open_are_the_model_s_and_the_family_s():
    spec = EvalSpec(samples=3)
    assert spec.with_defaults(PBE_CHECKPOINT, "s", "d") == EvalSpec("s", "d", None, 3, 50)
    assert spec.with_defaults(EDITLORA, "s", "d").steps == 20
    given = EvalSpec("s2", "d2", 4, 1, 9)
    assert given.with_defaults(PBE_CHECKPOINT, "s", "d") == given
    assert KINDS == ("pbe-checkpoint", "omnieditor-lora", "merged-base", "editlora")  # stored in records


def test_the_cli_sets_the_evaluation_after_training(tmp_path):
    store = str(tmp_path / "store")
    a = _parser().parse_args(
        ["train", "artist", "--artist", "x", "--store", store, "--eval-samples", "3", "--eval-steps", "4"]
    )
    p = train_config(a, EDITLORA, EVAL_OPTIONS).publish
    assert (p.eval_samples, p.eval_steps, p.register, p.evaluate) == (3, 4, True, True)
    a = _parser().parse_args(["train", "pbe", "--dataset", "d", "--store", store, "--eval-gmm", "/g.npz"])
    assert PbEConfig.from_dict(overrides(a, TRAIN_OPTIONS)).publish.eval_gmm == "/g.npz"
