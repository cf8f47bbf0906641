"""Each family's defaults are a run that trains, and a warm-up longer than the run is refused in one
line before anything starts (issue 22 item 5)."""

from __future__ import annotations

import pytest
from doodleflow.infra.errors import ConfigError
from doodleflow.training.core.schedule import linear_warmup
from doodleflow.training.pbe.config import TrainConfig as PbEConfig
from doodleflow.training.photodoodle.config import TrainConfig as DoodleConfig


def _lr_at(cfg, step: int) -> float:
    o = cfg.optim
    return o.lr * linear_warmup(o.warmup_steps, getattr(o, "warmup_start_factor", 1e-6))(step)


@pytest.mark.parametrize(
    "cfg",
    [PbEConfig(), DoodleConfig.for_stage("editlora", artist="a"), DoodleConfig.for_stage("omnieditor")],
    ids=["pbe", "editlora", "omnieditor"],
)
def test_the_defaults_train_at_their_learning_rate(cfg):
    cfg.check()  # the defaults pass their own checks
    assert cfg.optim.warmup_steps <= cfg.run.steps
    # The reference learning rates (PbE configs/v1.yaml 1e-5; PhotoDoodle train_sks*.sh 1e-4) are
    # reached within the run: PbE's step 4 was at 3e-9 of 1e-5 with the 10k warm-up on 100 steps.
    assert _lr_at(cfg, cfg.run.steps - 1) == pytest.approx(cfg.optim.lr)
    assert _lr_at(cfg, 4) == pytest.approx(cfg.optim.lr)


def test_a_warmup_longer_than_the_run_is_refused_naming_both_values():
    cfg = PbEConfig().replace(optim={"warmup_steps": 10_000}, run={"steps": 100})
    with pytest.raises(ConfigError) as e:
        cfg.check()
    msg = str(e.value)
    assert "--warmup-steps 10000 is longer than the run (--steps 100)" in msg
    assert "would end at 1e-07 instead of --lr 1e-05" in msg and "--warmup-steps 10" in msg
    assert "\n" not in msg
    # the reference warm-up on a run at least as long is accepted
    PbEConfig().replace(optim={"warmup_steps": 10_000}, run={"steps": 10_000}).check()
    with pytest.raises(ConfigError, match="--warmup-steps 600 is longer than the run"):
        DoodleConfig.for_stage("editlora", artist="a").replace(optim={"warmup_steps": 600}).check()


def test_the_cli_refuses_it_with_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    from doodleflow.flows.cli import main

    monkeypatch.setenv("DOODLEFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DOODLEFLOW_STORE", str(tmp_path / "home" / "store"))
    rc = main(["train", "pbe", "--dataset", "kr", "--warmup-steps", "10000"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "--warmup-steps 10000 is longer than the run (--steps 100)" in err
    assert not (tmp_path / "home" / "store").exists()
