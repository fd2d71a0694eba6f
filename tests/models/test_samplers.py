"""Ex-post samplers (issue 16): a density fitted to a trained model's codes. The Gaussian has the
codes' mean and covariance exactly; the mixture recovers well-separated clusters; draws take all
their randomness from the generator; a saved sampler is reused only for the weights it was fitted
to; and an autoencoder generates through the CLI."""

import json

import numpy as np
import pytest
import torch

from conftest import digit_like
from vaekit.cli import main
from vaekit.errors import VaekitError
from vaekit.models.samplers import FittedMixture, fit_sampler, load_sampler, parse_sampler, sampler_for, save_sampler


class Codes(torch.nn.Module):
    """A stand-in model whose codes are its inputs (embed = identity)."""

    conditional, latent_dim, device = False, 2, torch.device("cpu")  # the parts of the model contract samplers use

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def embed(self, x):
        return x


def test_the_gaussian_has_the_codes_mean_and_covariance():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(500, 2, generator=g) @ torch.tensor([[2.0, 0.0], [1.5, 0.5]]) + torch.tensor([3.0, -1.0])
    s = fit_sampler(Codes(), z, "gaussian")
    assert s.components == 1
    zd = z.double()
    assert torch.allclose(s.loc[0].double(), zd.mean(0), atol=1e-5)
    assert torch.allclose((s.scale_tril[0] @ s.scale_tril[0].T).double(), torch.cov(zd.T), rtol=1e-4, atol=1e-5)
    draws = s.draw(200_000, None, torch.Generator().manual_seed(1), torch.zeros(()))
    assert torch.allclose(draws.mean(0).double(), zd.mean(0), atol=0.03)
    assert torch.allclose(torch.cov(draws.double().T), torch.cov(zd.T), rtol=0.03, atol=0.03)
    assert torch.allclose(
        s().log_prob(z[:5]),
        torch.distributions.MultivariateNormal(s.loc[0], scale_tril=s.scale_tril[0]).log_prob(z[:5]),
    )


def test_the_mixture_recovers_separated_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])
    sizes = [100, 300, 600]
    z = torch.cat([c + torch.randn(n, 2, generator=g) for c, n in zip(centres, sizes)])
    s = fit_sampler(Codes(), z, "gmm:3")
    weights = s.logits.softmax(0)
    for c, n in zip(centres, sizes):
        j = int((s.loc - c).norm(dim=1).argmin())  # the component nearest this cluster's centre
        assert torch.allclose(s.loc[j], c, atol=0.3) and weights[j].item() == pytest.approx(n / 1000, abs=1e-3)


def test_draws_come_from_the_generator_alone():
    s = fit_sampler(Codes(), torch.randn(200, 2), "gmm:2")
    a = s.draw(50, None, torch.Generator().manual_seed(7), torch.zeros(()))
    torch.manual_seed(123)  # the global generator plays no part
    b = s.draw(50, None, torch.Generator().manual_seed(7), torch.zeros(()))
    assert torch.equal(a, b)


def test_a_saved_sampler_is_reused_only_for_its_weights(tmp_path):
    model = Codes()
    z = torch.randn(300, 2)
    s = sampler_for(model, "gmm:2", lambda: z, tmp_path)
    assert (tmp_path / "samplers" / "gmm-2" / "config.json").is_file()
    meta = json.loads((tmp_path / "samplers" / "gmm-2" / "config.json").read_text())
    assert meta["fitted_on"] == 300 and meta["components"] == 2
    again = sampler_for(model, "gmm:2", lambda: pytest.fail("a saved sampler needs no data"), tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(s.state_dict().values(), again.state_dict().values()))
    with torch.no_grad():
        model.w.add_(1)  # retrained weights: the saved sampler no longer describes their codes
    assert load_sampler(model, tmp_path / "samplers" / "gmm-2", "gmm:2") is None


@pytest.mark.parametrize("spec", ["gmm:0", "gmm:1001", "gmm", "gmm:x", "kde", "", "gaussian:2"])
def test_bad_sampler_specs_are_refused(spec):
    with pytest.raises(VaekitError, match="expected prior, gaussian, gmm:K"):
        parse_sampler(spec)


def test_too_few_codes_are_refused():
    with pytest.raises(VaekitError, match="needs more than 5 examples"):
        fit_sampler(Codes(), torch.randn(5, 2), "gmm:5")


def test_an_autoencoder_generates_through_the_cli(tmp_path, capsys):
    x, y = digit_like(300, size=28)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    run = tmp_path / "ae"
    assert (
        main(
            [
                "train",
                "--set",
                f"data.name={tmp_path / 'd.npz'}",
                "--set",
                "model.name=ae",
                "--set",
                "train.epochs=1",
                "--set",
                "model.hidden=[32]",
                "--set",
                "model.latent_dim=3",
                "--set",
                "data.val_size=50",
                "--quiet",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["sample", str(run), "--out", str(tmp_path / "s.png")]) == 2
    assert "use --sampler gaussian, gmm:K or two-stage" in capsys.readouterr().err
    assert main(["sample", str(run), "--sampler", "gmm:2", "--n", "16", "--out", str(tmp_path / "s.png")]) == 0
    assert "fitted the 'gmm:2' sampler to" in capsys.readouterr().err and (tmp_path / "s.png").stat().st_size > 0
    first = (tmp_path / "s.png").read_bytes()
    assert main(["sample", str(run), "--sampler", "gmm:2", "--n", "16", "--out", str(tmp_path / "s.png")]) == 0
    assert "fitted" not in capsys.readouterr().err and (tmp_path / "s.png").read_bytes() == first  # reused, same seed
    assert isinstance(sampler_for(__import__("vaekit").load(run / "model"), "gmm:2", lambda: None, run), FittedMixture)
    assert main(["evaluate", str(run), "--generation", "--sampler", "gaussian", "--n", "30", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert (
        res["sampler"] == "gaussian"
        and res["n"] == 30
        and "30 real, 30 generated" in res["model"]["recall"]["reduction"]
    )


def test_the_two_stage_sampler_learns_the_codes_and_is_saved_as_a_model_directory(tmp_path):
    from vaekit.models.samplers import TwoStage, fit_two_stage

    g = torch.Generator().manual_seed(0)
    z = torch.randn(2000, 2, generator=g) * torch.tensor([3.0, 0.5]) + torch.tensor([5.0, -2.0])
    s = fit_two_stage(z, epochs=40, hidden=(128, 128))  # the default 256-256 nets learn the same, 3x slower
    draws = s.draw(5000, None, torch.Generator().manual_seed(1), torch.zeros(()))
    assert torch.allclose(draws.mean(0), z.mean(0), atol=0.4)  # where the codes are, not N(0, I)
    assert draws[:, 0].std() > 3 * draws[:, 1].std()  # and their shape
    a = s.draw(20, None, torch.Generator().manual_seed(3), torch.zeros(()))
    assert torch.equal(a, s.draw(20, None, torch.Generator().manual_seed(3), torch.zeros(())))
    model = Codes()
    save_sampler(s, model, tmp_path / "two-stage", "two-stage", len(z))
    assert (tmp_path / "two-stage" / "model" / "model.safetensors").is_file()
    back = load_sampler(model, tmp_path / "two-stage", "two-stage")
    assert isinstance(back, TwoStage)
    assert torch.equal(back.draw(20, None, torch.Generator().manual_seed(3), torch.zeros(())), a)
