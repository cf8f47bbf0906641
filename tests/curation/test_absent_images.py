"""Images that were not downloaded are not bad input: listed once per ImageID with their box count,
counted in the summary, quarantined only with require_images; a file that cannot be decoded stays
quarantined. Plus the smaller input checks: a BOM in a CSV header, a warning when most images are absent,
and a store written before absent images existed stays readable and refreshable."""

from __future__ import annotations

import json
import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from doodleflow.data.config import CurationConfig
from doodleflow.data.openimages import read_bbox_csv, read_bbox_table, read_class_descriptions
from doodleflow.data.parquet import content_hash
from doodleflow.data.plan import plan_inputs
from doodleflow.data.refresh import refresh_in_process
from doodleflow.data.store import DatasetStore
from doodleflow.data.synthetic import bbox_row, make_source, write_bbox_csv

from tests.curation.trees import ABSENT_EXPECTED, BAD_EXPECTED, bad_tree

TRAIN_CSV = "oidv6-train-annotations-bbox.csv"


def _rows(src: str) -> int:
    d = os.path.join(src, "annotations")
    return sum(len(open(os.path.join(d, f)).readlines()) - 1 for f in os.listdir(d) if f.endswith("bbox.csv"))


def test_absent_images_are_listed_not_quarantined(tmp_path):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    expected = bad_tree(src)
    s = refresh_in_process(src, "d", store)
    assert s["samples_total"] == expected and s["quarantined"] == BAD_EXPECTED  # no missing_image
    assert s["images_absent"] == 1
    ds = DatasetStore(store, "d")
    absent = ds.read_table(1, name="_absent_images.parquet").to_pylist()
    assert {r["image_id"]: r["boxes"] for r in absent} == ABSENT_EXPECTED
    m = ds.manifest(1)
    assert m["inputs"]["images_absent"] == 1 and m["inputs"]["boxes_absent"] == 1
    assert "_absent_images.parquet" in {t["path"] for t in m["side_tables"]}
    # nothing lost: every annotation row is a sample, quarantined, dropped or an absent image's box
    q = (
        sum(s["quarantined"].values()) - BAD_EXPECTED["unreadable_image"]
    )  # build-time rejects are samples-to-be
    built = s["samples_total"] + BAD_EXPECTED["unreadable_image"]
    assert _rows(src) == built + q + sum(s["dropped"].values()) + m["inputs"]["boxes_absent"]
    # an unreadable file that exists stays quarantined, with the decoder's word for it
    rows = ds.read_table(1, name="_quarantine.parquet").to_pylist()
    assert {r["image_id"] for r in rows if r["reason"] == "unreadable_image"} == {
        "truncated0000001",
        "garbage00000001",
    }


def test_require_images_quarantines_each_box(tmp_path):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    bad_tree(src)
    s = refresh_in_process(src, "d", store, cfg=CurationConfig(require_images=True))
    assert s["quarantined"] == {**BAD_EXPECTED, "missing_image": 1} and s["images_absent"] == 0
    ds = DatasetStore(store, "d")
    assert ds.read_table(1, name="_absent_images.parquet").num_rows == 0
    row = next(
        r for r in ds.read_table(1, name="_quarantine.parquet").to_pylist() if r["reason"] == "missing_image"
    )
    assert row["image_id"] == "missing00000001" and row["file"] == "validation-annotations-bbox.csv"
    assert row["line"] == 5 and "no <shard>/<ImageID>.jpg under" in row["detail"]
    # the sample bytes do not depend on the flag (it is not part of the config's content hash)
    assert CurationConfig(require_images=True).content_hash() == CurationConfig().content_hash()


def test_downloading_an_absent_image_builds_only_its_samples(tmp_path):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    make_source(src, 4, seed=1, boxes_per_image=(1, 1))
    later = make_source(str(tmp_path / "later"), 2, seed=2, boxes_per_image=(1, 1), salt="later")
    write_bbox_csv(os.path.join(src, "annotations", TRAIN_CSV), later, append=True)  # boxes, no files yet
    v1 = refresh_in_process(src, "d", store)
    assert v1["images_absent"] == 2 and v1["samples_total"] == 4
    shutil.copytree(
        os.path.join(tmp_path, "later", "images", "train_0"), os.path.join(src, "images", "train_1")
    )
    v2 = refresh_in_process(src, "d", store)
    assert v2["version"] == 2 and v2["samples_new"] == 2 and v2["samples_total"] == 6
    assert v2["throughput"]["samples_built"] == 2 and v2["images_absent"] == 0
    assert DatasetStore(store, "d").read_table(2, name="_absent_images.parquet").num_rows == 0


def test_mostly_absent_source_warns(tmp_path):
    src = str(tmp_path / "src")
    make_source(src, 1, seed=3, boxes_per_image=(1, 1))
    rows = [bbox_row(f"{i:016x}", "/m/05z6w", (0.1, 0.1, 0.7, 0.8)) for i in range(120)]
    write_bbox_csv(os.path.join(src, "annotations", TRAIN_CSV), rows, append=True)
    plan = plan_inputs(src, None, CurationConfig())
    assert plan.inputs["images_absent"] == 120 and len(plan.jobs) == 1
    assert plan.warnings and "120 of 121 annotated images (99.17%)" in plan.warnings[0]
    assert "_absent_images.parquet" in plan.warnings[0]


