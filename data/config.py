"""Typed configuration for curation, one dataclass per concern.

Defaults follow Paint-by-Example's official loader (Fantasy-Studio/Paint-by-Example
`scripts/read_bbox.py` and `ldm/data/open-images.py`, `OpenImageDataset`).
The config's hash is part of every work unit's key, so changing a field re-builds what it affects.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from doodleflow.infra.errors import ConfigError


@dataclass(frozen=True)
class BoxFilterConfig:
    """Which boxes become samples. Only the area filter is on by default, as in PbE's read_bbox.py."""

    min_area: float = 0.02
    max_area: float = 0.8
    drop_group_of: bool = False
    drop_depiction: bool = False
    min_side_px: int = 0
    allow_labels: tuple[str, ...] = ()
    deny_labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class SampleConfig:
    """Geometry, mask and augmentation of one sample (PbE OpenImageDataset.__getitem__)."""

    image_size: int = 512
    reference_size: int = 224
    reference_pad_px: int = 10
    extend_ratio: float = 0.4
    crop_shrink_ratio: float = 0.6
    bezier_mask_prob: float = 0.5
    bezier_jitter_px: int = 5
    # PbE resizes the mask bilinearly and never re-binarizes it; keep that unless asked otherwise.
    binarize_mask: bool = False
    jpeg_quality: int = 95
    # Elastic is PbE's only expensive augmentation; the 'approximate' kernel is ~4x cheaper and the
    # displacement field at alpha=1 is sub-pixel either way (see data/augment.py).
    elastic_approximate: bool = True


@dataclass(frozen=True)
class CurationConfig:
    """Everything that determines a dataset version's content."""

    seed: int = 0
    variants: int = 1
    boxes: BoxFilterConfig = field(default_factory=BoxFilterConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    # Work is cut into units of about this many samples; each unit becomes one Parquet shard.
    samples_per_shard: int = 512
    row_group_size: int = 32
    # Images held out for evaluation (data/split.py); recorded in the manifest, never in sample bytes.
    heldout_fraction: float = 0.1
    # Annotated images missing under the images root are normally "not downloaded": listed per image in
    # `_absent_images.parquet`. True quarantines each of their boxes as `missing_image` instead.
    require_images: bool = False
    # OpenImages boxes are drawn on the pixels as stored; the image index's `Rotation` says how to turn
    # image and boxes upright (data/orientation.py). True builds upright samples: each rotated image's
    # fingerprint carries its rotation, so only those images' samples change (not in content_hash).
    upright: bool = False

    def __post_init__(self) -> None:
        if self.variants < 1:
            raise ConfigError(f"--variants must be >= 1, got {self.variants}")
        if not 0 <= self.boxes.min_area <= self.boxes.max_area <= 1:
            raise ConfigError(f"box areas: need 0 <= min_area <= max_area <= 1, got {self.boxes}")
        if self.samples_per_shard < 1 or self.row_group_size < 1:
            raise ConfigError("--samples-per-shard and row_group_size must be >= 1")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CurationConfig:
        """From a (partial) nested dict, as `to_dict` writes it, a config file holds it or a flow gets it:
        absent fields take their defaults; an unknown key or a wrongly typed value is a ConfigError."""
        from doodleflow.data.config_sources import build

        return build(cls, d)

    def content_hash(self) -> str:
        """Hash of the fields that change sample bytes (sharding knobs and input policy excluded)."""
        d = self.to_dict()
        for k in ("samples_per_shard", "row_group_size", "heldout_fraction", "require_images", "upright"):
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
