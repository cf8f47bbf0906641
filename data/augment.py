"""The reference augmentation of Paint-by-Example, on albumentations 2.0.8.

PbE pinned albumentations 0.4.3: `Resize(224,224) -> HorizontalFlip(0.5) -> Rotate(20) -> Blur(0.3) ->
ElasticTransform(0.3)`. Two defaults changed since then and are restored explicitly here:
- `Rotate` borders were reflect-101 (2.x defaults to a constant border);
- 0.4.3's `ElasticTransform(alpha=1, sigma=50, alpha_affine=50)` first applied a random affine warp
  (three points moved by up to +-50 px), then a smoothed displacement field. 2.x dropped the affine
  part, which at alpha=1 is nearly all of the visible effect, so `LegacyElastic` re-implements 0.4.3.

Every draw comes from the Compose's seeded generators, and the applied parameters are returned so
that each stored sample records what was done to its reference.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # otherwise every import tries the network

import cv2
import numpy as np
from doodleflow.data.config import SampleConfig
from doodleflow.data.imageio import halve_to_within_2x


def _albumentations():
    """albumentations without torch. Its package init also imports its PyTorch helpers (ToTensorV2),
    and so torch: ~3 s of every refresh worker's start-up for a module curation never uses. They are
    hidden during this import (the package skips them on ImportError); a later
    `import albumentations.pytorch` still works."""
    hide = "torch" not in sys.modules and "albumentations" not in sys.modules
    if hide:
        sys.modules["albumentations.pytorch"] = None  # type: ignore[assignment]
    try:
        import albumentations
    finally:
        if hide:
            del sys.modules["albumentations.pytorch"]
    return albumentations


if TYPE_CHECKING:
    import albumentations as A
else:
    A = _albumentations()


@functools.lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The identity sampling grid of an h x w image (always 224 x 224 here: built once, not per call)."""
    x, y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    x.flags.writeable = y.flags.writeable = False
    return x, y


class LegacyElastic(A.ImageOnlyTransform):
    """albumentations 0.4.3's ElasticTransform: random affine warp, then a smoothed displacement."""

    def __init__(
        self,
        alpha: float = 1.0,
        sigma: float = 50.0,
        alpha_affine: float = 50.0,
        approximate: bool = False,
        p: float = 0.5,
    ) -> None:
        super().__init__(p=p)
        self.alpha, self.sigma, self.alpha_affine, self.approximate = alpha, sigma, alpha_affine, approximate

    def get_params(self) -> dict[str, Any]:
        shift = self.random_generator.uniform(-self.alpha_affine, self.alpha_affine, size=(3, 2))
        return {
            "affine_shift": shift.astype(np.float32),
            "field_seed": int(self.random_generator.integers(2**31)),
        }

    def apply(self, img: np.ndarray, affine_shift: np.ndarray, field_seed: int, **_: Any) -> np.ndarray:
        h, w = img.shape[:2]
        center = np.array((h, w), np.float32) // 2  # (h, w) order, as 0.4.3 wrote it
        size = min(h, w) // 3
        pts1 = np.array([center + size, [center[0] + size, center[1] - size], center - size], np.float32)
        matrix = cv2.getAffineTransform(pts1, pts1 + affine_shift)
        img = cv2.warpAffine(img, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        field = np.random.default_rng(field_seed)
        dx = field.random((h, w), dtype=np.float32) * 2 - 1
        dy = field.random((h, w), dtype=np.float32) * 2 - 1
        if self.approximate:  # 0.4.3's own fast path: a fixed 17x17 kernel
            dx, dy = cv2.GaussianBlur(dx, (17, 17), self.sigma), cv2.GaussianBlur(dy, (17, 17), self.sigma)
        else:
            dx, dy = cv2.GaussianBlur(dx, (0, 0), self.sigma), cv2.GaussianBlur(dy, (0, 0), self.sigma)
        x, y = _grid(h, w)
        return cv2.remap(
            img, x + dx * self.alpha, y + dy * self.alpha, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("alpha", "sigma", "alpha_affine", "approximate")


def reference_pipeline(cfg: SampleConfig) -> A.Compose:
    size = cfg.reference_size
    return A.Compose(
        [
            # Bilinear, as PbE's albumentations default; `augment_reference` first box-halves the crop
            # to within 2x of `size`, so this stays anti-aliased (see data.imageio.resize).
            A.Resize(size, size, interpolation=cv2.INTER_LINEAR),
            A.HorizontalFlip(p=0.5),
            A.Rotate(limit=20, border_mode=cv2.BORDER_REFLECT_101, p=0.5),
            A.Blur(blur_limit=(3, 7), p=0.3),
            LegacyElastic(alpha=1, sigma=50, alpha_affine=50, approximate=cfg.elastic_approximate, p=0.3),
        ],
        save_applied_params=True,
    )


_local = threading.local()


def _pipeline_for(cfg: SampleConfig) -> A.Compose:
    """One Compose per thread and config: reseeding a shared instance from two threads would race."""
    cache = getattr(_local, "pipelines", None)
    if cache is None:
        cache = _local.pipelines = {}
    if cfg not in cache:
        cache[cfg] = reference_pipeline(cfg)
    return cache[cfg]


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return np.round(v.astype(float), 4).tolist() if v.size <= 16 else None
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, float):
        return round(v, 6)
    return v if isinstance(v, (int, str, bool, type(None))) else None


# Applied-parameter keys that restate the config or the image shape rather than a random draw.
_NOISE_KEYS = {
    "shape",
    "bbox_matrix",
    "fill",
    "fill_mask",
    "x_min",
    "x_max",
    "y_min",
    "y_max",
    "interpolation",
}


def _reseed(pipe: A.Compose, seed: int) -> None:
    """Give each random transform its own stream derived from the sample's seed.

    Compose.set_random_seed gives every transform the same seed, which makes their `p` draws
    identical (all applied or none). The Compose itself is not reseeded: its generator only draws
    `random() < p` with p = 1, which never changes the outcome. Resize draws nothing. Reseeding
    costs ~25 us per transform (two generators), so only what draws is reseeded.
    """
    states = np.random.SeedSequence(seed).generate_state(len(pipe.transforms))
    for t, s in zip(pipe.transforms, states.tolist(), strict=True):
        if not isinstance(t, A.Resize):
            t.set_random_seed(s)


def augment_reference(crop: np.ndarray, cfg: SampleConfig, seed: int) -> tuple[np.ndarray, str]:
    """Resize + augment one reference crop; returns the image and the applied parameters as JSON."""
    pipe = _pipeline_for(cfg)
    _reseed(pipe, seed)
    size = (cfg.reference_size, cfg.reference_size)
    out = pipe(image=halve_to_within_2x(crop, size))
    applied = [
        {"transform": name, **{k: _jsonable(v) for k, v in params.items() if k not in _NOISE_KEYS}}
        for name, params in out.get("applied_transforms", [])
        if name != "Resize"
    ]
    return out["image"], json.dumps(applied, sort_keys=True)
