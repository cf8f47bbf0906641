"""OpenImages' `Rotation`, per image, from the image index beside the annotations (for `--upright`).

The index is `<split>-images[-boxable]-with-rotation.csv` (data/oi_remote.py FILES), in the source
folder or its `annotations/`, where `doodleflow fetch openimages` puts it. Only ImageID and Rotation
are read, streamed, and only the rows of the images a plan uses are kept.
"""

from __future__ import annotations

import posixpath

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from doodleflow.data.errors import InputError
from doodleflow.data.fsutil import filesystem
from doodleflow.data.openimages import SourceLayout
from doodleflow.data.orientation import rotation_steps

INDEX_SUFFIX = "-with-rotation.csv"


def index_files(layout: SourceLayout) -> list[str]:
    """The image index files beside the bbox CSVs (same folders, same URI form)."""
    fs, _ = filesystem(layout.bbox_csvs[0])
    out = []
    for folder in sorted({posixpath.dirname(u) for u in layout.bbox_csvs}):
        _, path = filesystem(folder)
        for p in sorted(fs.ls(path, detail=False)):
            if p.endswith(INDEX_SUFFIX):
                out.append(f"s3://{p}" if folder.startswith("s3://") else p)
    return out


def read_rotations(layout: SourceLayout, image_ids: pd.Series) -> pd.Series:
    """image_id -> quarter turns counter-clockwise (0-3) for `image_ids`; an image the index does not
    list, or lists without a rotation, stays as stored (0)."""
    files = index_files(layout)
    if not files:
        raise InputError(
            f"--upright needs the image index (*{INDEX_SUFFIX}, e.g. train-images-boxable-with-rotation.csv) "
            f"beside {layout.bbox_csvs[0]}: `doodleflow fetch openimages` writes it"
        )
    want = pa.array(image_ids.unique(), pa.string())
    found: dict[str, int] = {}
    opts = pacsv.ConvertOptions(
        include_columns=["ImageID", "Rotation"],
        column_types={"ImageID": pa.string(), "Rotation": pa.float64()},
    )
    for uri in files:
        fs, path = filesystem(uri)
        with fs.open(path, "rb") as f:
            try:
                reader = pacsv.open_csv(
                    f, read_options=pacsv.ReadOptions(block_size=8 << 20), convert_options=opts
                )
                for batch in reader:
                    batch = batch.filter(pc.is_in(batch.column("ImageID"), value_set=want))
                    for iid, deg in zip(
                        *(batch.column(c).to_pylist() for c in ("ImageID", "Rotation")), strict=True
                    ):
                        found[iid] = rotation_steps(deg)
            except (pa.ArrowInvalid, ValueError) as e:
                raise InputError(f"{uri}: unreadable image index ({e})") from e
    return image_ids.map(found).fillna(0).astype("int64")
