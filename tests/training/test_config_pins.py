"""The configs say the same after the shared sections moved to training/core/config.py (issue 20 item
2): for both families' defaults, every preset and some overrides, `to_dict()` (as JSON, keys sorted:
how checkpoints and run.json store it), `config_hash()` and `run_id()` equal the values recorded from
the code before the move (commit e9cb653), and the refusals say the same words.

To re-record after a deliberate change: `python tests/training/test_config_pins.py` prints the table."""

from __future__ import annotations

import hashlib
import json

import pytest
from doodleflow.infra.errors import ConfigError
from doodleflow.training.pbe.config import TrainConfig as PbEConfig
from doodleflow.training.pbe.config import build_config, model_source
from doodleflow.training.photodoodle.config import TrainConfig as DoodleConfig

RUN = {"store": "/s", "dataset": "kr", "version": 3}


def pbe_cases() -> dict:
    src = {"kind": "sd1", "pretrained": "/m/sd", "clip": "/m/clip"}
    return {
        "pbe-default": PbEConfig(),
        "pbe-build": build_config(**RUN),
        "pbe-sd1": build_config({"model": {"source": src}}, **RUN),
        "pbe-released": build_config({"model": {"source": {"kind": "pbe", "pretrained": "/m/pbe"}}}, **RUN),
        "pbe-model-source": build_config(
            {"model": {"source": vars(model_source(None, "/m/sd", "/m/clip"))}}, **RUN
        ),
        "pbe-init-from": build_config(
            {"model": {"source": {"init_from": "/r/ckpt", "init_model": "pbe@1", "init_sha256": "ab"}}},
            **RUN,
        ),
        "pbe-80GB": build_config({"memory": {"preset": "80GB"}}, **RUN),
        "pbe-48GB": build_config({"memory": {"preset": "48GB"}}, **RUN),
        "pbe-24GB": build_config({"memory": {"preset": "24GB"}}, **RUN),
        "pbe-8bit": build_config({"memory": {"optimizer": "adamw8bit"}}, **RUN),
        "pbe-optim": build_config(
            {"optim": {"lr": 2e-5, "betas": [0.8, 0.99], "warmup_steps": 10, "warmup_start_factor": 0.0}},
            steps=20,
            **RUN,
        ),
        "pbe-data": build_config(
            {"data": {"batch_size": 8, "micro_batch": 2, "resolution": 256, "latent_cache": "build"}},
            workers=2,
            **RUN,
        ),
        "pbe-sample-by-box": build_config({"data": {"sample_by": "box", "binarize_mask": True}}, **RUN),
        "pbe-diffusion": build_config({"diffusion": {"cond_drop_prob": 0.0, "beta_end": 0.02}}, **RUN),
        "pbe-publish": build_config(
            {"publish": {"eval_samples": 8, "eval_gmm": "/g.npz", "eval_inception": "/i", "eval_clip": "/c"}},
            **RUN,
        ),
        "pbe-launch-sample": build_config(
            {"launch": {"max_failures": 0, "gpu_memory": 24}, "sample": {"every": 5, "prompts": ["a"]}},
            **RUN,
        ),
        "pbe-run-name": build_config(run_name="mine", fail_at_step=[2, 3], **RUN),
        "pbe-roundtrip": PbEConfig.from_dict(
            json.loads(json.dumps(build_config({"optim": {"lr": 3e-5}}, resume=True, **RUN).to_dict()))
        ),
        "pbe-replace": build_config(**RUN).replace(optim={"weight_decay": 0.0}, run={"seed": 7}),
        "pbe-overrides": PbEConfig().with_overrides({"data": {"resolution": 128}, "run": dict(RUN)}),
    }


