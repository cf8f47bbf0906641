"""Paint-by-Example evaluation end to end on CPU: held-out rows of a real dataset version, a tiny
PbE model loaded from disk, tiny CLIP / Inception from disk, metrics and the sample grid."""

from __future__ import annotations

import math

from doodleflow.data.config import CurationConfig
from doodleflow.data.plan import make_units, plan_inputs
from doodleflow.data.refresh import commit_version, diff_with_latest
from doodleflow.data.shard import build_unit
from doodleflow.data.split import is_heldout
from doodleflow.data.store import DatasetStore
from doodleflow.training.eval.models import load_eval_models
from doodleflow.training.eval.pbe import evaluate_pbe, heldout_rows
from PIL import Image

from tests.curation.trees import good_tree


def _dataset(tmp_path) -> str:
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    good_tree(src, n=16, real=False)
    cfg = CurationConfig(heldout_fraction=0.3)
    plan = plan_inputs(src, None, cfg)
    ds = DatasetStore(store, "ev")
    diff = diff_with_latest(ds, plan)
    stats = [build_unit(u, cfg, store, "ev") for u in make_units(diff.new_jobs, cfg)]
    commit_version(ds, cfg, plan, diff, stats, "run", src)
    return store


def test_pbe_evaluation_on_the_heldout_split(tmp_path):
    from doodleflow.training.pbe.model import load_pbe_dir
    from doodleflow.training.pbe.presets import save_tiny_pbe

    store = _dataset(tmp_path)
    rows, info = heldout_rows(store, "ev", None, limit=3)
    assert info["heldout"] and 0 < len(rows) <= 3
    m = DatasetStore(store, "ev").manifest(1)["heldout"]
    assert all(is_heldout(r["image_id"], m["fraction"], m["seed"]) for r in rows)
    model = load_pbe_dir(save_tiny_pbe(str(tmp_path / "models")))
    models = load_eval_models(str(tmp_path / "home"))
    res = evaluate_pbe(model, rows, models, str(tmp_path / "eval"), steps=3)
    assert set(res["metrics"]) == {"region_clip_score", "fid"}
    assert -100 <= res["metrics"]["region_clip_score"] <= 100
    assert math.isfinite(res["metrics"]["fid"]) or len(rows) == 1
    assert res["n"] == len(rows) == len(res["per_sample"]) == len(res["outputs"])
    assert all(o.size == (512, 512) for o in res["outputs"])
    assert "numbers mean nothing" in res["models"]["clip"]
    grid = Image.open(res["grid"])
    assert grid.width > 4 * 200 and grid.height > len(rows) * 200
    again = evaluate_pbe(model, rows, models, str(tmp_path / "eval2"), steps=3)
    assert again["metrics"] == res["metrics"]  # seeded: the same outputs and scores


def test_quality_score_when_gmm_weights_are_given(tmp_path):
    import numpy as np
    from doodleflow.training.pbe.model import load_pbe_dir
    from doodleflow.training.pbe.presets import save_tiny_pbe

    store = _dataset(tmp_path)
    rows, _ = heldout_rows(store, "ev", None, limit=2)
    models = load_eval_models(str(tmp_path / "home"))
    d = models.inception.features([Image.new("RGB", (64, 64))]).shape[1]
    gmm = str(tmp_path / "gmm.npz")
    np.savez(gmm, weights=np.ones(1), means=np.zeros((1, d)), covariances=np.eye(d)[None])
    model = load_pbe_dir(save_tiny_pbe(str(tmp_path / "models")))
    res = evaluate_pbe(model, rows, models, str(tmp_path / "eval"), steps=2, gmm=gmm)
    assert 0.0 <= res["metrics"]["quality_score"] <= 100.0


def test_eval_json_names_the_grid_beside_it_and_has_no_nan(tmp_path):
    """The grid's scratch folder is deleted after publishing: eval.json names the grid relative to itself."""
    import json

    from doodleflow.tasks.evaluation import write_eval_json

    out = tmp_path / "scratch"
    out.mkdir()
    res = {"grid": str(out / "samples.png"), "metrics": {"fid": math.nan, "region_clip_score": 0.5}, "n": 1}
    doc = json.loads(open(write_eval_json(res, str(out))).read())
    assert doc["grid"] == "samples.png" and doc["metrics"] == {"fid": None, "region_clip_score": 0.5}
