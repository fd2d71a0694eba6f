import math

import numpy as np
import pytest
import torch

from conftest import low_rank
from vaekit.models import PCA


@pytest.mark.parametrize("solver", ["covariance_eigh", "svd"])
def test_matches_numpy_svd(solver):
    X = low_rank(n=300, f=10, rank=4, noise=0.2).double()
    p = PCA(4, solver=solver).fit(X)
    Xc = X.numpy() - X.numpy().mean(0)
    _, s, vt = np.linalg.svd(Xc, full_matrices=False)
    for comp, ref in zip(p.components_.numpy(), vt[:4]):
        assert min(np.abs(comp - ref).max(), np.abs(comp + ref).max()) < 1e-8  # equal up to sign
    np.testing.assert_allclose(p.explained_variance_.numpy(), s[:4] ** 2 / (len(X) - 1), rtol=1e-8)
    np.testing.assert_allclose(p.explained_variance_ratio_.numpy(), s[:4] ** 2 / (s**2).sum(), rtol=1e-8)


def test_solvers_agree_and_signs_deterministic():
    X = low_rank(n=200, f=8, rank=3, noise=0.3)
    a, b = PCA(3).fit(X), PCA(3, solver="svd").fit(X)
    assert torch.allclose(a.components_, b.components_, atol=1e-5)
    largest = a.components_.gather(1, a.components_.abs().argmax(1, keepdim=True))
    assert (largest > 0).all()
    assert torch.allclose(a.components_ @ a.components_.T, torch.eye(3, dtype=torch.float64), atol=1e-10)


def test_inverse_transform_recovers_low_rank_data():
    X = low_rank(n=100, f=9, rank=3, noise=0.0).double()
    p = PCA(3).fit(X)
    assert torch.allclose(p.inverse_transform(p.transform(X)), X, atol=1e-5)  # float32 data: rounding only
    p2 = PCA(2).fit(X)
    assert (p2.reconstruct(X) - X).abs().max() > 1e-3  # fewer components than the rank: lossy


def test_whiten_and_image_shape():
    X = low_rank(n=500, f=16, rank=4, noise=0.1).reshape(500, 1, 4, 4)
    p = PCA(4, whiten=True).fit(X)
    c = p.transform(X)
    assert c.shape == (500, 4)
    assert torch.allclose(c.var(0), torch.ones(4, dtype=c.dtype), atol=1e-4)
    assert p.inverse_transform(c).shape == (500, 1, 4, 4)


def test_ppca_log_likelihood_matches_dense_gaussian():
    X = low_rank(n=400, f=6, rank=2, noise=0.3).double()
    q = 2
    p = PCA(q).fit(X)
    n, f = X.shape
    # Tipping & Bishop ML solution, built densely: C = W W^T + s2 I, W = U_q (L_q - s2 I)^(1/2).
    lam = p.eigenvalues_
    s2 = lam[q:].mean()
    W = p.components_.T * (lam[:q] - s2).sqrt()
    C = W @ W.T + s2 * torch.eye(f, dtype=torch.float64)
    ref = torch.distributions.MultivariateNormal(p.mean_, covariance_matrix=C).log_prob(X)
    assert torch.allclose(p.score_samples(X), ref, atol=1e-9)
    assert math.isclose(float(p.noise_variance_), float(s2))


def test_ppca_is_the_maximum_likelihood():
    X = low_rank(n=400, f=6, rank=2, noise=0.3).double()
    p = PCA(2).fit(X)
    best = p.score(X)
    for factor in (0.8, 1.25):  # any other noise variance is worse on the training data
        other = PCA(2).fit(X)
        other.noise_variance_ = p.noise_variance_ * factor
        assert other.score(X) < best


def test_bad_component_count():
    with pytest.raises(ValueError, match="n_components=9"):
        PCA(9).fit(torch.zeros(5, 4))