def doodle_cases() -> dict:
    flux = {"preset": "flux-dev", "pretrained": "/m/flux"}
    art = {**RUN, "artist": "lulu"}
    return {
        "pd-default": DoodleConfig(),
        "pd-omni-tiny": DoodleConfig.for_stage("omnieditor", **RUN),
        "pd-omni-flux": DoodleConfig.for_stage("omnieditor", "flux-dev", pretrained="/m/flux", **RUN),
        "pd-editlora": DoodleConfig.for_stage("editlora", **art),
        "pd-editlora-flux": DoodleConfig.for_stage("editlora", "flux-dev", pretrained="/m/flux", **art),
        "pd-from-dict": DoodleConfig.from_dict({"model": {"source": flux}, "run": art}),
        "pd-80GB": DoodleConfig.from_dict({"memory": {"preset": "80GB"}, "run": art}),
        "pd-48GB": DoodleConfig.from_dict({"memory": {"preset": "48GB"}, "run": art}),
        "pd-24GB": DoodleConfig.from_dict({"memory": {"preset": "24GB"}, "run": art}),
        "pd-int8": DoodleConfig.from_dict(
            {"model": {"gradient_checkpointing": True}, "memory": {"quantize_base": "int8"}, "run": art}
        ),
        "pd-lora": DoodleConfig.from_dict(
            {"model": {"lora": {"rank": 4, "targets": ["attn.to_q"]}}, "run": art}
        ),
        "pd-lora-alpha": DoodleConfig.from_dict({"model": {"lora": {"rank": 8, "alpha": 4}}, "run": art}),
        "pd-condition": DoodleConfig.from_dict(
            {"model": {"condition": {"position_mode": "offset", "offset": [0, -4]}}, "run": art}
        ),
        "pd-base": DoodleConfig.from_dict({"model": {"source": {"base_transformer": "flux"}}, "run": art}),
        "pd-optim": DoodleConfig.from_dict(
            {"optim": {"lr": 5e-5, "betas": [0.9, 0.99], "warmup_steps": 5}, "run": {**art, "steps": 50}}
        ),
        "pd-data": DoodleConfig.from_dict(
            {
                "data": {"height": 64, "width": 64, "aspect": "stretch", "batch_size": 2, "cache": "off"},
                "run": {**art, "workers": 2},
            }
        ),
        "pd-publish-launch": DoodleConfig.from_dict(
            {
                "publish": {"merge": False, "eval_samples": 4, "eval_clip": "/c"},
                "launch": {"max_failures": 3, "cpus_per_worker": 2, "max_parallel": 2},
                "sample": {"every": 0, "prompts": ["make it red"]},
                "run": art,
            }
        ),
        "pd-run-name": DoodleConfig.from_dict({"run": {**art, "run_name": "mine", "checkpoint_every": 7}}),
        "pd-roundtrip": DoodleConfig.from_dict(
            json.loads(json.dumps(DoodleConfig.for_stage("editlora", resume=True, **art).to_dict()))
        ),
        "pd-replace": DoodleConfig.for_stage("omnieditor", **RUN).replace(optim={"lr": 2e-4}),
        "pd-overrides": DoodleConfig().with_overrides({"data": {"guidance": 2.0}, "run": art}),
    }


def cases() -> dict:
    return {**pbe_cases(), **doodle_cases()}


def observed(cfg) -> list[str]:
    text = json.dumps(cfg.to_dict(), sort_keys=True)
    return [cfg.run_id(), cfg.config_hash(), hashlib.sha256(text.encode()).hexdigest()[:16]]


def refusal(make) -> str:
    try:
        make()
    except (ConfigError, TypeError) as e:
        return f"{type(e).__name__}: {e}"
    return "accepted"


