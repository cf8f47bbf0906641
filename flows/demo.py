"""`doodleflow demo`: the whole pipeline on embedded defaults with tiny models, on a small bundled
sample (synthetic scenes + real OpenImages photos; synthetic before/after pairs on a real photo)."""

from __future__ import annotations

import os

from doodleflow.data.pairs_synthetic import write_photodoodle_style
from doodleflow.data.samples import real_photos
from doodleflow.data.synthetic import add_photo, make_source
from doodleflow.flows import runtime

PHOTO = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures", "photodoodle", "1.png"
)
ARTISTS = ("alice", "bob")


def demo_sources(n_images: int) -> dict[str, str]:
    """Made once under $DOODLEFLOW_HOME/demo (re-running the demo reuses them: nothing new to do)."""
    root = os.path.join(runtime.home(), "demo")
    src = {
        "openimages": os.path.join(root, "openimages"),
        "pairs": os.path.join(root, "pairs"),
        "artists": os.path.join(root, "artists"),
    }
    if not os.path.exists(os.path.join(root, ".complete")):
        make_source(src["openimages"], n_images, seed=0, size=(800, 600))
        for p in real_photos():
            add_photo(
                src["openimages"],
                p["path"],
                p["image_id"],
                p["label"],
                [tuple(round(v, 6) for v in b) for b in p["boxes"]],
            )
        photo = PHOTO if os.path.exists(PHOTO) else None
        write_photodoodle_style(src["pairs"], "general", 12, seed=1, photo_path=photo)
        for i, a in enumerate(ARTISTS):
            write_photodoodle_style(
                src["artists"], a, 8, seed=10 + i, photo_path=photo, trigger=f"sks{a}style"
            )
        open(os.path.join(root, ".complete"), "w").close()
    return src


def run_demo(store: str | None, n_images: int, steps: int | None = None) -> dict:
    """`steps` (per training stage) shortens every stage alike, e.g. for the end-to-end tests."""
    from doodleflow.flows.pipeline import PipelineConfig, pipeline

    src = demo_sources(n_images)
    config = PipelineConfig(
        openimages_source=src["openimages"],
        pairs_source=src["pairs"],
        artists_source=src["artists"],
        store=store,
        pbe_dataset="demo",
        pairs_dataset="demo-pairs",
        preset="tiny",
        pbe_steps=steps or 20,
        omnieditor_steps=steps or 6,
        artist_steps=steps or 6,
        eval_steps=4,
        eval_samples=2,
        pbe_config={"data": {"resolution": 128, "batch_size": 2}, "optim": {"lr": 1e-4, "warmup_steps": 0}},
        fiftyone=True,
        workers=0,
    )
    out = pipeline(config)
    return {**out, "text": summary_text(out)}


def _reg(r: dict | None) -> str:
    reg = (r or {}).get("registered") or {}
    return f"{reg['name']}:{reg['version']} {reg.get('metrics', {})}" if reg else "-"


def summary_text(out: dict) -> str:
    r, pbe = out.get("refresh", {}), out.get("pbe", {})
    lines = [
        "doodleflow demo: the whole pipeline on embedded defaults (tiny models: numbers mean nothing)",
        f"  store:           {out['store']}",
        f"  dataset:         {r.get('dataset')} v{r.get('version')} ({r.get('samples_total')} samples) "
        f"at {r.get('path')}",
        f"  fiftyone:        {(r.get('fiftyone') or {}).get('name')}  (doodleflow inspect --dataset demo)",
        f"  PbE model:       {_reg(pbe)}" + ("  [skipped: unchanged]" if pbe.get("skipped") else ""),
        f"  PbE samples:     {(pbe.get('registered') or {}).get('eval_dir', '-')}/samples.png",
    ]
    omni = out.get("omnieditor", {})
    for k, v in (omni.get("registered") or {}).items():
        lines.append(f"  {k + ':':<16} {v['name']}:{v['version']}")
    for a, o in ((out.get("artists") or {}).get("artists") or {}).items():
        lines.append(f"  EditLoRA {a + ':':<7} {o['status']} {_reg(o)}")
    lines.append(f"  registry:        doodleflow registry list   (MLflow at {runtime.home()}/mlflow)")
    lines.append(f"  prefect:         {os.environ.get('PREFECT_HOME')} (runs and artifacts)")
    return "\n".join(lines)