def test_utf8_bom_in_headers(tmp_path):
    p = tmp_path / "validation-annotations-bbox.csv"
    p.write_bytes(b"\xef\xbb\xbfImageID,LabelName,XMin,XMax,YMin,YMax\nabc,/m/1,0.1,0.6,0.2,0.7\n")
    assert read_bbox_csv(str(p))["ImageID"].tolist() == ["abc"]
    t = read_bbox_table(str(p)).table
    assert t["ImageID"].cast(pa.string()).to_pylist() == ["abc"] and t["YMax"].to_pylist() == [0.7]
    c = tmp_path / "class-descriptions-boxable.csv"
    c.write_bytes(b"\xef\xbb\xbf/m/1,Thing\n")
    assert read_class_descriptions(str(c)) == {"/m/1": "Thing"}


def _as_written_before(ds: DatasetStore, version: int) -> None:
    """Rewrite a version the way the code before absent images wrote it: no _absent_images.parquet,
    no snapshot record, no new manifest keys, a `missing_image` quarantine row per absent box."""
    vp = ds.version_path(version)
    m = ds.manifest(version)
    absent = ds.read_table(version, name="_absent_images.parquet").to_pylist()
    q = ds.read_table(version, name="_quarantine.parquet")
    old_rows = [
        {
            "file": "x.csv",
            "line": 2,
            "image_id": r["image_id"],
            "label": "/m/05z6w",
            "sample_id": "",
            "reason": "missing_image",
            "detail": "no <shard>/<ImageID>.jpg under x",
        }
        for r in absent
    ]
    q = pa.concat_tables([q, pa.Table.from_pylist(old_rows, schema=q.schema)])
    pq.write_table(q, os.path.join(vp, "_quarantine.parquet"))
    os.remove(os.path.join(vp, "_absent_images.parquet"))
    m["side_tables"] = [t for t in m["side_tables"] if t["path"] != "_absent_images.parquet"]
    for k in ("images_absent", "boxes_absent", "snapshot", "warnings"):
        m["inputs"].pop(k, None)
    m["quarantined"] = {**m["quarantined"], "missing_image": len(old_rows)} if old_rows else m["quarantined"]
    dropped = ds.read_table(version, name="_dropped.parquet").to_pandas()
    m["content_hash"] = content_hash(m["files"], [q.to_pandas(), dropped])  # as the old code hashed it
    os.remove(os.path.join(vp, "_manifest.json"))
    with open(os.path.join(vp, "_manifest.json"), "w") as f:
        json.dump(m, f)
    shutil.rmtree(os.path.join(ds.root, "snapshots"), ignore_errors=True)


@pytest.mark.parametrize("absent", [False, True])
def test_store_written_before_stays_readable_and_refreshable(tmp_path, absent):
    src, store = str(tmp_path / "src"), str(tmp_path / "store")
    make_source(src, 4, seed=4, boxes_per_image=(1, 2))
    if absent:
        write_bbox_csv(
            os.path.join(src, "annotations", TRAIN_CSV),
            [bbox_row("feedfeedfeedfeed", "/m/05z6w", (0, 0, 0.5, 0.5))],
            append=True,
        )
    v1 = refresh_in_process(src, "d", store)
    ds = DatasetStore(store, "d")
    _as_written_before(ds, 1)
    before = {r["sample_id"]: r["target_jpeg"] for r in ds.read_table(1).to_pylist()}
    assert len(before) == v1["samples_total"]
    again = refresh_in_process(src, "d", store)
    # nothing rebuilt: every sample carried by its id. A new version only where the old one quarantined
    # absent images' boxes (its reject table changes); otherwise the same content, no new version.
    assert again["samples_new"] == 0 and again["samples_total"] == v1["samples_total"]
    latest = 2 if absent else 1
    assert again["version"] == latest and again["created"] == absent and "skipped" not in again
    after = {r["sample_id"]: r["target_jpeg"] for r in ds.read_table(latest).to_pylist()}
    assert after == before
    if absent:
        assert ds.read_table(2, name="_absent_images.parquet").num_rows == 1
        assert "missing_image" not in again["quarantined"]
    third = refresh_in_process(src, "d", store)  # the record the second run wrote: nothing parsed
    assert third["version"] == latest and not third["created"] and "skipped" in third


def test_header_only_csv_plans_nothing(tmp_path):
    src = tmp_path / "src"
    make_source(str(src), 1, seed=6, boxes_per_image=(1, 1))
    (src / "annotations" / TRAIN_CSV).write_text(
        (src / "annotations" / TRAIN_CSV).read_text().splitlines()[0] + "\n"
    )
    plan = plan_inputs(str(src), None, CurationConfig())
    assert len(plan.jobs) == 0 and plan.absent.num_rows == 0 and plan.inputs["images"] == 1
