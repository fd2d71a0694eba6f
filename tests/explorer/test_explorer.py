"""The explorer page as written (no browser here; tests/explorer/test_explorer_browser.py runs it):
self-contained, the weights exactly PyTorch's, the sliders in the documented order, the map the
documented projection, and the command line's answers."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
import torch
from torch import nn

import vaekit
from conftest import digit_like, train_small_run
from vaekit.cli import main
from vaekit.config import ModelConfig
from vaekit.errors import VaekitError
from vaekit.explorer.page import Blob, explore, panel_spec
from vaekit.models.autoencoder import Autoencoder, build_vae
from vaekit.models.pca import PCA


def _x(n=200, size=8):
    x, y = digit_like(n, size)
    return torch.from_numpy(x).float().div(255)[:, None], torch.from_numpy(y).long()


def _spec(page):
    text = page.read_text()
    spec = json.loads(
        re.search(r'<script type="application/json" id="vaekit-spec">(.*?)</script>', text, re.S).group(1)
    )
    blob = re.search(r'<script type="text/plain" id="vaekit-weights">(.*?)</script>', text, re.S).group(1)
    return text, spec, np.frombuffer(base64.b64decode(blob), dtype="<f4")


def _ops(ops):
    for op in ops:
        yield op
        yield from _ops(op.get("ops", []))


def test_the_page_fetches_nothing_and_carries_the_weights_bit_for_bit(tmp_path):
    torch.manual_seed(0)
    model = build_vae(
        ModelConfig(name="vae", latent_dim=3, arch="conv", channels=[4, 8], likelihood="gaussian"), (1, 8, 8)
    )
    x, y = _x()
    text, spec, weights = _spec(explore(model, x, tmp_path / "e", y=y))
    # nothing outside the file: no src/href, no fetch, no module import; the CSP forbids the rest
    assert not re.search(r"\b(src|href)\s*=|fetch\(|XMLHttpRequest|import\(|WebSocket", text)
    assert "default-src 'none'" in text
    m = spec["models"][0]
    linear = [op for op in _ops(m["decoder"]["ops"]) if op["op"] in ("linear", "deconv")]
    params = [model.decoder.head.weight, model.decoder.deconv[0].weight, model.decoder.deconv[2].weight]
    assert len(linear) == 3
    for op, w in zip(linear, params):
        got = weights[op["w"][0] : op["w"][0] + op["w"][1]]
        assert np.array_equal(got, w.detach().numpy().reshape(-1))  # float32, exactly
    assert m["decoder"]["ops"][-1] == {
        "op": "mean",
        "likelihood": "gaussian",
        "params": 1,
        "components": 5,
        "min_log_scale": -7.0,
    }


def test_sliders_come_active_first_in_order_of_information():
    x, y = _x()
    pca = PCA(4).fit(x)  # code variances are the eigenvalues, in decreasing order
    m = panel_spec(pca, x, Blob(), y)
    assert m["dims"]["order"] == [0, 1, 2, 3] and m["dims"]["kl"] is None
    assert m["dims"]["activity"] == sorted(m["dims"]["activity"], reverse=True)

    torch.manual_seed(0)
    vae = build_vae(ModelConfig(name="vae", latent_dim=4, hidden=[16], likelihood="bernoulli"), x.shape[1:]).eval()
    with torch.no_grad():  # dimension 2 carries the input, dimension 0 less; 1 and 3 carry nothing
        head = vae.encoder.net[-1]
        head.weight.zero_(), head.bias.zero_()
        head.weight[2] = 1.0
        head.weight[0] = 0.5
    d = panel_spec(vae, x, Blob(), y)["dims"]
    assert d["order"][:2] == [2, 0] and d["active"][:2] == [True, True] and d["active"][2:] == [False, False]
    assert d["kl"][0] > d["kl"][1] > 0 and d["scale"] == [1.0] * 4 and d["center"] == [0.0] * 4


@pytest.mark.parametrize("latent", [2, 5])
def test_the_map_is_the_codes_or_their_first_two_principal_axes(latent):
    x, y = _x()
    torch.manual_seed(0)
    vae = build_vae(ModelConfig(name="vae", latent_dim=latent, hidden=[16], likelihood="bernoulli"), x.shape[1:]).eval()
    m = panel_spec(vae, x, Blob(), y, points=150)
    with torch.no_grad():
        codes = vae.embed(x[:150]).double()
    pts = torch.tensor(m["map"]["points"], dtype=torch.float64)
    assert m["map"]["labels"] == y[:150].tolist()
    if latent == 2:
        assert m["map"]["projection"] is None and (pts - codes).abs().max() < 1e-4
        return
    pr = m["map"]["projection"]
    axes, mean = torch.tensor(pr["axes"], dtype=torch.float64), torch.tensor(pr["mean"], dtype=torch.float64)
    assert torch.allclose(axes @ axes.T, torch.eye(2, dtype=torch.float64), atol=1e-6)
    assert (pts - (codes - mean) @ axes.T).abs().max() < 1e-4
    assert pts[:, 0].var() >= pts[:, 1].var()  # the first axis carries the most variance
    centred = codes - mean
    assert pts.pow(2).sum() / centred.pow(2).sum() >= 2 / latent - 1e-9  # no plane holds more: at least its share


def test_a_network_it_cannot_translate_gets_one_line():
    class Odd(nn.Module):
        def forward(self, z):
            return torch.sin(z).repeat(1, 32).unflatten(1, (1, 8, 8))

    model = Autoencoder(nn.Sequential(nn.Flatten(), nn.Linear(64, 2)), Odd(), (1, 8, 8), 2)
    with pytest.raises(VaekitError, match="this model has a Odd, which it cannot translate"):
        panel_spec(model, *_x()[:1], Blob())


def test_explore_is_in_the_api():
    assert vaekit.explore is explore


def test_explore_through_the_cli(tmp_path, capsys):
    x, y = digit_like(300, size=8)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ae = train_small_run(tmp_path / "d.npz", tmp_path / "ae", latent_dim=2, epochs=1, extra=("--set", "model.name=ae"))
    capsys.readouterr()
    assert main(["explore", str(ae), "--points", "20"]) == 0
    out = capsys.readouterr()
    assert "wrote" in out.out and "fitted the 'gaussian' sampler" in out.err  # an AE samples from a fitted Gaussian
    _, spec, _ = _spec(ae / "explorer" / "index.html")
    m = spec["models"][0]
    assert m["sampler"]["name"] == "gaussian" and "scale_tril" in m["sampler"] and len(m["map"]["points"]) == 20

    vae = train_small_run(tmp_path / "d.npz", tmp_path / "vae", latent_dim=3, epochs=1)
    assert main(["explore", str(vae), "--out", str(tmp_path / "page")]) == 0
    _, spec, _ = _spec(tmp_path / "page" / "index.html")
    assert spec["models"][0]["sampler"]["name"] == "prior" and not (vae / "samplers").exists()
    capsys.readouterr()
    (tmp_path / "file").write_text("x")
    for args, message in (
        (["--sampler", "bogus"], "--sampler 'bogus'"),
        (["--points", "0"], "--points 0"),
        (["--out", str(tmp_path / "file")], "exists and is not a folder"),
        (["--sampler", "gmm:0"], "--sampler 'gmm:0'"),
    ):
        target = tmp_path / "refused"
        assert main(["explore", str(vae), *args] + ([] if "--out" in args else ["--out", str(target)])) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and not target.exists()


def test_building_a_page_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    vae = (
        build_vae(ModelConfig(name="vae", latent_dim=2, hidden=[16], likelihood="bernoulli"), (1, 8, 8))
        .double()
        .train()
    )
    before = {k: v.clone() for k, v in vae.state_dict().items()}
    panel_spec(vae, _x()[0].double(), Blob())
    assert vae.training and all(
        v.dtype == torch.float64 and torch.equal(v, before[k]) for k, v in vae.state_dict().items()
    )


def test_a_failed_write_leaves_no_folder(tmp_path, monkeypatch):
    import vaekit.explorer.page as E

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(E, "page_html", broken)
    x, y = _x()
    with pytest.raises(OSError):
        explore(PCA(2).fit(x), x, tmp_path / "page", y=y)
    assert not (tmp_path / "page").exists()
