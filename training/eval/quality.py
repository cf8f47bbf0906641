"""Paint-by-Example's quality score (QS), after eval_tool/gmm/gmm_score_coco.py.

1. Features of each output image (see below).
2. Per-image log-likelihood under a 20-component full-covariance GMM fitted on COCO2017
   (sklearn's `GaussianMixture.score_samples`).
3. (score - 0) / (300 - 0), clipped to [0, 1].
4. Mean x 100.

The GMM is read from an .npz with `weights` (K,), `means` (K, D) and `covariances` (K, D, D) (or
(K, D) for a diagonal GMM): sklearn's `weights_`, `means_`, `covariances_`. PbE ships a pickled
sklearn model; convert it where sklearn is installed with
`np.savez(path, weights=g.weights_, means=g.means_, covariances=g.covariances_)`.

Features, and PbE's quirk: the script runs every image through OpenAI CLIP ViT-B/32's `preprocess`
(224 resize + centre crop + CLIP normalization) before its "Inception" module. In the released code
that module's forward returns `clip_model.encode_image(x)` (its Inception path is commented out), so
the published QS (and FID, same module) are computed on 512-d CLIP image embeddings. Both readings
are available: `model=InceptionV3FID` with `clip_preprocess=True` (CLIP preprocess, then Inception
pool3, as the quirk is usually described), or `model=Clip` (released-code parity). The GMM's
dimension must match the features' (2048 for pool3, 512 for ViT-B/32).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from doodleflow.infra.errors import ConfigError, InputError
from doodleflow.training.eval.fid import FeatureExtractor
from doodleflow.training.eval.images import ImageLike


@dataclass(frozen=True)
class GaussianMixture:
    """K weighted Gaussians in D dimensions; covariances (K, D, D), or (K, D) for diagonal ones."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def __post_init__(self) -> None:
        k, d = self.means.shape
        if self.weights.shape != (k,) or self.covariances.shape not in ((k, d, d), (k, d)):
            raise InputError(
                f"GMM shapes disagree: weights {self.weights.shape}, means {self.means.shape}, "
                f"covariances {self.covariances.shape}"
            )

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])


def load_gmm(path: str) -> GaussianMixture:
    """GaussianMixture from an .npz with `weights`, `means`, `covariances` (sklearn's attributes)."""
    with np.load(path) as f:
        return GaussianMixture(
            np.asarray(f["weights"], np.float64),
            np.asarray(f["means"], np.float64),
            np.asarray(f["covariances"], np.float64),
        )


def _component_log_pdf(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """log N(x | mean, cov) for (N, D) x, via the Cholesky factor (no explicit inverse)."""
    d = x.shape[1]
    diff = x - mean
    if cov.ndim == 1:  # diagonal
        maha = (diff**2 / cov).sum(1)
        logdet = torch.log(cov).sum()
    else:
        chol = torch.linalg.cholesky(cov)
        z = torch.linalg.solve_triangular(chol, diff.T, upper=False)
        maha = (z**2).sum(0)
        logdet = 2 * torch.log(torch.diagonal(chol)).sum()
    return -0.5 * (d * math.log(2 * math.pi) + logdet + maha)


def gmm_log_likelihood(features: np.ndarray, gmm: GaussianMixture) -> np.ndarray:
    """(N,) log p(x) = logsumexp_k [log w_k + log N(x | mu_k, S_k)], float64 (sklearn's score_samples)."""
    x = torch.as_tensor(np.asarray(features), dtype=torch.float64)
    if x.ndim != 2 or x.shape[1] != gmm.dim:
        raise ConfigError(f"features {tuple(x.shape)} do not match the GMM's dimension {gmm.dim}")
    per_component = torch.stack(
        [
            math.log(w) + _component_log_pdf(x, torch.from_numpy(m), torch.from_numpy(c))
            for w, m, c in zip(gmm.weights, gmm.means, gmm.covariances, strict=True)
        ],
        dim=1,
    )
    return torch.logsumexp(per_component, dim=1).numpy()


def scaled_scores(log_likelihoods: np.ndarray, low: float = 0.0, high: float = 300.0) -> np.ndarray:
    """PbE's per-image score: (ll - low) / (high - low), clipped to [0, 1]."""
    return np.clip((np.asarray(log_likelihoods, np.float64) - low) / (high - low), 0.0, 1.0)


def quality_score(
    images: Sequence[ImageLike], gmm: GaussianMixture, model: FeatureExtractor, **feature_kwargs
) -> tuple[float, list[float]]:
    """QS = 100 * mean scaled score, and the per-image scaled scores in [0, 1].

    `feature_kwargs` go to `model.features`; clip_preprocess=True gives PbE's CLIP-preprocess quirk
    with InceptionV3FID (see the module docstring for the released code's CLIP-feature variant).
    """
    per_image = scaled_scores(gmm_log_likelihood(model.features(images, **feature_kwargs), gmm))
    return float(per_image.mean() * 100), per_image.tolist()
