"""Aspect-ratio buckets: pairs train at their own shape (bucket sets, assignment, decoded pixels that
keep the source's aspect, micro-batches of one bucket, position ids on each bucket's grid, exact
resume), the reference's 768x512 (h x w) unchanged, and `--aspect stretch` = PhotoDoodle's loader."""

from __future__ import annotations

import io
import math
import os

import numpy as np
import pytest
import torch
from doodleflow.data.split import split_of
from doodleflow.data.store import DatasetStore
from doodleflow.infra.errors import ConfigError
from doodleflow.training.photodoodle.batches import cached_epochs, epoch_order
from doodleflow.training.photodoodle.buckets import MAX_ASPECT, Buckets, bucket_sizes
from doodleflow.training.photodoodle.config import PLAIN_BASE, ModelSource, TrainConfig
from doodleflow.training.photodoodle.data import PAIR_COLUMNS, decode_pairs, image_at, pixel_pairs
from doodleflow.training.photodoodle.job import plan_job
from doodleflow.training.photodoodle.tokens import image_ids, pack, sequence_ids
from PIL import Image

from tests.photodoodle.helpers import make_mixed_pair_dataset, photo_of
from tests.photodoodle.test_train import _train_in_process, _unfinish

SQUARE, LANDSCAPE, PORTRAIT = (240, 240), (300, 200), (200, 300)  # source sizes, w x h
# Their tiny-preset buckets (h x w) at 96 x 64 = 6,144 px.
TINY_BUCKET = {SQUARE: (80, 80), LANDSCAPE: (64, 96), PORTRAIT: (96, 64)}


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _rows(sizes) -> dict:
    imgs = [photo_of(s) for s in sizes]
    return {
        "pair_id": [f"p{i}" for i in range(len(sizes))],
        "artist": ["magic"] * len(sizes),
        "captions": [["add a halo by sksmagiceffects"]] * len(sizes),
        "source_jpeg": [_jpeg(im) for im in imgs],
        "target_jpeg": [_jpeg(im.transpose(Image.FLIP_LEFT_RIGHT)) for im in imgs],
    }


def test_bucket_sets_at_the_reference_and_tiny_budgets():
    for (h, w), square in (((768, 512), (624, 624)), ((96, 64), (80, 80))):
        budget = h * w
        sizes = bucket_sizes(budget)
        assert (h, w) in sizes and (w, h) in sizes and square in sizes  # the reference size is a bucket
        for bh, bw in sizes:
            assert bh % 16 == 0 and bw % 16 == 0
            assert max(bh / bw, bw / bh) <= MAX_ASPECT
            assert abs(bh * bw - budget) <= 8 * max(bh, bw)  # the nearest multiple of 16 for the other side
    assert len(bucket_sizes(768 * 512)) == 79 and len(bucket_sizes(96 * 64)) == 9


@pytest.mark.parametrize(
    "photo,bucket",
    [
        ((512, 768), (768, 512)),  # the reference's portrait 2:3: exactly its 768x512
        ((768, 512), (512, 768)),
        ((1000, 1000), (624, 624)),
        ((1920, 1080), (480, 832)),  # 16:9
        ((4000, 3000), (544, 720)),  # 4:3
        ((3000, 4000), (720, 544)),
    ],
)
def test_a_pair_goes_to_the_bucket_nearest_its_aspect(photo, bucket):
    b = Buckets.for_run(768, 512, "bucket")
    assert b.assign(*photo) == bucket
    w, h = photo
    assert abs(math.log((bucket[1] / bucket[0]) / (w / h))) < 0.03  # aspect kept within rounding
    assert Buckets.for_run(768, 512, "stretch").assign(*photo) == (768, 512)  # the reference: one size


