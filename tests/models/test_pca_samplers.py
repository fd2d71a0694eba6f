"""PCA, the tutorial's step 1, with every fitted sampler: sample, explore and evaluate generation."""

from __future__ import annotations

import json

import pytest
import torch

from vaekit.cli import main


@pytest.fixture(scope="module")
def pca_run(digits):
    from vaekit.cli import main

    out = digits / "pca"
    assert (
        main(
            [
                "train",
                "--quiet",
                "--out",
                str(out),
                "--set",
                f"data.name={digits / 'd.npz'}",
                "--set",
                "model.name=pca",
                "--set",
                "model.latent_dim=3",
                "--set",
                "data.val_size=0",
            ]
        )
        == 0
    )
    return out


# 1. PCA, the tutorial's step 1, with every fitted sampler ------------------------------------


@pytest.mark.parametrize("sampler", ["gaussian", "gmm:2", "two-stage"])
def test_pca_samples_from_a_fitted_sampler(pca_run, tmp_path, capsys, sampler):
    """A Gaussian fitted to PCA's codes is exactly PPCA's generative story: it must sample."""
    import vaekit
    from vaekit.models.samplers import draw_images, sampler_for

    assert main(["sample", str(pca_run), "--sampler", sampler, "--n", "6", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").is_file()
    pca = vaekit.load(pca_run / "model")
    assert pca.device == torch.device("cpu") and pca.dtype == torch.float32  # the contract's answer, no parameters()
    fitted = sampler_for(pca, sampler, lambda: None, pca_run)  # saved by the CLI above, loaded here
    images = draw_images(pca, fitted, 5, generator=torch.Generator().manual_seed(0))
    assert images.shape == (5, 1, 8, 8) and images.dtype == torch.float32 and torch.isfinite(images).all()


def test_the_gaussian_sampler_of_pca_has_the_codes_moments(pca_run):
    """PCA codes are uncorrelated with variances l_1..l_q: the fitted Gaussian must say so."""
    from vaekit.data.prepared import prepare
    from vaekit.models.samplers import fit_sampler
    from vaekit.runs import load_run

    pca, cfg = load_run(pca_run)
    x = prepare(cfg.data).x_train
    g = fit_sampler(pca, x, "gaussian")
    cov = g.scale_tril[0] @ g.scale_tril[0].T
    n = len(x)
    assert torch.allclose(cov.diagonal(), pca.explained_variance_.float() * 1.0, rtol=1e-3)
    assert torch.allclose(cov - torch.diag(cov.diagonal()), torch.zeros_like(cov), atol=1e-4 * float(cov.max()))
    assert torch.allclose(g.loc[0], torch.zeros(3), atol=1e-4) and n > 3


def test_pca_explores_and_evaluates_generation(pca_run, digits, tmp_path, capsys):
    assert (
        main(
            ["features", "train", str(digits / "d.npz"), "--out", str(tmp_path / "f"), "--epochs", "1", "--width", "8"]
        )
        == 0
    )
    assert main(["explore", str(pca_run), "--out", str(tmp_path / "page"), "--points", "50"]) == 0
    assert '"sampler":{"name":"gaussian","kind":"mixture"' in (tmp_path / "page" / "index.html").read_text()
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                str(pca_run),
                "--generation",
                "--sampler",
                "gmm:2",
                "--n",
                "30",
                "--json",
                "--features",
                str(tmp_path / "f"),
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert res["sampler"] == "gmm:2" and res["model"]["frechet_distance"]["value"] >= 0
