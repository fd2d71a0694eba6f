"""Disentanglement metrics on representations whose answers are known: the factors themselves score
at the top, a random rotation of them lower, independent noise near zero; and each formula
against a computation written out by hand."""

import math

import numpy as np
import pytest
import torch

from vaekit.data.shapes import ShapesGrid
from vaekit.errors import VaekitError
from vaekit.metrics.disentanglement import (
    Samples,
    all_metrics,
    dci_scores,
    discrete_mutual_information,
    evaluate_disentanglement,
    histogram_discretize,
    mig,
)

SIZES = (3, 4, 6, 5, 5)
TRUTH = ShapesGrid(SIZES, (8, 8))  # its numbering and draws; the representations below read the codes, not images


def sample_codes(sizes, n, rng):
    return np.stack([rng.integers(0, s, n) for s in sizes], 1)


def _on_codes(f, truth=TRUTH):
    return lambda rows: f(truth.codes(rows))


FEW = Samples(
    mig_train=4000,
    dci_train=200,
    dci_test=150,
    factor_vae_variance=2000,
    factor_vae_train=400,
    factor_vae_eval=300,
    factor_vae_batch=64,
    sap_train=1500,
    sap_test=700,
)


def _standardised(codes):
    sizes = np.array(SIZES, dtype=np.float64)
    return (codes - (sizes - 1) / 2) / np.sqrt((sizes**2 - 1) / 12)  # each factor: mean 0, variance 1


def _rotation(d, seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


REPRESENTATIONS = {
    "factors": lambda c: _standardised(c),
    "rotated": lambda c: _standardised(c) @ _rotation(len(SIZES)),
    "noise": lambda c: np.random.default_rng(len(c) * 7 + int(c.sum()) % 1000).normal(size=(len(c), len(SIZES))),
}


@pytest.fixture(scope="module")
def scores():
    return {name: all_metrics(_on_codes(f), TRUTH, seed=0, s=FEW) for name, f in REPRESENTATIONS.items()}


@pytest.mark.parametrize("metric", ["mig", "dci_disentanglement", "dci_completeness", "factor_vae_eval", "sap"])
def test_the_factors_score_at_the_top_a_rotation_lower_and_noise_near_zero(scores, metric):
    top, rotated, noise = (scores[n][metric] for n in ("factors", "rotated", "noise"))
    assert top > rotated > noise
    floor = {"factor_vae_eval": 1 / len(SIZES) + 0.15}.get(metric, 0.1)  # FactorVAE's chance level is 1/F
    assert noise < floor
    high = {"mig": 0.95, "dci_disentanglement": 0.95, "dci_completeness": 0.95, "factor_vae_eval": 0.99, "sap": 0.1}[
        metric
    ]
    assert top > high


def test_informativeness_needs_information_not_alignment(scores):
    """DCI's informativeness is the classifiers' accuracy: a rotation keeps all the information."""
    assert scores["factors"]["dci_informativeness_test"] > 0.95
    assert scores["rotated"]["dci_informativeness_test"] > 0.6
    assert scores["noise"]["dci_informativeness_test"] < 0.3


def test_mig_against_mutual_information_written_out():
    rng = np.random.default_rng(0)
    v = sample_codes((4, 3), 5000, rng)  # two factors
    z = np.stack(
        [v[:, 0] + 0.3 * rng.normal(size=5000), rng.normal(size=5000), v[:, 1] + 0.01 * rng.normal(size=5000)], 1
    )
    zd = histogram_discretize(z, 20)
    m = discrete_mutual_information(zd, v)

    def mi(a, b):  # from the joint histogram: sum p(a, b) log p(a, b) / (p(a) p(b)), nats
        _, ia = np.unique(a, return_inverse=True)
        _, ib = np.unique(b, return_inverse=True)
        joint = np.zeros((ia.max() + 1, ib.max() + 1))
        np.add.at(joint, (ia, ib), 1)
        p = joint / joint.sum()
        pa, pb = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
        nz = p > 0
        return float((p[nz] * np.log(p[nz] / (pa @ pb)[nz])).sum())

    assert all(abs(m[j, k] - mi(zd[:, j], v[:, k])) < 1e-10 for j in range(3) for k in range(2))
    h = [mi(v[:, k], v[:, k]) for k in range(2)]
    assert abs(h[1] - math.log(3)) < 0.01  # a uniform factor of 3 values
    expect = np.mean([(np.sort(m[:, k])[-1] - np.sort(m[:, k])[-2]) / h[k] for k in range(2)])
    assert abs(mig(z, v)["mig"] - expect) < 1e-12
    assert mig(z, v)["mig_per_factor"][1] > 0.95  # factor 1 is in z_2 alone, almost noiselessly


def test_histogram_discretisation_uses_equal_width_bins_over_each_range():
    z = np.array([[0.0, 5], [0.049, 5], [0.051, 6], [0.5, 7], [1.0, 7]])
    d = histogram_discretize(z, 20)
    assert d[:, 0].tolist() == [
        1,
        1,
        2,
        11,
        20,
    ]  # bins [0, 0.05), [0.05, 0.1), ...; 0.5 opens the 11th; the maximum falls in the last
    assert d[:, 1].tolist() == [1, 1, 11, 20, 20]


def test_dci_scores_of_known_importance_matrices():
    assert dci_scores(np.eye(4)) == pytest.approx((1.0, 1.0), abs=1e-8)
    assert dci_scores(np.ones((4, 4))) == pytest.approx((0.0, 0.0), abs=1e-8)
    # two codes per factor, each for one factor: disentangled, but each factor spread over 2 of 4 codes
    r = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)
    dis, comp = dci_scores(r)
    assert dis == pytest.approx(1.0, abs=1e-8) and comp == pytest.approx(1 - math.log(2) / math.log(4), abs=1e-8)
    # one code for both factors, the other unused: complete, not disentangled
    dis, comp = dci_scores(np.array([[1.0, 1.0], [0.0, 0.0]]))
    assert dis == pytest.approx(0.0, abs=1e-8) and comp == pytest.approx(1.0, abs=1e-8)
    assert dci_scores(np.zeros((3, 2))) == pytest.approx((0.0, 0.0), abs=1e-8)  # no importance at all


