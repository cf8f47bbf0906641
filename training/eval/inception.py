"""Inception-v3 as used for FID (pytorch-fid's `fid_inception_v3`), in plain torch.

The network is TF's 2015-12-05 Inception graph as ported by pytorch-fid: torchvision's Inception3 stem
and Mixed blocks, with the FID patches (`FIDInceptionA/C/E_1`: average pools that ignore the zero
padding; `FIDInceptionE_2`: a max pool in Mixed_7c's pool branch). Input handling is pytorch-fid's
InceptionV3 wrapper: [0, 1] RGB, bilinear resize to 299x299 (align_corners=False), scale to [-1, 1];
the output is the pool3 vector (2048-d at full width).

State-dict keys equal pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` minus `fc.*` (pool3 needs
no classifier), e.g. `Conv2d_1a_3x3.conv.weight`, `Conv2d_1a_3x3.bn.running_var`,
`Mixed_5b.branch5x5_1.conv.weight`, `Mixed_7c.branch_pool.bn.bias`; convert_inception.py turns that
file into this module's directory format (config.json + model.safetensors).

`InceptionConfig.width` multiplies every channel count, so the tiny preset used by tests and the demo
is this same class with narrow layers (its features mean nothing; the code path is the real one).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from doodleflow.infra.errors import ConfigError
from doodleflow.training.eval.images import ImageLike, batched, to_tensor
from doodleflow.training.eval.images import clip_preprocess as _clip_preprocess
from torch import nn

CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"


@dataclass(frozen=True)
class InceptionConfig:
    """width: channel multiplier (1.0 = the real network); input_size: side of the resized input."""

    width: float = 1.0
    input_size: int = 299
    architecture: str = "fid-inception-v3"

    def ch(self, channels: int) -> int:
        return max(1, round(channels * self.width))

    @property
    def feature_dim(self) -> int:
        """pool3 size = Mixed_7c's four branches: 320 + 2*384 + 2*384 + 192 at full width."""
        return self.ch(320) + 4 * self.ch(384) + self.ch(192)


TINY_INCEPTION = InceptionConfig(width=1 / 16)  # pool3 dim 128


class BasicConv2d(nn.Module):
    """conv (no bias) -> BatchNorm(eps=1e-3) -> ReLU, torchvision's Inception unit."""

    def __init__(self, cin: int, cout: int, kernel_size, stride=1, padding=0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TF's average pool does not count the zero padding (the pytorch-fid patch).
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int, c) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, c(64), 1)
        self.branch5x5_1 = BasicConv2d(cin, c(48), 1)
        self.branch5x5_2 = BasicConv2d(c(48), c(64), 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, c(64), 1)
        self.branch3x3dbl_2 = BasicConv2d(c(64), c(96), 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(c(96), c(96), 3, padding=1)
        self.branch_pool = BasicConv2d(cin, c(pool_features), 1)
        self.out_channels = 2 * c(64) + c(96) + c(pool_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_tf_avg_pool(x))], 1)


