"""Fréchet distance between Gaussian fits of feature sets (FID when the features are Inception pool3).

Follows pytorch-fid's `calculate_frechet_distance` (the TTUR formula, "stable version by Dougal
J. Sutherland"): d^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), with an eps-offset retry when the
product is singular and a check that discards only a negligible imaginary part. Without scipy the
trace of the matrix square root is taken from the eigenvalues of S1^(1/2) S2 S1^(1/2), a symmetric
PSD matrix similar to S1 S2 (so the traces of their square roots agree), in float64.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from doodleflow.training.eval.images import ImageLike

log = logging.getLogger(__name__)

try:
    from scipy import linalg as _scipy_linalg
except ImportError:  # pragma: no cover - scipy is pinned, but the metric must not need it
    _scipy_linalg = None


class FeatureExtractor(Protocol):
    """Anything mapping images to an (N, D) float array: InceptionV3FID, or Clip (PbE's released code)."""

    def features(self, images: Sequence[ImageLike]) -> np.ndarray: ...


def activation_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of (N, D) features in float64, covariance unbiased as np.cov (N >= 2)."""
    act = np.asarray(features, dtype=np.float64)
    if act.ndim != 2 or act.shape[0] < 2:
        raise ValueError(f"need (N >= 2, D) features, got shape {act.shape}")
    return act.mean(axis=0), np.cov(act, rowvar=False).reshape(act.shape[1], act.shape[1])


def _sqrtm(a: np.ndarray) -> np.ndarray:
    # pytorch-fid passes disp=False (deprecated in scipy 1.16): a singular product is expected with
    # fewer samples than dimensions and is handled by the callers' checks, not by a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _scipy_linalg.LinAlgWarning)
        return _scipy_linalg.sqrtm(a)


def _sqrtm_trace_scipy(s1: np.ndarray, s2: np.ndarray, eps: float) -> float:
    covmean = _sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        log.warning("fid: singular product; adding %s to the diagonal of the covariances", eps)
        offset = np.eye(s1.shape[0]) * eps
        covmean = _sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        # Round-off gives a tiny imaginary part; a large one means the statistics are broken.
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return float(np.trace(covmean))


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((s + s.T) / 2)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T


def _sqrtm_trace_eigh(s1: np.ndarray, s2: np.ndarray, eps: float) -> float:
    root1 = _psd_sqrt(s1)
    vals = np.linalg.eigvalsh(root1 @ s2 @ root1)
    if not np.isfinite(vals).all():
        log.warning("fid: singular product; adding %s to the diagonal of the covariances", eps)
        offset = np.eye(s1.shape[0]) * eps
        root1 = _psd_sqrt(s1 + offset)
        vals = np.linalg.eigvalsh(root1 @ (s2 + offset) @ root1)
    # Negative eigenvalues of a PSD product are round-off.
    return float(np.sqrt(np.clip(vals, 0, None)).sum())


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    eps: float = 1e-6,
    method: str = "auto",
) -> float:
    """Fréchet distance of N(mu1, sigma1) and N(mu2, sigma2); method "scipy", "eigh" or "auto"."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} {mu2.shape}, sigma {s1.shape} {s2.shape}")
    if method == "auto":
        method = "scipy" if _scipy_linalg is not None else "eigh"
    if method == "scipy":
        if _scipy_linalg is None:
            raise ImportError("method='scipy' needs scipy")
        tr_covmean = _sqrtm_trace_scipy(s1, s2, eps)
    elif method == "eigh":
        tr_covmean = _sqrtm_trace_eigh(s1, s2, eps)
    else:
        raise ValueError(f"unknown method {method!r}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def fid(
    images_a: Sequence[ImageLike], images_b: Sequence[ImageLike], model: FeatureExtractor, **feature_kwargs
) -> float:
    """FID of two image sets through `model.features` (InceptionV3FID: pool3, as pytorch-fid).

    `feature_kwargs` go to `model.features`, e.g. clip_preprocess=True for PbE's variant.
    """
    mu1, s1 = activation_stats(model.features(images_a, **feature_kwargs))
    mu2, s2 = activation_stats(model.features(images_b, **feature_kwargs))
    return frechet_distance(mu1, s1, mu2, s2)
