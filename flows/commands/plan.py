"""`doodleflow plan train artist|omnieditor|pbe ...`: the memory plan of a training run, without a GPU
and without weights (training/memplan/). Takes the train command's own flags, so the same flags plan
what they would train; `--preset flux-dev` / `--preset sd1` without a folder plan the full-size
architecture from the configs in the code."""

from __future__ import annotations

import argparse
import dataclasses

from doodleflow.flows.commands.common import add_json
from doodleflow.flows.commands.options import DefaultsHelp, add_options, overrides
from doodleflow.flows.commands.sizing import pop_auto

CONFIG_ONLY = "(architecture from the code's config)"  # a --pretrained that names no folder


def register(sub, groups) -> None:
    from doodleflow.flows.commands import pbe, photodoodle
    from doodleflow.training.pbe.config import TrainConfig as PbEConfig
    from doodleflow.training.photodoodle.config import TrainConfig as PDConfig

    plan = sub.add_parser("plan", help="plan a run's GPU memory (no GPU, no weights)")
    what = plan.add_subparsers(dest="what", required=True)
    train = what.add_parser("train", help="the memory plan of a training run").add_subparsers(
        dest="target", required=True
    )
    for stage in ("artist", "omnieditor"):
        p = train.add_parser(stage, help=f"PhotoDoodle {stage} run", formatter_class=DefaultsHelp)
        extra = photodoodle.OMNIEDITOR_OPTIONS if stage == "omnieditor" else []
        add_options(p, [*photodoodle.TRAIN_OPTIONS, *extra], PDConfig.for_stage("editlora"))
        _store_and_json(p)
        p.set_defaults(func=cmd_plan, family="photodoodle", stage="editlora" if stage == "artist" else stage)
    p = train.add_parser("pbe", help="Paint-by-Example run", formatter_class=DefaultsHelp)
    p.add_argument(
        "--preset", choices=["tiny", "sd1"], help="tiny, or sd1: the SD v1 UNet (no folder needed)"
    )
    p.add_argument(
        "--pretrained", help="a local SD v1 or Paint-by-Example diffusers dir: its configs are read"
    )
    p.add_argument("--clip", help="a local CLIP ViT-L/14 dir: its config is read")
    add_options(p, pbe.TRAIN_OPTIONS, PbEConfig())
    _store_and_json(p)
    p.set_defaults(func=cmd_plan, family="pbe", stage=None)


def _store_and_json(p: argparse.ArgumentParser) -> None:
    # --store as on every command (README), so a train command line becomes a plan by its first word;
    # a plan reads nothing from the store.
    p.add_argument("--store", help="accepted as on the train command; a plan reads nothing from it")
    add_json(p)


def plan_config(a: argparse.Namespace):
    """The config the train command would build from these flags (no store or dataset needed)."""
    values = overrides(a, _options(a.family, a.stage))
    auto = pop_auto(values)
    if a.family == "photodoodle":
        from doodleflow.training.photodoodle.config import TrainConfig

        src = values["model"].setdefault("source", {})
        if src.get("preset") == "flux-dev" and not src.get("pretrained"):
            src["pretrained"] = CONFIG_ONLY
        values["run"]["stage"] = a.stage
        return TrainConfig.from_dict(values), auto
    from doodleflow.training.pbe.config import TrainConfig as PbEConfig
    from doodleflow.training.pbe.config import model_source

    pretrained = a.pretrained or (CONFIG_ONLY if a.preset == "sd1" else None)
    source = model_source(None, pretrained, a.clip) if a.clip else model_source(None, pretrained)
    values["model"] = {**values.get("model", {}), "source": dataclasses.asdict(source)}
    return PbEConfig.from_dict(values), auto


def _options(family: str, stage: str | None):
    from doodleflow.flows.commands import pbe, photodoodle

    if family == "pbe":
        return pbe.TRAIN_OPTIONS
    return photodoodle.TRAIN_OPTIONS + (photodoodle.OMNIEDITOR_OPTIONS if stage == "omnieditor" else [])


def cmd_plan(a: argparse.Namespace) -> tuple[dict, str]:
    from doodleflow.flows.commands.sizing import auto_micro_batch
    from doodleflow.training.memplan.auto import cached_plan, fits, fitting_preset
    from doodleflow.training.memplan.limits import usable

    cfg, auto = plan_config(a)
    if auto:
        cfg = auto_micro_batch(cfg)
    plan = cached_plan(cfg)
    out, text = plan.to_dict(), plan.table()
    limit = cfg.launch.gpu_memory
    if limit is not None:
        ok = fits(plan, limit)
        out.update(gpu_memory_gib=limit, usable_gib=round(usable(limit), 2), fits=ok)
        text += f"\n  GPU {limit:.0f} GiB ({usable(limit):.1f} usable): " + ("fits" if ok else "does NOT fit")
        if not ok:
            found = fitting_preset(cfg, limit)
            out["preset_that_fits"] = found[0] if found else None
            text += (
                f"; --memory {found[0]} plans {found[1].peak_gib:.1f} GiB" if found else "; no preset fits"
            )
    return out, text
