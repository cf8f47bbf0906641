"""PbE quality score: GMM log-likelihood by hand, clipping and scaling, the end-to-end path."""

from __future__ import annotations

import math

import numpy as np
import pytest
from doodleflow.training.eval.quality import (
    GaussianMixture,
    gmm_log_likelihood,
    load_gmm,
    quality_score,
    scaled_scores,
)

from tests.eval.helpers import random_images


def test_single_identity_component_at_its_mean():
    d = 7
    gmm = GaussianMixture(np.ones(1), np.full((1, d), 2.0), np.eye(d)[None])
    ll = gmm_log_likelihood(np.full((1, d), 2.0), gmm)
    assert ll[0] == pytest.approx(-d / 2 * math.log(2 * math.pi), rel=1e-12)
    # One unit away along an axis: minus half a squared distance.
    x = np.full((1, d), 2.0)
    x[0, 3] += 1.0
    assert gmm_log_likelihood(x, gmm)[0] == pytest.approx(-d / 2 * math.log(2 * math.pi) - 0.5)


def test_two_components_full_and_diagonal_match_a_direct_formula():
    rng = np.random.default_rng(0)
    d = 3
    a = rng.normal(size=(2, d, d))
    covs = a @ a.transpose(0, 2, 1) + np.eye(d)
    gmm = GaussianMixture(np.array([0.3, 0.7]), rng.normal(size=(2, d)), covs)
    x = rng.normal(size=(5, d))

    def pdf(x, m, c):
        diff = x - m
        maha = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(c), diff)
        return np.exp(-0.5 * maha) / np.sqrt((2 * np.pi) ** d * np.linalg.det(c))

    direct = np.log(0.3 * pdf(x, gmm.means[0], covs[0]) + 0.7 * pdf(x, gmm.means[1], covs[1]))
    np.testing.assert_allclose(gmm_log_likelihood(x, gmm), direct, rtol=1e-10)
    diag = GaussianMixture(gmm.weights, gmm.means, np.stack([np.diag(np.diag(c)) for c in covs]))
    diag_vec = GaussianMixture(gmm.weights, gmm.means, np.stack([np.diag(c) for c in covs]))
    np.testing.assert_allclose(gmm_log_likelihood(x, diag_vec), gmm_log_likelihood(x, diag), rtol=1e-10)


def test_far_points_do_not_underflow():
    gmm = GaussianMixture(np.ones(1), np.zeros((1, 2)), np.eye(2)[None] * 1e-4)
    ll = gmm_log_likelihood(np.array([[100.0, 0.0]]), gmm)
    assert np.isfinite(ll[0]) and ll[0] < -1e7


def test_clipping_and_scaling():
    np.testing.assert_allclose(scaled_scores([-50.0, 0.0, 150.0, 300.0, 1e4]), [0, 0, 0.5, 1, 1])


def test_quality_score_end_to_end(inception, tmp_path):
    d = inception.config.feature_dim
    np.savez(
        tmp_path / "gmm.npz", weights=np.ones(1), means=np.zeros((1, d)), covariances=np.eye(d)[None] * 1e-2
    )
    gmm = load_gmm(str(tmp_path / "gmm.npz"))
    images = random_images(2, seed=0)
    mean, per_image = quality_score(images, gmm, inception)
    expected = scaled_scores(gmm_log_likelihood(inception.features(images), gmm))
    np.testing.assert_allclose(per_image, expected)
    assert mean == pytest.approx(100 * expected.mean())
    assert 0.0 <= mean <= 100.0
    with pytest.raises(ValueError, match="dimension"):
        gmm_log_likelihood(np.zeros((1, d + 1)), gmm)