def test_decoded_training_pixels_keep_the_source_aspect_and_stretch_is_the_reference():
    sizes = [SQUARE, LANDSCAPE, PORTRAIT]
    rows = _rows(sizes)
    out = decode_pairs(rows, Buckets.for_run(96, 64, "bucket"))
    stretched = decode_pairs(rows, Buckets.for_run(96, 64, "stretch"))
    for i, (w, h) in enumerate(sizes):
        src = image_at(out, "source", i)
        assert src.shape[:2] == TINY_BUCKET[(w, h)] and image_at(out, "target", i).shape == src.shape
        assert src.shape[1] / src.shape[0] == pytest.approx(w / h)  # nothing stretched
        # the same picture: the source resized to the bucket by another library agrees closely
        ref = np.asarray(
            photo_of((w, h)).resize((src.shape[1], src.shape[0]), Image.BILINEAR), dtype=np.float32
        )
        assert np.abs(src.astype(np.float32) - ref).mean() < 12
        assert image_at(stretched, "source", i).shape == (
            96,
            64,
            3,
        )  # --aspect stretch: PhotoDoodle's one size
    # A pair of the reference's 2:3 shape is decoded identically by both modes.
    ref_rows = _rows([(128, 192)])
    a = decode_pairs(ref_rows, Buckets.for_run(96, 64, "bucket"))
    b = decode_pairs(ref_rows, Buckets.for_run(96, 64, "stretch"))
    assert image_at(a, "source", 0).shape == (96, 64, 3)
    assert a["source"][0] == b["source"][0] and a["target"][0] == b["target"][0]
    px = pixel_pairs({k: v[:1] for k, v in out.items()}, "cpu")
    assert px.source.shape == (1, 3, 80, 80) and px.source.min() >= -1 and px.source.max() <= 1
    with pytest.raises(ValueError, match="one bucket"):
        pixel_pairs(out, "cpu")


def test_tokens_and_ids_at_768x512_equal_diffusers_flux_reference():
    """PhotoDoodle's pipeline (showlab/PhotoDoodle src/pipeline_pe_clone.py) packs with FluxPipeline's
    `_pack_latents` and clones `_prepare_latent_image_ids` for the condition: ours are the same at
    the reference's 768x512 (a 96x64 latent), and on a bucket's grid the ids follow that grid."""
    from diffusers import FluxPipeline

    lat = torch.randn(1, 16, 96, 64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(pack(lat), FluxPipeline._pack_latents(lat, 1, 16, 96, 64))
    ref_ids = FluxPipeline._prepare_latent_image_ids(1, 48, 32, "cpu", torch.float32)
    assert torch.equal(image_ids(96, 64), ref_ids)
    from doodleflow.training.photodoodle.config import ConditionConfig

    assert torch.equal(sequence_ids(96, 64, ConditionConfig("clone")), torch.cat([ref_ids, ref_ids]))
    landscape = sequence_ids(64, 104, ConditionConfig("clone"))  # a 512x832 bucket's latent
    ref_land = FluxPipeline._prepare_latent_image_ids(1, 32, 52, "cpu", torch.float32)
    assert torch.equal(landscape, torch.cat([ref_land, ref_land]))
    offset = sequence_ids(64, 104, ConditionConfig("offset"))[32 * 52 :]
    assert torch.equal(offset[:, 2], ref_land[:, 2] - 52)  # OminiControl's shift: that grid's packed width


class _Cache:
    """Just the bucket of each pair: what `epoch_order` reads."""

    def __init__(self, buckets):
        self.buckets = buckets

    def __len__(self):
        return len(self.buckets)

    def bucket(self, i):
        return self.buckets[i]


def test_epoch_order_micro_batches_hold_one_bucket_and_stretch_keeps_the_old_order():
    cache = _Cache([(10, 10)] * 5 + [(8, 12)] * 4 + [(12, 8)] * 3)
    for epoch in range(4):
        order = epoch_order(cache, 7, epoch, 2)
        assert len(order) == 5 // 2 + 4 // 2 + 3 // 2  # the same count every epoch
        assert all(len(mb) == 2 and len({cache.bucket(i) for i in mb}) == 1 for mb in order)
        assert len({i for mb in order for i in mb}) == 10
    # One bucket: the seeded permutation cut into consecutive micro-batches, as before buckets.
    one = _Cache([(10, 10)] * 7)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(7 * 100_003 + 3)).tolist()
    assert epoch_order(one, 7, 3, 2) == [perm[0:2], perm[2:4], perm[4:6]]


def _mixed_dataset(root: str, sizes: list[tuple[int, int]]) -> tuple[str, str]:
    """A committed pair dataset "magic", one pair of each (w, h) in `sizes`, none held out (the file
    names move the pair ids until the version's split keeps every pair for training)."""
    for attempt in range(50):
        src, store = os.path.join(root, f"src{attempt}"), os.path.join(root, f"store{attempt}")
        make_mixed_pair_dataset(src, store, "magic", sizes, tag=f"{attempt}-")
        ds = DatasetStore(store, "magic")
        ids = ds.read_table(1, columns=["pair_id"]).column("pair_id").to_pylist()
        if not split_of(ds.manifest(1)).heldout_mask(ids).any():
            return store, src
    raise AssertionError("no attempt kept every pair for training")


def _cfg(store: str, tiny_dir: str, **data) -> TrainConfig:
    cfg = TrainConfig.for_stage("editlora", "tiny", store=store, dataset="magic", artist="magic", steps=3)
    source = ModelSource(preset="tiny", tiny_root=os.path.dirname(tiny_dir), base_transformer=PLAIN_BASE)
    return cfg.replace(model={"source": source}, data=data)