BAD = {
    "pbe-steps": lambda: PbEConfig.from_dict({"run": {"steps": 0}}),
    "pbe-betas": lambda: PbEConfig.from_dict({"optim": {"betas": [0.9, 1.0]}}),
    "pbe-start-factor": lambda: PbEConfig.from_dict({"optim": {"warmup_start_factor": 2}}),
    "pbe-unknown-field": lambda: PbEConfig.from_dict({"optim": {"momentum": 0.9}}),
    "pbe-unknown-section": lambda: build_config({"optimizer": {"lr": 1}}),
    "pbe-unknown-setting": lambda: build_config({"optim": {"momentum": 0.9}}),
    "pbe-override-section": lambda: PbEConfig().with_overrides({"optimizer": {}}),
    "pbe-override-setting": lambda: PbEConfig().with_overrides({"optim": {"momentum": 1}}),
    "pbe-warmup": lambda: build_config({"optim": {"warmup_steps": 10000}}, steps=100).check(),
    "pbe-split": lambda: build_config(workers=3).check(),
    "pbe-micro": lambda: build_config({"data": {"micro_batch": 5}}).check(),
    "pbe-eval": lambda: PbEConfig.from_dict({"publish": {"eval_steps": 0}}),
    "pbe-gpu-memory": lambda: PbEConfig.from_dict({"launch": {"gpu_memory": -1}}),
    "pbe-failures": lambda: PbEConfig.from_dict({"launch": {"max_failures": -1}}),
    "pbe-quantized": lambda: PbEConfig.from_dict({"memory": {"quantize_base": "int8"}}),
    "pbe-sd1": lambda: PbEConfig.from_dict({"model": {"source": {"kind": "sd1"}}}),
    "pd-lr": lambda: DoodleConfig.from_dict({"optim": {"lr": float("nan")}}),
    "pd-clip": lambda: DoodleConfig.from_dict({"optim": {"grad_clip": -1}}),
    "pd-unknown-field": lambda: DoodleConfig.from_dict({"launch": {"cpus": 2}}),
    "pd-warmup": lambda: DoodleConfig.from_dict(
        {"optim": {"warmup_steps": 600}, "run": {"artist": "a"}}
    ).check(),
    "pd-artist": lambda: DoodleConfig.for_stage("editlora").check(),
    "pd-fp8": lambda: DoodleConfig.from_dict(
        {
            "memory": {"quantize_base": "fp8"},
            "model": {"gradient_checkpointing": True},
            "run": {"artist": "a"},
        }
    ).check(),
    "pd-split": lambda: DoodleConfig.for_stage("omnieditor", workers=2).check(),
    "pd-cpus": lambda: DoodleConfig.from_dict({"launch": {"cpus_per_worker": 0}}),
    "pd-parallel": lambda: DoodleConfig.from_dict({"launch": {"max_parallel": 0}}),
    "pd-eval": lambda: DoodleConfig.from_dict({"publish": {"eval_samples": 0}}),
    "pd-stage": lambda: DoodleConfig.from_dict({"run": {"stage": "pretrain"}}),
    "pd-preset": lambda: DoodleConfig.from_dict({"model": {"source": {"preset": "flux-dev"}}}),
}

