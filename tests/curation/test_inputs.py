"""Reading OpenImages inputs: structural errors fail fast naming file and column; bad rows are
quarantined with a reason; filtered rows are counted by reason."""

from __future__ import annotations

import os
import shutil

import pandas as pd
import pytest
from doodleflow.data.boxes import triage_boxes
from doodleflow.data.config import BoxFilterConfig
from doodleflow.data.errors import InputError
from doodleflow.data.openimages import locate_source, read_bbox_csv, read_class_descriptions, split_of
from doodleflow.data.samples import OPENIMAGES_DIR

# Verbatim rows of the official files, with their provenance in tests/fixtures/openimages-excerpts/SOURCES.md.
EXCERPTS = os.path.join(os.path.dirname(__file__), "..", "fixtures", "openimages-excerpts")
HEAD_V6 = os.path.join(EXCERPTS, "oidv6-train-annotations-bbox.head.csv")
VAL_13 = os.path.join(EXCERPTS, "oidv6-train-annotations-bbox.csv")


def test_class_descriptions_with_and_without_header(tmp_path):
    official = read_class_descriptions(os.path.join(OPENIMAGES_DIR, "class-descriptions-boxable.csv"))
    assert len(official) == 601 and official["/m/05z6w"] == "Penguin" and official["/m/01bfm9"] == "Shorts"
    p = tmp_path / "class-descriptions-boxable.csv"
    p.write_text("LabelName,DisplayName\n/m/05z6w,Penguin\n")
    assert read_class_descriptions(str(p)) == {"/m/05z6w": "Penguin"}


def test_real_v6_21_column_and_13_column_layouts():
    v6 = read_bbox_csv(HEAD_V6)
    assert set(v6["ImageID"]) == {"000002b66c9c498e"} and list(v6["XMin"][:2]) == ["0.012500", "0.025000"]
    assert set(v6["split"]) == {"train"} and list(v6["_line"][:2]) == [2, 3]
    val = read_bbox_csv(VAL_13)
    assert val.loc[0, "LabelName"] == "/m/0cmf2" and val.loc[0, "XMax"] == "0.9642005"


def test_missing_column_names_file_and_column(tmp_path):
    p = tmp_path / "validation-annotations-bbox.csv"
    p.write_text("ImageID,Source,LabelName,Confidence,XMin,XMax,YMin\nabc,x,/m/1,1,0.1,0.2,0.3\n")
    with pytest.raises(InputError) as e:
        read_bbox_csv(str(p))
    assert "validation-annotations-bbox.csv" in str(e.value) and "'YMax'" in str(e.value)


def test_optional_filter_column_required_only_when_filter_on(tmp_path):
    p = tmp_path / "test-annotations-bbox.csv"
    p.write_text("ImageID,LabelName,XMin,XMax,YMin,YMax\nabc,/m/1,0.1,0.2,0.3,0.4\n")
    assert len(read_bbox_csv(str(p))) == 1
    with pytest.raises(InputError, match="'IsGroupOf'"):
        read_bbox_csv(str(p), need=("IsGroupOf",))


def test_unreadable_csv_fails_with_the_file_name(tmp_path):
    p = tmp_path / "test-annotations-bbox.csv"
    p.write_bytes(b"\xff\xfe\x00\x01garbage\x00\x9c")
    with pytest.raises(InputError, match="test-annotations-bbox.csv"):
        read_bbox_csv(str(p))


def _tree(tmp_path, with_images=True):
    root = tmp_path / "src"
    (root / "annotations").mkdir(parents=True)
    shutil.copy(os.path.join(OPENIMAGES_DIR, "class-descriptions-boxable.csv"), root / "annotations")
    (root / "annotations" / "validation-annotations-bbox.csv").write_text(
        "ImageID,LabelName,XMin,XMax,YMin,YMax\n"
    )
    if with_images:
        (root / "images" / "validation").mkdir(parents=True)
    return root


def test_locate_source_finds_annotations_and_images(tmp_path):
    root = _tree(tmp_path)
    layout = locate_source(str(root))
    assert layout.bbox_csvs[0].endswith("annotations/validation-annotations-bbox.csv")
    assert layout.images_root == os.path.join(str(root), "images")