def test_square_landscape_and_portrait_pairs_train_together_each_at_its_bucket(tiny_dir, tmp_path):
    store, _ = _mixed_dataset(str(tmp_path), [SQUARE, LANDSCAPE, PORTRAIT])
    cfg = _cfg(store, tiny_dir, cache="on")
    logs: list[str] = []
    plan = plan_job(cfg, log=logs.append)
    assert plan.counts["buckets"] == {"64x96": 1, "80x80": 1, "96x64": 1}
    assert any("aspect buckets at 6,144 px (h x w: 64x96 x1, 80x80 x1, 96x64 x1)" in m for m in logs), logs
    # The training input, decoded: each pair at its bucket, the source's aspect kept.
    rows = DatasetStore(store, "magic").read_table(1, columns=PAIR_COLUMNS).to_pydict()
    dec = decode_pairs(rows, plan.cfg.data.buckets())
    shapes = sorted(image_at(dec, "source", i).shape[:2] for i in range(3))
    assert shapes == sorted(TINY_BUCKET.values())

    seen = []  # (latent h x w of the call's image tokens, img_ids)

    def hook(_mod, _args, kwargs):
        seen.append((kwargs["hidden_states"].shape[1], kwargs["img_ids"].clone()))

    def on_model(m):
        m.transformer.register_forward_pre_hook(hook, with_kwargs=True)

    result, _ = _train_in_process(cfg.replace(run={"run_name": "mixed"}), on_model)
    assert result["steps"] == 3 and math.isfinite(result["final_loss"])
    grids = {}
    for n_tokens, ids in seen:
        n = n_tokens // 2
        target, cond = ids[:n], ids[n:]
        assert torch.equal(cond, target)  # clone: the condition's ids are the target's, on its grid
        grids[(int(target[:, 1].max()) + 1, int(target[:, 2].max()) + 1)] = n
    # every bucket trained (3 steps = one epoch of 3 pairs), each on its own packed grid (h/16, w/16)
    assert grids == {(h // 16, w // 16): (h // 16) * (w // 16) for h, w in TINY_BUCKET.values()}


def test_bucketed_micro_batches_resume_exactly_mid_epoch(tiny_dir, tmp_path):
    """Micro-batches of 2 from one bucket each (two pairs per bucket: 3 per epoch); a run split at
    step 2 continues bit-identically across the epoch boundary."""
    store, _ = _mixed_dataset(str(tmp_path), [SQUARE, LANDSCAPE, PORTRAIT] * 2)

    def cfg(**run):
        c = _cfg(store, tiny_dir, cache="on", batch_size=2, micro_batch=2)
        return c.replace(run={"steps": 4, "checkpoint_every": 2, **run})

    straight, w_straight = _train_in_process(cfg(run_name="straight"))
    _train_in_process(cfg(run_name="split", steps=2))
    _unfinish(store, "split")  # as a run stopped after its step-2 checkpoint: a finished one is not retrained
    resumed, w_resumed = _train_in_process(cfg(run_name="split", resume=True))
    assert resumed["resumed_from"] == 2 and resumed["batch"]["micro"] == 2
    assert all(torch.equal(w_straight[k], w_resumed[k]) for k in w_straight)
    assert resumed["final_loss"] == pytest.approx(straight["final_loss"], abs=0)


def test_streamed_bucket_runs_take_micro_batches_of_one(tiny_dir, tmp_path):
    store, _ = _mixed_dataset(str(tmp_path), [SQUARE, LANDSCAPE])
    with pytest.raises(ConfigError, match="--micro-batch 2 with streamed pairs needs --aspect stretch"):
        plan_job(_cfg(store, tiny_dir, cache="off", batch_size=2, micro_batch=2), log=lambda m: None)
    plan = plan_job(_cfg(store, tiny_dir, cache="off", batch_size=2, micro_batch=2, aspect="stretch"),
                    log=lambda m: None)  # fmt: skip
    assert plan.cache_dir is None and plan.counts["buckets"] == {"96x64": 2}


def test_cached_epochs_refuse_too_few_one_bucket_micro_batches(tiny_dir):
    class T:
        cfg = TrainConfig.for_stage("editlora", "tiny", artist="a").replace(
            data={"batch_size": 2, "micro_batch": 2}
        )
        step = 0

    with pytest.raises(ConfigError, match="make fewer micro-batches of one bucket"):
        cached_epochs(_Cache([(10, 10), (8, 12), (12, 8)]), T(), 0, 1)
