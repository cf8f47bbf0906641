"""frechet_distance against closed forms; FID through the tiny Inception."""

from __future__ import annotations

import numpy as np
import pytest
from doodleflow.training.eval.fid import activation_stats, fid, frechet_distance

from tests.eval.helpers import random_images

METHODS = ["scipy", "eigh"]


def _spd(d: int, seed: int) -> np.ndarray:
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


@pytest.mark.parametrize("method", METHODS)
def test_identical_stats_give_zero(method):
    mu, s = np.arange(6.0), _spd(6, 0)
    assert abs(frechet_distance(mu, s, mu, s, method=method)) <= 1e-6 * np.trace(s)


@pytest.mark.parametrize("method", METHODS)
def test_shifted_unit_gaussians(method):
    # |0 - 3|^2 per dimension, and tr(I + I - 2 (I I)^(1/2)) = 0: FID = 9 d.
    d = 5
    got = frechet_distance(np.zeros(d), np.eye(d), np.full(d, 3.0), np.eye(d), method=method)
    assert got == pytest.approx(9 * d, rel=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_diagonal_closed_form(method):
    # Diagonal covariances commute: tr(S1 + S2 - 2 sqrt(S1 S2)) = sum (sqrt a - sqrt b)^2.
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    mu1, mu2 = np.array([1.0, 0.0, -1.0]), np.array([0.0, 2.0, 1.0])
    by_hand = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()  # 9 + 1 + 1 + 6.25
    assert by_hand == pytest.approx(17.25)
    got = frechet_distance(mu1, np.diag(a), mu2, np.diag(b), method=method)
    assert got == pytest.approx(by_hand, rel=1e-9)


def test_one_dimensional_scalars():
    # N(0, 1) vs N(2, 4): 4 + 1 + 4 - 2 * 2 = 5.
    assert frechet_distance(0.0, 1.0, 2.0, 4.0) == pytest.approx(5.0)


def test_symmetric_and_methods_agree():
    mu1, mu2, s1, s2 = np.zeros(8), np.ones(8), _spd(8, 1), _spd(8, 2)
    ab = frechet_distance(mu1, s1, mu2, s2, method="scipy")
    assert ab == pytest.approx(frechet_distance(mu2, s2, mu1, s1, method="scipy"), rel=1e-8)
    assert ab == pytest.approx(frechet_distance(mu1, s1, mu2, s2, method="eigh"), rel=1e-8)


def test_singular_covariances_from_few_samples():
    # 5 samples in 16-d: rank-4 covariances, the usual case for small eval sets.
    rng = np.random.default_rng(0)
    mu1, s1 = activation_stats(rng.normal(size=(5, 16)))
    mu2, s2 = activation_stats(rng.normal(size=(5, 16)) + 0.5)
    a = frechet_distance(mu1, s1, mu2, s2, method="scipy")
    b = frechet_distance(mu1, s1, mu2, s2, method="eigh")
    assert np.isfinite(a) and a > 0
    assert a == pytest.approx(b, rel=1e-4)


def test_activation_stats_and_shape_errors():
    x = np.random.default_rng(0).normal(size=(10, 3))
    mu, sigma = activation_stats(x)
    np.testing.assert_allclose(mu, x.mean(0))
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False))
    with pytest.raises(ValueError):
        activation_stats(x[:1])
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_fid_through_tiny_inception(inception):
    a, b = random_images(4, seed=1), random_images(4, seed=2)
    different = fid(a, b, inception)
    assert different > 0
    assert abs(fid(a, a, inception)) <= 1e-6 * different