def test_structural_errors_fail_before_work(tmp_path):
    root = _tree(tmp_path, with_images=False)
    with pytest.raises(InputError, match=r"images root .*images: not a directory"):
        locate_source(str(root))
    os.remove(root / "annotations" / "class-descriptions-boxable.csv")
    with pytest.raises(InputError, match="class-descriptions-boxable.csv"):
        locate_source(str(root))
    with pytest.raises(InputError, match="not a directory"):
        locate_source(str(tmp_path / "nope"))


def test_split_of_file_names():
    assert split_of("x/oidv6-train-annotations-bbox.csv") == "train"
    assert split_of("validation-annotations-bbox.csv") == "validation"
    assert split_of("test-annotations-bbox.csv") == "test"


def _rows(rows):
    df = pd.DataFrame(rows, columns=["ImageID", "LabelName", "XMin", "YMin", "XMax", "YMax"], dtype=str)
    df["_file"], df["_line"], df["split"] = "f.csv", range(2, len(df) + 2), "train"
    return df


def test_triage_reasons_for_every_bad_row():
    classes = {"/m/a": "A"}
    df = _rows(
        [
            ["ok1", "/m/a", "0.1", "0.1", "0.6", "0.6"],  # kept (area .25)
            ["nan", "/m/a", "nan", "0.1", "0.6", "0.6"],  # box_nan
            ["empty", "/m/a", "", "0.1", "0.6", "0.6"],  # box_nan
            ["text", "/m/a", "abc", "0.1", "0.6", "0.6"],  # box_unparseable
            ["out", "/m/a", "0.1", "0.1", "1.2", "0.6"],  # box_out_of_range
            ["neg", "/m/a", "-0.1", "0.1", "0.6", "0.6"],  # box_out_of_range
            ["inv", "/m/a", "0.6", "0.1", "0.1", "0.6"],  # box_inverted
            ["lab", "/m/zz", "0.1", "0.1", "0.6", "0.6"],  # unknown_label
            ["", "/m/a", "0.1", "0.1", "0.6", "0.6"],  # missing_image_id
            ["small", "/m/a", "0.1", "0.1", "0.2", "0.2"],  # dropped: area .01
            ["large", "/m/a", "0.0", "0.0", "1.0", "0.9"],  # dropped: area .9
            ["ok1", "/m/a", "0.10", "0.1", "0.600", "0.6"],  # dropped: duplicate of row 1
        ]
    )
    t = triage_boxes(df, classes, BoxFilterConfig())
    assert list(t.kept["image_id"]) == ["ok1"]
    got = dict(zip(t.quarantine["image_id"], t.quarantine["reason"], strict=True))
    assert got == {
        "nan": "box_nan",
        "empty": "box_nan",
        "text": "box_unparseable",
        "out": "box_out_of_range",
        "neg": "box_out_of_range",
        "inv": "box_inverted",
        "lab": "unknown_label",
        "": "missing_image_id",
    }
    assert t.dropped == {"area_too_small": 1, "area_too_large": 1, "duplicate_box": 1}
    q = t.quarantine.set_index("image_id")
    assert (
        q.loc["text", "file"] == "f.csv"
        and q.loc["text", "line"] == 5
        and "XMin=abc" in q.loc["text", "detail"]
    )
    assert len(t.kept) + len(t.quarantine) + sum(t.dropped.values()) == len(df)  # nothing lost


def test_area_bounds_are_inclusive_and_optional_filters():
    df = _rows(
        [
            ["a", "/m/a", "0", "0", "0.2", "0.1"],
            ["b", "/m/a", "0", "0", "0.8", "1"],
            ["c", "/m/b", "0", "0", "0.5", "0.5"],
        ]
    )
    t = triage_boxes(df, {"/m/a": "A", "/m/b": "B"}, BoxFilterConfig())
    assert list(t.kept["image_id"]) == ["a", "b", "c"]  # areas 0.02 and 0.8 are kept, as in PbE
    t = triage_boxes(df, {"/m/a": "A", "/m/b": "B"}, BoxFilterConfig(deny_labels=("/m/b",)))
    assert t.dropped == {"label_denied": 1}
    t = triage_boxes(df, {"/m/a": "A", "/m/b": "B"}, BoxFilterConfig(allow_labels=("/m/b",)))
    assert t.dropped == {"label_not_allowed": 2}


def test_empty_csv_says_so(tmp_path):
    p = tmp_path / "test-annotations-bbox.csv"
    p.write_text("")
    with pytest.raises(InputError, match="test-annotations-bbox.csv: empty file"):
        read_bbox_csv(str(p))
