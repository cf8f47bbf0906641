"""CLIP metrics on the tiny random CLIP (loaded back from its directory): hand-made masks, region
score by hand, CLIP_img of identical images, text score against the HF model's own methods."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from doodleflow.training.eval.clip import (
    clip_img_score,
    clip_text_score,
    crop_to_mask,
    mask_bbox,
    region_clip_score,
)
from doodleflow.training.eval.fid import fid
from doodleflow.training.eval.images import CLIP_MEAN, CLIP_STD, clip_preprocess
from PIL import Image

from tests.eval.helpers import random_images


def _embed_by_hand(clip, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = clip.model.get_image_features(pixel_values=pixels)
    return getattr(out, "pooler_output", out)


def _norm(x: torch.Tensor) -> torch.Tensor:
    return (x - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)


def test_mask_bbox_on_hand_made_masks():
    m = np.zeros((10, 12), np.uint8)
    m[2:5, 3:9] = 255
    assert mask_bbox(m) == (2, 3, 4, 8)
    m[7, 1] = 255  # an L-shaped region: the box covers both parts
    assert mask_bbox(m) == (2, 1, 7, 8)
    single = np.zeros((4, 4), np.uint8)
    single[1, 2] = 255
    assert mask_bbox(single) == (1, 2, 1, 2)
    soft = np.full((4, 4), 254, np.uint8)  # below PbE's == 255 test unless the threshold says so
    assert mask_bbox(soft) is None and mask_bbox(soft, threshold=128) == (0, 0, 3, 3)
    rgb = np.stack([m, np.zeros_like(m), np.zeros_like(m)], -1)  # first channel, as cv2 grayscale
    assert mask_bbox(rgb) == mask_bbox(m) == mask_bbox(Image.fromarray(m))
    assert mask_bbox(m == 255) == mask_bbox(m)
    assert mask_bbox(np.zeros((5, 5), np.uint8)) is None


def test_crop_to_mask_slices_as_pbe_and_handles_edge_cases():
    img = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    m = np.zeros((10, 12), np.uint8)
    m[2:5, 3:9] = 255
    crop = crop_to_mask(img, m)
    assert crop.shape == (3, 2, 5)  # rows 2..3, cols 3..7: PbE drops the last row and column
    torch.testing.assert_close(crop, torch.from_numpy(img[2:4, 3:8]).permute(2, 0, 1).float() / 255)
    thin = np.zeros((10, 12), np.uint8)
    thin[4, 2:6] = 255
    assert crop_to_mask(img, thin).shape == (3, 1, 3)
    with pytest.warns(UserWarning, match="empty mask"):
        assert crop_to_mask(img, np.zeros((10, 12), np.uint8)).shape == (3, 10, 12)
    with pytest.raises(ValueError, match="sizes differ"):
        crop_to_mask(img, np.zeros((8, 12), np.uint8))


def test_region_score_by_hand(clip):
    ref = random_images(1, seed=7, size=(48, 64))[0]
    out = random_images(1, seed=8, size=(128, 160))[0].copy()
    top, left, h, w = 20, 30, 48, 64
    out[top : top + h, left : left + w] = ref
    mask = np.zeros(out.shape[:2], np.uint8)
    mask[top : top + h + 1, left : left + w + 1] = 255  # PbE's slice ends at the last white row/col
    s = clip.image_size
    crop = F.interpolate(
        torch.from_numpy(ref).permute(2, 0, 1)[None].float() / 255, size=(s, s), mode="bilinear"
    )
    ref_px = torch.from_numpy(np.array(Image.fromarray(ref).resize((s, s), Image.BICUBIC))).permute(2, 0, 1)
    a = _embed_by_hand(clip, _norm(crop[0])[None])
    b = _embed_by_hand(clip, _norm(ref_px.float() / 255)[None])
    by_hand = 100 * float(F.cosine_similarity(a, b))
    mean, per_image = region_clip_score([out, Image.fromarray(out)], [mask, mask], [ref, ref], clip)
    assert per_image == pytest.approx([by_hand, by_hand], abs=1e-3)
    assert mean == pytest.approx(by_hand, abs=1e-3)


def test_clip_img_identical_is_one_and_bounded(clip):
    imgs = random_images(3, seed=1)
    mean, per_image = clip_img_score(imgs, [Image.fromarray(i) for i in imgs], clip)
    assert per_image == pytest.approx([1.0] * 3, abs=1e-5) and mean == pytest.approx(1.0, abs=1e-5)
    _, other = clip_img_score(imgs, random_images(3, seed=2), clip)
    assert all(-1.0 <= v < 1.0 - 1e-6 for v in other)


def test_preprocess_matches_the_hf_processor(clip, tiny_clip_dir):
    from doodleflow.training.eval.clip import _image_processor_class

    proc = _image_processor_class().from_pretrained(tiny_clip_dir)
    img = random_images(1, seed=3, size=(112, 140))[0]  # even crop margins: HF floors, torchvision rounds
    hf = proc(images=Image.fromarray(img), return_tensors="pt")["pixel_values"][0]
    torch.testing.assert_close(
        clip_preprocess(img, clip.image_size, clip.mean, clip.std), hf, atol=1e-5, rtol=0
    )


def test_clip_text_score_by_hand(clip):
    imgs, texts = random_images(2, seed=4), ["a doodle of a cat", "a red hat, drawn in ink!"]
    mean, per_image = clip_text_score(imgs, texts, clip)
    tok = clip.tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        t = clip.model.get_text_features(**tok)
    t = getattr(t, "pooler_output", t)
    i = _embed_by_hand(clip, torch.stack([clip_preprocess(x) for x in imgs]))
    by_hand = (100 * F.cosine_similarity(i, t)).tolist()
    assert per_image == pytest.approx(by_hand, abs=1e-3) and mean == pytest.approx(np.mean(by_hand), abs=1e-3)
    with pytest.raises(ValueError):
        clip_text_score(imgs, texts[:1], clip)


def test_clip_features_feed_fid(clip):
    a = random_images(3, seed=5)
    feats = clip.features(a)
    assert feats.shape == (3, clip.model.config.projection_dim) and feats.dtype == np.float64
    assert abs(fid(a, a, clip)) < 1e-6 * max(1.0, fid(a, random_images(3, seed=6), clip))