class InceptionB(nn.Module):
    """Mixed_6a (grid reduction 35 -> 17); unpatched in pytorch-fid."""

    def __init__(self, cin: int, c) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, c(384), 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, c(64), 1)
        self.branch3x3dbl_2 = BasicConv2d(c(64), c(96), 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(c(96), c(96), 3, stride=2)
        self.out_channels = c(384) + c(96) + cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class FIDInceptionC(nn.Module):
    def __init__(self, cin: int, channels_7x7: int, c) -> None:
        super().__init__()
        c7 = c(channels_7x7)
        self.branch1x1 = BasicConv2d(cin, c(192), 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, c(192), (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, c(192), (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, c(192), 1)
        self.out_channels = 4 * c(192)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for i in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{i}")(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_tf_avg_pool(x))], 1)


class InceptionD(nn.Module):
    """Mixed_7a (grid reduction 17 -> 8); unpatched in pytorch-fid."""

    def __init__(self, cin: int, c) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, c(192), 1)
        self.branch3x3_2 = BasicConv2d(c(192), c(320), 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, c(192), 1)
        self.branch7x7x3_2 = BasicConv2d(c(192), c(192), (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(c(192), c(192), (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(c(192), c(192), 3, stride=2)
        self.out_channels = c(320) + c(192) + cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for i in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{i}")(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class FIDInceptionE(nn.Module):
    """Mixed_7b (pool="avg", FIDInceptionE_1) and Mixed_7c (pool="max", FIDInceptionE_2).

    The max pool in Mixed_7c is how TF's FID graph is built (pytorch-fid calls it a likely bug of
    that graph, kept for comparability).
    """

    def __init__(self, cin: int, pool: str, c) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, c(320), 1)
        self.branch3x3_1 = BasicConv2d(cin, c(384), 1)
        self.branch3x3_2a = BasicConv2d(c(384), c(384), (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(c(384), c(384), (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, c(448), 1)
        self.branch3x3dbl_2 = BasicConv2d(c(448), c(384), 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(c(384), c(384), (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(c(384), c(384), (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, c(192), 1)
        self.out_channels = c(320) + 4 * c(384) + c(192)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.pool == "max" else _tf_avg_pool(x)
        return torch.cat([self.branch1x1(x), b3, d, self.branch_pool(pooled)], 1)


class InceptionV3FID(nn.Module):
    """pytorch-fid's InceptionV3(output_blocks=[3]) as one module: images -> pool3 features."""

    def __init__(self, config: InceptionConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or InceptionConfig()
        c = config.ch
        self.Conv2d_1a_3x3 = BasicConv2d(3, c(32), 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(c(32), c(32), 3)
        self.Conv2d_2b_3x3 = BasicConv2d(c(32), c(64), 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(c(64), c(80), 1)
        self.Conv2d_4a_3x3 = BasicConv2d(c(80), c(192), 3)
        self.Mixed_5b = FIDInceptionA(c(192), 32, c)
        self.Mixed_5c = FIDInceptionA(self.Mixed_5b.out_channels, 64, c)
        self.Mixed_5d = FIDInceptionA(self.Mixed_5c.out_channels, 64, c)
        self.Mixed_6a = InceptionB(self.Mixed_5d.out_channels, c)
        self.Mixed_6b = FIDInceptionC(self.Mixed_6a.out_channels, 128, c)
        self.Mixed_6c = FIDInceptionC(self.Mixed_6b.out_channels, 160, c)
        self.Mixed_6d = FIDInceptionC(self.Mixed_6c.out_channels, 160, c)
        self.Mixed_6e = FIDInceptionC(self.Mixed_6d.out_channels, 192, c)
        self.Mixed_7a = InceptionD(self.Mixed_6e.out_channels, c)
        self.Mixed_7b = FIDInceptionE(self.Mixed_7a.out_channels, "avg", c)
        self.Mixed_7c = FIDInceptionE(self.Mixed_7b.out_channels, "max", c)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, feature_dim) pool3 activations."""
        size = self.config.input_size
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), kernel_size=3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def _input(self, image: ImageLike, clip_preprocess_input: bool) -> torch.Tensor:
        # PbE's quirk (quality.py): CLIP-normalized 224 crops enter the [0, 1] input path as they are.
        x = _clip_preprocess(image) if clip_preprocess_input else to_tensor(image)
        size = self.config.input_size
        # Per image, so a batch may mix sizes; pytorch-fid resizes the same way inside forward.
        return F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False)[0]

    @torch.no_grad()
    def features(
        self, images: Sequence[ImageLike], batch_size: int = 50, clip_preprocess: bool = False
    ) -> np.ndarray:
        """(N, feature_dim) float64 pool3 features of PIL / uint8 images (pytorch-fid's activations)."""
        device = next(self.parameters()).device
        out = [np.zeros((0, self.config.feature_dim))]
        for chunk in batched(list(images), batch_size):
            x = torch.stack([self._input(im, clip_preprocess) for im in chunk]).to(device)
            out.append(self(x).double().cpu().numpy())
        return np.concatenate(out)

    def save_pretrained(self, path: str) -> str:
        """Write config.json + model.safetensors to `path`; returns `path`."""
        from safetensors.torch import save_file

        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, CONFIG_NAME), "w") as f:
            json.dump(dataclasses.asdict(self.config), f, indent=2)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, os.path.join(path, WEIGHTS_NAME), metadata={"format": "pt"})
        return path

    @classmethod
    def from_pretrained(cls, path: str, device: str | torch.device = "cpu") -> InceptionV3FID:
        """Load a directory written by save_pretrained or convert_inception.py (strict key match)."""
        from safetensors.torch import load_file

        config = load_config(path)
        model = cls(config)
        model.load_state_dict(load_file(os.path.join(path, WEIGHTS_NAME)), strict=True)
        return model.to(device).eval()


def load_config(path: str) -> InceptionConfig:
    """InceptionConfig from `path`/config.json (unknown keys are an error: a wrong directory)."""
    with open(os.path.join(path, CONFIG_NAME)) as f:
        raw = json.load(f)
    known = {f.name for f in dataclasses.fields(InceptionConfig)}
    if set(raw) - known or raw.get("architecture", "fid-inception-v3") != "fid-inception-v3":
        raise ConfigError(f"{path} is not an FID Inception directory: config keys {sorted(raw)}")
    return InceptionConfig(**raw)


def tiny_inception(path: str, seed: int = 0) -> str:
    """Write a random narrow InceptionV3FID (width 1/16, pool3 dim 128) to `path`; returns `path`.

    Batch-norm statistics are calibrated on one batch of noise images: with the default (identity)
    statistics a random deep net's activations shrink layer by layer and every image gets nearly the
    same features, which would make FID tests on the tiny model vacuous.
    """
    torch.manual_seed(seed)
    model = InceptionV3FID(TINY_INCEPTION)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: one batch sets the statistics exactly
    model.train()
    with torch.no_grad():
        model(torch.rand(3, 3, TINY_INCEPTION.input_size, TINY_INCEPTION.input_size))
    for bn in bns:
        bn.momentum = 0.1
    return model.eval().save_pretrained(path)
