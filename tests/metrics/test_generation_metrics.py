"""Generation metrics (issue 16): the Fréchet distance against its closed form, KID unbiased and
equal to the MMD^2 written out by hand, precision/recall/density/coverage on point sets whose
answers are known, and the shipped feature network. torchmetrics and prdc come with the `test`
extra (through `metrics`): a machine without them fails here rather than skipping."""

import numpy as np
import pytest
import torch

from vaekit.errors import VaekitError
from vaekit.metrics.features import MNIST_FEATURES_SHA256 as MNIST_SHA
from vaekit.metrics.generation import frechet_distance, generation_metrics, kernel_distance, nearest_neighbour_scores


def _with_moments(n, mean, cov, seed):
    """n points (n, D) whose sample mean and unbiased sample covariance are exactly `mean`, `cov`."""
    g = np.random.default_rng(seed)
    z = g.standard_normal((n, len(mean)))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # sample covariance exactly I
    return torch.from_numpy(mean + z @ np.linalg.cholesky(cov).T)


def test_frechet_distance_equals_the_closed_form_between_gaussians():
    from scipy.linalg import sqrtm

    g = np.random.default_rng(0)
    d = 4
    a, b = g.standard_normal((d, d)), g.standard_normal((d, d))
    s1, s2 = a @ a.T + 0.1 * np.eye(d), b @ b.T + 0.1 * np.eye(d)  # covariances that do not commute
    m1, m2 = g.standard_normal(d), g.standard_normal(d)
    exact = np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * sqrtm(s1 @ s2).real)
    got = frechet_distance(_with_moments(500, m1, s1, 1), _with_moments(700, m2, s2, 2))
    assert got == pytest.approx(exact, rel=1e-9, abs=1e-9)
    x = _with_moments(300, m1, s1, 3)
    assert frechet_distance(x, x) == pytest.approx(0, abs=1e-8)


def _mmd2_by_hand(x, y):
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1) ** 3
    m, n = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    return float(
        (kxx.sum() - kxx.trace()) / (m * (m - 1)) + (kyy.sum() - kyy.trace()) / (n * (n - 1)) - 2 * k(x, y).mean()
    )


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel():
    g = torch.Generator().manual_seed(0)
    x, y = (
        torch.randn(60, 5, generator=g, dtype=torch.float64),
        torch.randn(60, 5, generator=g, dtype=torch.float64) + 0.5,
    )
    mean, std = kernel_distance(x, y, subsets=3, subset_size=60)  # every subset is the whole set
    assert mean == pytest.approx(_mmd2_by_hand(x, y), rel=1e-10) and std == pytest.approx(0, abs=1e-10)


def test_kid_is_near_zero_and_unbiased_for_one_distribution():
    g = torch.Generator().manual_seed(1)
    same = [
        kernel_distance(
            torch.randn(200, 8, generator=g), torch.randn(200, 8, generator=g), subsets=5, subset_size=100, seed=i
        )[0]
        for i in range(40)
    ]
    mean, se = np.mean(same), np.std(same) / np.sqrt(len(same))
    assert abs(mean) < 3 * se  # unbiased: the biased V-statistic would sit clearly above 0
    assert min(same) < 0 < max(same)
    other = kernel_distance(
        torch.randn(200, 8, generator=g), torch.randn(200, 8, generator=g) + 0.5, subsets=5, subset_size=100
    )[0]
    assert other > 10 * (abs(mean) + 3 * se)


def test_precision_recall_density_coverage_on_a_line():
    real = torch.arange(10.0)[:, None]  # k = 1: every real ball has radius 1
    fake = torch.tensor([[0.5], [10.5], [30.5]])  # fake balls: radius 10, 10, 20
    s = nearest_neighbour_scores(real, fake, k=1)
    # 0.5 lies in the balls of 0 and 1; 10.5 and 30.5 in none. Every real point lies within 10 of
    # 0.5; only 0 and 1 have a fake point within their radius.
    assert s == pytest.approx({"precision": 1 / 3, "recall": 1.0, "density": 2 / 3, "coverage": 0.2}, abs=1e-15)
    far = nearest_neighbour_scores(real, real + 100, k=1)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    same = nearest_neighbour_scores(real, real.clone(), k=1)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0


def test_the_report_names_units_counts_and_the_network():
    g = torch.Generator().manual_seed(2)
    out = generation_metrics(
        torch.randn(50, 3, generator=g), torch.randn(40, 3, generator=g), kid_subsets=4, network="mnist-features@abc"
    )
    assert set(out) == {"frechet_distance", "kid", "kid_std", "precision", "recall", "density", "coverage"}
    assert (
        "mnist-features@abc" in out["frechet_distance"]["unit"]
        and "50 real, 40 generated" in out["precision"]["reduction"]
    )
    assert "of 40" in out["kid"]["reduction"]  # subsets are at most the smaller set
    with pytest.raises(VaekitError, match="one D"):
        generation_metrics(torch.zeros(10, 3), torch.zeros(10, 4))
    with pytest.raises(VaekitError, match=r"more than k \+ 1 = 6"):
        generation_metrics(torch.randn(5, 3), torch.randn(10, 3))


def test_evaluate_generation_reports_samples_beside_the_floor(tmp_path, capsys):
    import json

    from conftest import digit_like, train_small_run
    from vaekit.cli import main

    x, y = digit_like(400, size=28)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    train_small_run(tmp_path / "d.npz", tmp_path / "vae", val_size=100)
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "vae"), "--generation", "--n", "40", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 40 and res["network"] == MNIST_SHA
    assert (
        res["floor"]["frechet_distance"]["value"] < res["model"]["frechet_distance"]["value"]
    )  # one epoch: far from real
    assert "40 real, 40 generated" in res["model"]["precision"]["reduction"]
    train_small_run(tmp_path / "d.npz", tmp_path / "ae", val_size=100, extra=("--set", "model.name=ae"))
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "ae"), "--generation"]) == 2
    assert "no prior to sample from" in capsys.readouterr().err


def test_generation_needs_images_the_feature_network_measures(tmp_path):
    from vaekit.metrics.generation import evaluate_generation

    with pytest.raises(VaekitError, match=r"takes \(N, 1, 28, 28\) images"):
        evaluate_generation(None, torch.rand(20, 1, 8, 8), torch.rand(20, 1, 8, 8))
