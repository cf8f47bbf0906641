"""PhotoDoodle's streamed pairs (runs too large to cache, e.g. the OmniEditor): the version's Parquet
parts as a Ray Data stream of decoded uint8 pairs, one Ray module beside the shared launcher
(training/runtime/launch.py)."""

from __future__ import annotations

from doodleflow.training.photodoodle.job import DoodlePlan
from doodleflow.training.runtime.ray_utils import arrow_filesystem


def pair_stream(plan: DoodlePlan):
    """The version's Parquet parts as a Ray Data stream of decoded uint8 pairs."""
    import ray.data
    from doodleflow.training.photodoodle.data import PAIR_COLUMNS, decode_pairs

    fs, paths = arrow_filesystem(plan.cfg.run.store, plan.parts)
    ds = ray.data.read_parquet(paths, filesystem=fs, columns=PAIR_COLUMNS)
    kw = {"buckets": plan.cfg.data.buckets(), "artist": plan.artist_filter, "heldout": plan.heldout}
    ds = ds.map_batches(decode_pairs, batch_format="numpy", batch_size=8, fn_kwargs=kw)
    ds.context.execution_options.preserve_order = True  # the same stream on every pass (ordered_ingest)
    return ds
