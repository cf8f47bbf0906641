"""Evaluation metrics (pure torch / numpy; no orchestration imports).

Paint-by-Example (COCOEE protocol, D1): `region_clip_score`, `fid`, `quality_score`.
PhotoDoodle (D2): `clip_text_score`, `clip_img_score` (against the source and against the target).
Plus the held-out split, the sample grid, and loaders / tiny presets of the CLIP and FID-Inception
models (weights always come from a local directory).
"""

from doodleflow.training.eval.clip import (
    Clip,
    clip_img_score,
    clip_text_score,
    crop_to_mask,
    load_clip,
    mask_bbox,
    region_clip_score,
    tiny_clip,
)
from doodleflow.training.eval.fid import FeatureExtractor, activation_stats, fid, frechet_distance
from doodleflow.training.eval.grid import GridLayout, sample_grid
from doodleflow.training.eval.inception import InceptionConfig, InceptionV3FID, tiny_inception
from doodleflow.training.eval.quality import (
    GaussianMixture,
    gmm_log_likelihood,
    load_gmm,
    quality_score,
    scaled_scores,
)
from doodleflow.training.eval.split import heldout_split, is_heldout

__all__ = [
    "Clip",
    "FeatureExtractor",
    "GaussianMixture",
    "GridLayout",
    "InceptionConfig",
    "InceptionV3FID",
    "activation_stats",
    "clip_img_score",
    "clip_text_score",
    "crop_to_mask",
    "fid",
    "frechet_distance",
    "gmm_log_likelihood",
    "heldout_split",
    "is_heldout",
    "load_clip",
    "load_gmm",
    "mask_bbox",
    "quality_score",
    "region_clip_score",
    "sample_grid",
    "scaled_scores",
    "tiny_clip",
    "tiny_inception",
]
