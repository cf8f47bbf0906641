"""FID Inception: tiny preset shapes / determinism / round trip; full-size layout on the meta device;
the pytorch-fid checkpoint converter on a synthetic checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from doodleflow.training.eval.convert_inception import convert, convert_state_dict
from doodleflow.training.eval.inception import TINY_INCEPTION, InceptionConfig, InceptionV3FID
from PIL import Image

from tests.eval.helpers import random_images


def test_tiny_features_shape_determinism_and_input_types(inception):
    imgs = random_images(2, seed=0) + random_images(1, seed=1, size=(50, 40))
    f1 = inception.features(imgs, batch_size=2)
    assert f1.shape == (3, TINY_INCEPTION.feature_dim) == (3, 128)
    assert f1.dtype == np.float64
    np.testing.assert_array_equal(f1, inception.features(imgs, batch_size=2))  # deterministic
    # Other batch sizes may pick other conv kernels, and PIL input must read as the uint8 array.
    f_pil = inception.features([Image.fromarray(im) for im in imgs], batch_size=3)
    np.testing.assert_allclose(f_pil, f1, rtol=1e-4, atol=1e-5)
    assert f1.std(axis=0).mean() > 1e-3  # calibrated BN: images do not collapse to one point


def test_save_load_round_trip(inception, tmp_path):
    path = inception.save_pretrained(str(tmp_path / "copy"))
    again = InceptionV3FID.from_pretrained(path)
    assert again.config == inception.config
    for (k, v), (k2, v2) in zip(inception.state_dict().items(), again.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2)
    imgs = random_images(2, seed=3)
    np.testing.assert_array_equal(again.features(imgs), inception.features(imgs))


def test_clip_preprocess_option_changes_the_input(inception):
    imgs = random_images(2, seed=4)
    quirk = inception.features(imgs, clip_preprocess=True)
    assert quirk.shape == (2, 128)
    assert not np.allclose(quirk, inception.features(imgs))


def test_full_size_layout_on_meta():
    with torch.device("meta"):
        model = InceptionV3FID(InceptionConfig())
        out = model(torch.empty(2, 3, 299, 299))
    assert model.config.feature_dim == 2048 and out.shape == (2, 2048)
    state = model.state_dict()
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert state["Conv2d_4a_3x3.bn.running_var"].shape == (192,)
    assert state["Mixed_5b.branch_pool.conv.weight"].shape == (32, 192, 1, 1)
    assert state["Mixed_6e.branch7x7_2.conv.weight"].shape == (192, 192, 1, 7)
    assert state["Mixed_7c.branch_pool.conv.weight"].shape == (192, 2048, 1, 1)
    assert not any(k.startswith(("fc.", "AuxLogits.")) for k in state)
    # torchvision's inception_v3 has 27,161,264 parameters; minus AuxLogits and the 1000-way fc.
    assert sum(p.numel() for p in model.parameters()) == 21_785_568


def test_convert_synthetic_pytorch_fid_checkpoint(inception, tmp_path):
    # pytorch-fid's file carries a 1008-way fc and (old torch) no num_batches_tracked counters.
    state = {k: v for k, v in inception.state_dict().items() if not k.endswith("num_batches_tracked")}
    state["fc.weight"] = torch.zeros(1008, TINY_INCEPTION.feature_dim)
    state["fc.bias"] = torch.zeros(1008)
    torch.save(state, tmp_path / "pt_inception.pth")
    out = convert(str(tmp_path / "pt_inception.pth"), str(tmp_path / "converted"), TINY_INCEPTION)
    converted = InceptionV3FID.from_pretrained(out).state_dict()
    for k, v in inception.state_dict().items():
        assert torch.equal(converted[k], v if not k.endswith("num_batches_tracked") else torch.tensor(0))
    del state["Mixed_7c.branch_pool.conv.weight"]
    with pytest.raises(ValueError, match="missing"):
        convert_state_dict(state, TINY_INCEPTION)