def test_single_valued_factors_are_left_out():
    truth = ShapesGrid(SIZES[:4] + (1,), (8, 8))
    res = all_metrics(_on_codes(lambda c: _standardised(np.c_[c[:, :4], np.zeros(len(c))]), truth), truth, s=FEW)
    assert len(res["mig_per_factor"]) == 4 and np.array(res["dci_importance"]).shape == (5, 4)
    assert res["mig"] > 0.95 and res["factor_vae_eval"] > 0.99
    with pytest.raises(VaekitError, match="no factor of the data"):
        one = ShapesGrid((1, 1, 1, 1, 1), (8, 8))
        all_metrics(_on_codes(lambda c: c.astype(float), one), one)


def test_a_model_is_scored_through_its_point_codes():
    """A 'model' whose encoder reads the factors back from the rendered shapes (the centroid and the
    area) disentangles position and scale, and the metrics see it through `embed`."""
    from vaekit.data.shapes import ShapesGrid

    grid = ShapesGrid((1, 4, 1, 6, 6), (32, 32))

    class Reader(torch.nn.Module):
        """A stand-in model: the parts of the contract the metrics use (device, dtype, conditional, embed)."""

        conditional, device, dtype = False, torch.device("cpu"), torch.float32

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def embed(self, x, y=None):
            im = x[:, 0]
            n = im.sum((1, 2))
            r = torch.arange(32.0)
            return torch.stack([n.sqrt(), (im.sum(1) * r).sum(1) / n, (im.sum(2) * r).sum(1) / n], 1)

    res = evaluate_disentanglement(
        Reader(),
        grid,
        seed=1,
        s=Samples(
            mig_train=2000,
            dci_train=300,
            dci_test=150,
            factor_vae_variance=500,
            factor_vae_train=100,
            factor_vae_eval=100,
            sap_train=600,
            sap_test=300,
        ),
    )
    assert res["mig"] > 0.8 and res["dci_disentanglement"] > 0.8 and res["factor_vae_eval"] > 0.95
    assert len(res["mig_per_factor"]) == 3  # scale, pos_x, pos_y: the one shape and orientation are left out


def test_evaluate_disentanglement_from_the_cli(tmp_path, images_npz, capsys):
    import json

    from vaekit.cli import main

    small = [
        "--set",
        "data.name=shapes",
        "--set",
        "data.shapes_grid=[3,2,4,6,6]",
        "--set",
        "data.image_size=[32,32]",
        "--set",
        "data.val_size=50",
        "--set",
        "model.latent_dim=3",
        "--set",
        "model.hidden=[32]",
        "--set",
        "model.likelihood=bernoulli",
        "--set",
        "train.epochs=1",
        "--set",
        "train.eval_k=5",
        "--quiet",
    ]
    assert main(["train", *small, "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run"), "--disentanglement", "--fraction", "0.02", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert 0 <= res["mig"] <= 1 and 0 <= res["dci_disentanglement"] <= 1 and 0 <= res["factor_vae_eval"] <= 1
    assert (
        len(res["mig_per_factor"]) == 5
        and res["samples"]["mig_train"] == 200
        and res["samples"]["factor_vae_batch"] == 64
    )
    # data without known factors, a bad fraction, and two evaluations at once: one line each, exit 2
    other = tmp_path / "other"
    assert (
        main(
            [
                "train",
                "--set",
                f"data.name={images_npz}",
                "--set",
                "data.val_size=20",
                "--set",
                "model.latent_dim=2",
                "--set",
                "model.hidden=[16]",
                "--set",
                "train.epochs=1",
                "--set",
                "train.eval_k=5",
                "--quiet",
                "--out",
                str(other),
            ]
        )
        == 0
    )
    capsys.readouterr()
    for argv, says in (
        ([str(other), "--disentanglement"], "has no known generative factors"),
        ([str(tmp_path / "run"), "--disentanglement", "--fraction", "0"], "--fraction 0.0: must be in (0, 1]"),
        ([str(tmp_path / "run"), "--disentanglement", "--generation"], "ask for one at a time"),
    ):
        assert main(["evaluate", *argv]) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
