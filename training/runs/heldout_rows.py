"""A few held-out rows of a dataset version, read without loading the whole version: the id columns
of every part first, then only the parts that hold the chosen rows. Samples while training use them
(training/runtime/previews.py), so their inputs are rows the run never trains on (data/split.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RowPick:
    """Which rows: `n` distinct `split_on` ids (the split's id: image or pair), in sorted order, the
    first row of each; `where` = (column, value) keeps one artist's rows of a shared dataset."""

    split_on: str
    columns: tuple[str, ...]
    n: int
    where: tuple[str, str] | None = None


def heldout_rows(store: str, dataset: str, version: int, pick: RowPick) -> tuple[list[dict], bool]:
    """(rows, whether they are held out): a version too small to hold anything out gives its
    training rows instead, and says so (as the evaluators do)."""
    import pyarrow.parquet as pq
    from doodleflow.data.split import split_of
    from doodleflow.data.store import DatasetStore

    ds = DatasetStore(store, dataset)
    split = split_of(ds.manifest(version))
    id_cols = [pick.split_on] + ([pick.where[0]] if pick.where else [])
    found: list[tuple[str, int, int]] = []  # (id, part, row)
    paths = ds.part_paths(version)
    for k, p in enumerate(paths):
        with ds.fs.open(p, "rb") as f:
            t = pq.read_table(f, columns=id_cols).to_pydict()
        ids = t[pick.split_on]
        keep = [i for i in range(len(ids)) if not pick.where or t[pick.where[0]][i] == pick.where[1]]
        found += [(str(ids[i]), k, i) for i in keep]
    held: Any = split.heldout_mask([f[0] for f in found]) if found else []
    chosen = _first_per_id([f for f, h in zip(found, held, strict=True) if h], pick.n)
    heldout = bool(chosen)
    if not chosen:
        chosen = _first_per_id(found, pick.n)
    rows: list[dict] = []
    for k in sorted({c[1] for c in chosen}):
        with ds.fs.open(paths[k], "rb") as f:
            t = pq.read_table(f, columns=list(pick.columns))
        rows += [dict(id=c[0], **t.slice(c[2], 1).to_pylist()[0]) for c in chosen if c[1] == k]
    rows.sort(key=lambda r: r["id"])
    return rows, heldout


def _first_per_id(found: list[tuple[str, int, int]], n: int) -> list[tuple[str, int, int]]:
    out: dict[str, tuple[str, int, int]] = {}
    for f in sorted(found):
        out.setdefault(f[0], f)
    return [out[i] for i in sorted(out)[:n]]
