"""FiftyOne datasets built from Parquet versions, on the bundled MongoDB: counts, slices, labels and
boxes match the rows; quarantine is a tagged view; updates are incremental; the App serves it."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from doodleflow.data.inspection.fo_build import detection_box, fiftyone_name, sync_version
from doodleflow.data.store import DatasetStore
from doodleflow.data.synthetic import make_source
from doodleflow.flows.dataset_refresh import dataset_refresh
from PIL import Image

from tests.conftest import REPO
from tests.curation.trees import BAD_EXPECTED, bad_tree

pytestmark = [pytest.mark.slow(seconds=40), pytest.mark.usefixtures("prefect_api")]
HOME = os.environ["DOODLEFLOW_HOME"]


def test_detection_box_is_relative_to_the_crop_window():
    assert detection_box([150, 100, 250, 300], [100, 50, 500, 450]) == pytest.approx(
        [0.125, 0.125, 0.25, 0.5]
    )
    assert detection_box([0, 0, 640, 480], [0, 0, 640, 480]) == [0.0, 0.0, 1.0, 1.0]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("fo")
    src, store = str(root / "src"), str(root / "store")
    bad_tree(src, n=6)
    s = dataset_refresh(
        source=src, dataset="fo", store=store, config={"samples_per_shard": 5}, update_fiftyone=True
    )
    return src, store, s


def test_slices_counts_labels_and_boxes_match_parquet(built):
    import fiftyone as fo

    _, store, s = built
    info = s["fiftyone"]
    assert info["name"] == fiftyone_name("fo", 1) and info["samples"] == s["samples_total"]
    d = fo.load_dataset(info["name"])
    assert d.persistent and sorted(d.group_slices) == ["reference", "source", "target"]
    rows = {r["sample_id"]: r for r in DatasetStore(store, "fo").read_table(1).to_pylist()}
    for slice_ in ("target", "source", "reference"):
        view = d.select_group_slices(slice_).match_tags("quarantined", bool=False)
        assert sorted(view.distinct("sample_id")) == sorted(rows) and len(view) == len(rows)
    for smp in d.select_group_slices("target").match_tags("quarantined", bool=False):
        r = rows[smp["sample_id"]]
        assert smp["label_name"] == r["label_name"] == smp["box"].label
        assert smp["box"].bounding_box == pytest.approx(detection_box(r["box_px"], r["crop_window_px"]))
        assert (smp["image_id"], smp["variant"], smp["mask_kind"]) == (
            r["image_id"],
            r["variant"],
            r["mask_kind"],
        )
        assert Image.open(smp.filepath).size == (512, 512)
        assert np.array_equal(
            np.asarray(Image.open(smp["repaint"].mask_path)) > 0,
            np.asarray(Image.open(io.BytesIO(r["mask_png"]))) >= 128,
        )


def test_boxes_of_real_openimages_photos_land_on_the_object(built):
    """Cut the target at the FiftyOne box: it must show the same pixels as the official box region."""
    import fiftyone as fo
    from doodleflow.data.samples import real_photos

    _, _, s = built
    d = fo.load_dataset(s["fiftyone"]["name"])
    photos = {p["image_id"]: p for p in real_photos()}
    checked = 0
    for smp in d.select_group_slices("target").match_tags("quarantined", bool=False):
        if smp["image_id"] not in photos:
            continue
        full = Image.open(photos[smp["image_id"]]["path"]).convert("RGB")
        w, h = full.size
        x0, y0, x1, y1 = (round(v * s) for v, s in zip(smp["box_normalized"], (w, h, w, h), strict=True))
        bx, by, bw, bh = smp["box"].bounding_box
        target = Image.open(smp.filepath)
        cut = target.crop((round(bx * 512), round(by * 512), round((bx + bw) * 512), round((by + bh) * 512)))
        truth = np.asarray(full.crop((x0, y0, x1, y1)).resize(cut.size, Image.BILINEAR), float)
        err = np.abs(np.asarray(cut, float) - truth).mean()
        assert err < 12, (smp["sample_id"], err)
        checked += 1
    assert checked == 7  # five penguins, two pairs of shorts


def test_quarantine_is_a_tagged_saved_view_with_reasons(built):
    import fiftyone as fo

    _, _, s = built
    d = fo.load_dataset(s["fiftyone"]["name"])
    view = d.load_saved_view("quarantined")
    assert len(view) == sum(BAD_EXPECTED.values()) == s["fiftyone"]["quarantined"]
    reasons: dict[str, int] = {}
    for r in view.values("quarantine_reason"):
        reasons[r] = reasons.get(r, 0) + 1
    assert reasons == BAD_EXPECTED
    unparseable = view.match(fo.ViewField("quarantine_reason") == "box_unparseable").first()
    assert unparseable["quarantine_source"] == "validation-annotations-bbox.csv:10"


def test_new_version_adds_only_new_samples_and_reruns_change_nothing(built, tmp_path):
    import fiftyone as fo

    src, store, s = built
    new = make_source(src, 2, seed=11, size=(640, 480), boxes_per_image=(1, 1), salt="fo-new")
    v2 = dataset_refresh(source=src, dataset="fo", store=store, config={"samples_per_shard": 5})
    out = sync_version(store, "fo", None, HOME)
    assert out["version"] == 2 and out["added"] == len(new) and out["media_written"] == len(new)
    assert out["samples"] == v2["samples_total"] == s["samples_total"] + len(new)
    t0 = time.perf_counter()
    again = sync_version(store, "fo", 2, HOME)
    assert (again["added"], again["removed"], again["media_written"]) == (0, 0, 0)
    assert time.perf_counter() - t0 < 10
    assert (
        len(
            fo.load_dataset(fiftyone_name("fo", 1))
            .select_group_slices("target")
            .match_tags("quarantined", bool=False)
        )
        == s["samples_total"]
    )


def _cli(*args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "doodleflow.flows.cli", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_unreachable_database_is_a_clear_error(built):
    _, store, _ = built
    p = _cli(
        "inspect",
        "--dataset",
        "fo",
        "--store",
        store,
        "--no-launch",
        env={"FIFTYONE_DATABASE_URI": "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=1500"},
    )
    _out, err = p.communicate(timeout=300)
    assert p.returncode == 2, err[-2000:]
    assert "cannot reach FiftyOne's database via FIFTYONE_DATABASE_URI=mongodb://127.0.0.1:9" in err
    assert "Traceback" not in err


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="Debian's chromium is not installed (make test installs it)")
def test_app_in_headless_chromium_shows_the_dataset(built, artifacts_dir, tmp_path):
    _, store, _s = built
    port = 5170 + os.getpid() % 200
    p = _cli("inspect", "--dataset", "fo", "--version", "1", "--store", store, "--port", str(port), "--json")
    try:
        info = None
        for line in p.stdout:
            if line.startswith("{"):
                info = json.loads(line)
                break
        assert info and info["url"] == f"http://127.0.0.1:{port}/datasets/{fiftyone_name('fo', 1)}"
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
            "--window-size=1400,900",
            f"--user-data-dir={tmp_path / 'chrome'}",
            "--virtual-time-budget=20000",
        ]
        dom = subprocess.run(
            [_chromium(), *flags, "--dump-dom", info["url"]], capture_output=True, text=True, timeout=120
        ).stdout
        shot = os.path.join(artifacts_dir, "fiftyone-app.png")
        for _ in range(3):  # on a loaded machine the page can still be blank when virtual time runs out
            subprocess.run(
                [_chromium(), *flags, f"--screenshot={shot}", info["url"]], capture_output=True, timeout=120
            )
            if os.path.exists(shot) and os.path.getsize(shot) > 10_000:
                break
        text = re.sub(r"<[^>]+>", "|", re.sub(r"<(style|script)[^>]*>.*?</\1>", "", dom, flags=re.S))
        assert fiftyone_name("fo", 1) in text
        assert re.search(rf"\|{info['fiftyone_samples']}\|\s*samples", text), text[-1500:]
        assert os.path.getsize(shot) > 10_000
    finally:
        os.killpg(p.pid, 9)
        p.communicate()


def test_predictions_slice_from_a_registered_model(built, tmp_path):
    import fiftyone as fo
    from doodleflow.training.eval.fo_predictions import add_predictions
    from doodleflow.training.pbe.presets import save_tiny_pbe
    from doodleflow.training.registry import Registry

    _, store, _ = built
    home = str(tmp_path / "home")
    tiny = save_tiny_pbe(str(tmp_path / "models"))  # a diffusers Paint-by-Example dir
    Registry(home=home).register("pbe-fo", "pbe-checkpoint", tiny, config={})
    out = add_predictions(store, "fo", 1, "pbe-fo:1", home, samples=2, steps=2)
    d = fo.load_dataset(out["name"])
    view = d.select_group_slices("output")
    assert "output" in d.group_slices and len(view) == out["outputs"] == 2
    for smp in view:
        assert smp["model"] == "pbe-fo:1" and -100 <= smp["region_clip_score"] <= 100
        target = d.get_group(smp.group.id)["target"]
        assert target["sample_id"] == smp["sample_id"]  # the output sits in its sample's group
    worst = view.sort_by("region_clip_score").first()["region_clip_score"]
    assert worst == min(view.values("region_clip_score"))
    again = add_predictions(store, "fo", 1, "pbe-fo:1", home, samples=2, steps=2)
    assert again["outputs"] == 2 and len(d.select_group_slices("output")) == 2  # replaced, not doubled


def test_pair_datasets_as_source_target_groups(tmp_path):
    import fiftyone as fo
    from doodleflow.data.pairs import ingest_pairs_in_process
    from doodleflow.data.pairs_synthetic import write_photodoodle_style

    store = str(tmp_path / "store")
    style = write_photodoodle_style(str(tmp_path / "pairs"), "carol", 5, seed=4)
    with open(os.path.join(style, "target", "1.jpg"), "r+b") as f:
        f.truncate(200)  # one unreadable pair
    ingest_pairs_in_process(style, "carol", store, artist="carol")
    out = sync_version(store, "carol", None, HOME)
    assert out["kind"] == "photodoodle-pairs" and out["samples"] == 4 and out["quarantined"] == 1
    d = fo.load_dataset(out["name"])
    assert sorted(d.group_slices) == ["source", "target"]
    rows = {r["pair_id"]: r for r in DatasetStore(store, "carol").read_table(1).to_pylist()}
    for smp in d.select_group_slices("target").match_tags("quarantined", bool=False):
        r = rows[smp["pair_id"]]
        assert (
            smp["artist"] == "carol"
            and smp["captions"] == r["captions"]
            and smp["caption"] == r["captions"][0]
        )
        assert open(smp.filepath, "rb").read() == r["target_jpeg"]
    q = d.load_saved_view("quarantined")
    assert len(q) == 1 and q.first()["quarantine_reason"]
    again = sync_version(store, "carol", None, HOME)
    assert (again["added"], again["media_written"]) == (0, 0)
