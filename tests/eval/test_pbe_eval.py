"""Paint-by-Example evaluation end to end on CPU: held-out rows of a real dataset version, a tiny
PbE model loaded from disk, tiny CLIP / Inception from disk, metrics and the sample grid."""

from __future__ import annotations

import math

import pytest
from doodleflow.data.config import CurationConfig
from doodleflow.data.refresh import refresh_in_process
from doodleflow.data.split import is_heldout
from doodleflow.data.store import DatasetStore
from doodleflow.training.eval.models import load_eval_models
from doodleflow.training.eval.pbe import evaluate_pbe, heldout_rows
from PIL import Image

from tests.curation.trees import good_tree


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[str, object, object]:
    """One dataset version, one tiny PbE model and the tiny eval models for the module's tests (each
    test only reads them)."""
    from doodleflow.training.pbe.model import load_pbe_dir
    from doodleflow.training.pbe.presets import save_tiny_pbe

    root = tmp_path_factory.mktemp("pbe-eval")
    src, store = str(root / "src"), str(root / "store")
    good_tree(src, n=16, real=False)
    refresh_in_process(src, "ev", store, CurationConfig(heldout_fraction=0.3), run_id="run")
    model = load_pbe_dir(save_tiny_pbe(str(root / "models")))
    return store, model, load_eval_models(str(root / "home"))


def test_pbe_evaluation_on_the_heldout_split(setup, tmp_path):
    store, model, models = setup
    rows, info = heldout_rows(store, "ev", None, limit=3)
    assert info["heldout"] and 0 < len(rows) <= 3
    m = DatasetStore(store, "ev").manifest(1)["heldout"]
    assert all(is_heldout(r["image_id"], m["fraction"], m["seed"]) for r in rows)
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


def test_quality_score_when_gmm_weights_are_given(setup, tmp_path):
    import numpy as np

    store, model, models = setup
    rows, _ = heldout_rows(store, "ev", None, limit=2)
    d = models.inception.features([Image.new("RGB", (64, 64))]).shape[1]
    gmm = str(tmp_path / "gmm.npz")
    np.savez(gmm, weights=np.ones(1), means=np.zeros((1, d)), covariances=np.eye(d)[None])
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