# Recorded from the code before the shared sections moved (commit e9cb653).
PINNED: dict[str, list[str]] = {
    "pbe-default": ["-v0-850829ecbb", "850829ecbb", "d3478aa0f6786c48"],
    "pbe-build": ["kr-v3-cddae040fe", "cddae040fe", "2effd57ea467263d"],
    "pbe-sd1": ["kr-v3-6733add865", "6733add865", "e742bfe3de0cfdff"],
    "pbe-released": ["kr-v3-55bc307cc7", "55bc307cc7", "4a9ebadb9457ff88"],
    "pbe-model-source": ["kr-v3-6733add865", "6733add865", "e742bfe3de0cfdff"],
    "pbe-init-from": ["kr-v3-fa96f84b7c", "fa96f84b7c", "e371e15cc6fbb301"],
    "pbe-80GB": ["kr-v3-cddae040fe", "cddae040fe", "ecc835fa6552a866"],
    "pbe-48GB": ["kr-v3-cddae040fe", "cddae040fe", "4c18946b10ea5f2b"],
    "pbe-24GB": ["kr-v3-548b70cc7b", "548b70cc7b", "c5124722298acfd4"],
    "pbe-8bit": ["kr-v3-548b70cc7b", "548b70cc7b", "f21fbafa041ecabc"],
    "pbe-optim": ["kr-v3-2d9f97171b", "2d9f97171b", "e387e7e6754830a8"],
    "pbe-data": ["kr-v3-5b7483de45", "5b7483de45", "5aec3a13db2d1cde"],
    "pbe-sample-by-box": ["kr-v3-d5206bfd36", "d5206bfd36", "e3b1f7bdc2ad061c"],
    "pbe-diffusion": ["kr-v3-98fc76c6f2", "98fc76c6f2", "c157396793c781d6"],
    "pbe-publish": ["kr-v3-cddae040fe", "cddae040fe", "000fcdbe9c873622"],
    "pbe-launch-sample": ["kr-v3-cddae040fe", "cddae040fe", "b91aec5b4fba5555"],
    "pbe-run-name": ["mine", "cddae040fe", "383248d2bc7a4e3d"],
    "pbe-roundtrip": ["kr-v3-f90fb6e984", "f90fb6e984", "71dc5acba0bfc276"],
    "pbe-replace": ["kr-v3-44a86c9071", "44a86c9071", "e29b70819757ff8e"],
    "pbe-overrides": ["kr-v3-210c26517b", "210c26517b", "cf1a816752bcdd6c"],
    "pd-default": ["-v0-dc58002b3f", "dc58002b3f", "447f3d9dd571ea37"],
    "pd-omni-tiny": ["kr-v3-6e16a43968", "6e16a43968", "ee5602a8599deaf5"],
    "pd-omni-flux": ["kr-v3-d6aed552cd", "d6aed552cd", "63b84e44d3bb6002"],
    "pd-editlora": ["lulu-kr-v3-9ba9d9e630", "9ba9d9e630", "69a6e11e8cdeda26"],
    "pd-editlora-flux": ["lulu-kr-v3-a58472bb2f", "a58472bb2f", "ee3a6aeeff731df6"],
    "pd-from-dict": ["lulu-kr-v3-a58472bb2f", "a58472bb2f", "ee3a6aeeff731df6"],
    "pd-80GB": ["lulu-kr-v3-9ba9d9e630", "9ba9d9e630", "e1c5dd3157a1edaa"],
    "pd-48GB": ["lulu-kr-v3-9ba9d9e630", "9ba9d9e630", "6495ede697cd2e6d"],
    "pd-24GB": ["lulu-kr-v3-d9e8baf0e6", "d9e8baf0e6", "6f98cdb332b505b1"],
    "pd-int8": ["lulu-kr-v3-e7846e4b30", "e7846e4b30", "53605cfebf1358db"],
    "pd-lora": ["lulu-kr-v3-56b760ab4c", "56b760ab4c", "2e3c7e8943c58a86"],
    "pd-lora-alpha": ["lulu-kr-v3-02cdbb4b8a", "02cdbb4b8a", "ae4e5909a87c6958"],
    "pd-condition": ["lulu-kr-v3-9370c28ba7", "9370c28ba7", "4b2df35e213c4a7d"],
    "pd-base": ["lulu-kr-v3-4215be6a5f", "4215be6a5f", "0568b83b2fd247d0"],
    "pd-optim": ["lulu-kr-v3-c4b36b6c1d", "c4b36b6c1d", "54c4b4f0424933c3"],
    "pd-data": ["lulu-kr-v3-3b04a4810d", "3b04a4810d", "5cec8df815a959fe"],
    "pd-publish-launch": ["lulu-kr-v3-9ba9d9e630", "9ba9d9e630", "cd91a7a2e6b5e5cc"],
    "pd-run-name": ["mine", "9ba9d9e630", "03c5b28b06669b56"],
    "pd-roundtrip": ["lulu-kr-v3-9ba9d9e630", "9ba9d9e630", "7dc8b642c01291b2"],
    "pd-replace": ["kr-v3-3b2ee9d81a", "3b2ee9d81a", "90992541a443ad78"],
    "pd-overrides": ["lulu-kr-v3-8cf3511ca6", "8cf3511ca6", "1350354e11733f48"],
}
REFUSALS: dict[str, str] = {
    "pbe-steps": "ConfigError: --steps must be at least 1, got 0",
    "pbe-betas": "ConfigError: optim.betas must be two values in [0, 1), got (0.9, 1.0)",
    "pbe-start-factor": "ConfigError: optim.warmup_start_factor must lie in [0, 1]",
    "pbe-unknown-field": "TypeError: OptimConfig.__init__() got an unexpected keyword argument 'momentum'",
    "pbe-unknown-section": "ConfigError: unknown config section 'optimizer' (one of ['data', 'diffusion', 'launch', 'memory', 'model', 'optim', 'publish', 'run', 'sample'])",
    "pbe-unknown-setting": "ConfigError: unknown optim setting(s): ['momentum']",
    "pbe-override-section": "ConfigError: unknown config section 'optimizer' (one of ['data', 'diffusion', 'launch', 'memory', 'model', 'optim', 'publish', 'run', 'sample'])",
    "pbe-override-setting": "ConfigError: unknown optim setting(s): ['momentum'] (known: ['betas', 'eps', 'grad_clip', 'lr', 'warmup_start_factor', 'warmup_steps', 'weight_decay'])",
    "pbe-warmup": "ConfigError: --warmup-steps 10000 is longer than the run (--steps 100): the learning rate would end at 1e-07 instead of --lr 1e-05; pass --warmup-steps 10 (a tenth of the run) or fewer, or train longer",
    "pbe-split": "ConfigError: --batch-size 32 (the global batch) does not split over 3 worker(s): use a multiple of 3, or change --workers",
    "pbe-micro": "ConfigError: --micro-batch 5 does not divide the 32 sample(s) each of 1 worker(s) takes per step (--batch-size 32): use a divisor of 32",
    "pbe-eval": "ConfigError: --eval-steps must be at least 1, got 0",
    "pbe-gpu-memory": "ConfigError: --gpu-memory must be a positive number, got -1",
    "pbe-failures": "ConfigError: launch.max_failures must be at least 0, got -1",
    "pbe-quantized": "ConfigError: --quantize-base does not apply to Paint by Example: it trains its whole UNet (nothing large is frozen)",
    "pbe-sd1": "ConfigError: model kind sd1 needs a Stable Diffusion v1 dir (--pretrained) and a CLIP dir (--clip)",
    "pd-lr": "ConfigError: --lr must be a positive number, got nan",
    "pd-clip": "ConfigError: optim.grad_clip must be at least 0, got -1",
    "pd-unknown-field": "TypeError: LaunchConfig.__init__() got an unexpected keyword argument 'cpus'",
    "pd-warmup": "ConfigError: --warmup-steps 600 is longer than the run (--steps 500): the learning rate would end at 8.3e-05 instead of --lr 0.0001; pass --warmup-steps 50 (a tenth of the run) or fewer, or train longer",
    "pd-artist": "ConfigError: an EditLoRA run needs an artist (--artist)",
    "pd-fp8": "ConfigError: --quantize-base fp8 needs CUDA GPUs (--gpus); int8 runs everywhere",
    "pd-split": "ConfigError: --batch-size 1 (the global batch) does not split over 2 worker(s): use a multiple of 2, or change --workers",
    "pd-cpus": "ConfigError: --cpus-per-worker must be a positive number, got 0",
    "pd-parallel": "ConfigError: --max-parallel must be at least 1, got 0",
    "pd-eval": "ConfigError: --eval-samples must be at least 1, got 0",
    "pd-stage": "ConfigError: stage must be one of omnieditor, editlora; got 'pretrain'",
    "pd-preset": "ConfigError: preset flux-dev needs a local diffusers FLUX.1-dev directory (--pretrained)",
}


@pytest.mark.parametrize("name", sorted(cases()))
def test_config_as_before(name):
    assert observed(cases()[name]) == PINNED[name], json.dumps(cases()[name].to_dict(), sort_keys=True)


@pytest.mark.parametrize("name", sorted(BAD))
def test_refusal_as_before(name):
    assert refusal(BAD[name]) == REFUSALS[name]


def test_every_case_pinned():
    assert set(PINNED) == set(cases()) and set(REFUSALS) == set(BAD)


if __name__ == "__main__":
    print("PINNED = " + json.dumps({k: observed(v) for k, v in cases().items()}, indent=4))
    print("REFUSALS = " + json.dumps({k: refusal(v) for k, v in BAD.items()}, indent=4))
