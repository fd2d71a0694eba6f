"""The explorer page in a real browser: Debian's chromium, headless, driven by playwright.

Each page is opened from file:// and must make no request but its own file and log no error. What
it computes is read back and compared with PyTorch: decoding, encoding (also of a drawing made
with the mouse), the map, the sliders, interpolation and the sample button.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from vaekit.config import ModelConfig
from vaekit.explorer.page import explore
from vaekit.models.autoencoder import build_ae, build_linear_ae, build_vae
from vaekit.models.pca import PCA

CHROMIUM = "/usr/bin/chromium"
TOL = 1e-4


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():  # a failure, not a skip: CI must run these
        pytest.fail(f"the browser tests need Debian's chromium at {CHROMIUM}: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


class Page:
    """An explorer page open in the browser, with every request and console error it caused."""

    def __init__(self, browser, path: Path):
        self.url = path.resolve().as_uri()
        self.page = browser.new_page()
        self.requests, self.errors = [], []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(self.url)
        self.page.wait_for_function("window.vaekit && window.vaekit.ready && window.vaekit.renders > 0")

    def js(self, expr: str, arg=None):
        return self.page.evaluate(expr, arg)

    def settle(self) -> None:
        """Two animation frames: any render an event scheduled has run."""
        self.js("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")

    def code(self, i: int = 0) -> torch.Tensor:
        return torch.tensor(self.js(f"() => window.vaekit.panels[{i}].code()"), dtype=torch.float64)

    def image(self, i: int = 0) -> torch.Tensor:
        return torch.tensor(self.js(f"() => window.vaekit.panels[{i}].image()"), dtype=torch.float64)

    def decode(self, z: torch.Tensor, label: int | None = None, i: int = 0) -> torch.Tensor:
        out = self.js(
            f"([zs, y]) => zs.map(z => Array.from(window.vaekit.panels[{i}].decode(z, y ?? undefined)))",
            [z.tolist(), label],
        )
        return torch.tensor(out, dtype=torch.float64)

    def encode(self, x: torch.Tensor, label: int | None = None, i: int = 0) -> list[dict]:
        return self.js(
            f"([xs, y]) => xs.map(x => window.vaekit.panels[{i}].encode(x, y ?? undefined))",
            [x.flatten(1).tolist(), label],
        )

    def box(self, selector: str) -> dict:
        """Where the element is in the viewport, scrolled into it first (the mouse acts on the viewport)."""
        self.page.locator(selector).scroll_into_view_if_needed()
        return self.page.locator(selector).bounding_box()

    def close(self) -> None:
        self.page.close()


def _digits(n: int = 64, shape=(1, 28, 28), seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    x = torch.rand(n, *shape, generator=g) * 0.3
    if len(shape) == 3:
        for i in range(n):  # a bright bar whose row depends on the label
            x[i, :, (2 + 2 * int(y[i])) % shape[1], :] = 1.0
    return x, y


def _model(arch: str, d: int, **kw):
    torch.manual_seed(0)
    build = {"ae": build_ae, "vae": build_vae}[kw.pop("name", "vae")]
    shape = kw.pop("shape", (1, 28, 28))
    cfg = ModelConfig(
        name="vae",
        latent_dim=d,
        arch=arch,
        hidden=kw.pop("hidden", [64, 32]),
        channels=kw.pop("channels", [8, 16]),
        likelihood=kw.pop("likelihood", "bernoulli"),
        **kw,
    )
    return build(cfg, shape).eval()


def _open(browser, tmp_path, model, x, y=None, **kw) -> Page:
    path = explore(model, x, tmp_path / "page", y=y, **kw)
    p = Page(browser, path)
    assert p.requests == [p.url], f"requests besides the page: {p.requests}"
    assert p.errors == []
    return p


def _decoded(model, z, y=None):
    with torch.no_grad():
        return model.decode(z.float(), y).mean.flatten(1).double()


# -- the four the issue names: MLP and conv VAEs at D = 2 and D = 30 ------------------------------


# MLP at D = 2 and conv at D = 30 in the default suite (each net, each side of the map's projection);
# the other two with -m slow.
@pytest.fixture(
    params=[
        ("mlp", 2),
        pytest.param(("mlp", 30), marks=pytest.mark.slow),
        pytest.param(("conv", 2), marks=pytest.mark.slow),
        ("conv", 30),
    ],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def named(request, browser, tmp_path):
    """(model, test images, its open page) for each of the four."""
    model = _model(*request.param)
    x, y = _digits()
    p = _open(browser, tmp_path, model, x, y)
    yield model, x, p
    p.close()


def test_page_decodes_and_encodes_as_pytorch_does(named):
    model, x, p = named
    z = torch.randn(6, model.latent_dim, generator=torch.Generator().manual_seed(1)) * 2
    assert (p.decode(z) - _decoded(model, z)).abs().max() <= TOL
    enc = p.encode(x[:5])
    with torch.no_grad():
        q = model.encode(x[:5])
    assert (torch.tensor([e["mean"] for e in enc]) - q.mean).abs().max() <= TOL
    assert (torch.tensor([e["logvar"] for e in enc]) - model.encoder_log_variance(x[:5])).abs().max() <= TOL


def _drag(p: Page, selector: str, points: list[tuple[float, float]]) -> None:
    """Press, move through `points` (fractions of the element's width and height), release."""
    b = p.box(selector)
    at = [(b["x"] + fx * b["width"], b["y"] + fy * b["height"]) for fx, fy in points]
    p.page.mouse.move(*at[0])
    p.page.mouse.down()
    for q in at[1:]:
        p.page.mouse.move(*q, steps=4)
    p.page.mouse.up()
    p.settle()


def test_a_drawing_is_encoded_as_pytorch_encodes_it(named):
    model, _, p = named
    _drag(p, "#panel-0 .pad", [(0.5, 0.15), (0.5, 0.85), (0.3, 0.8)])  # a "1" with a foot
    drawn = torch.tensor(p.js("() => window.vaekit.panels[0].drawn()")).view(1, *model.shape)
    assert 20 < int((drawn > 0.5).sum()) < 400  # the stroke inked some pixels, not the whole pad
    q = p.js("() => window.vaekit.panels[0].posterior()")
    with torch.no_grad():
        ref = model.encode(drawn)
    assert (torch.tensor(q["mean"]) - ref.mean[0]).abs().max() <= TOL
    assert (torch.tensor(q["logvar"]) - model.encoder_log_variance(drawn)[0]).abs().max() <= TOL
    assert torch.allclose(
        p.code(), torch.tensor(q["mean"], dtype=torch.float64)
    )  # the map and image follow the drawing
    assert (p.image() - _decoded(model, p.code()[None])[0]).abs().max() <= TOL


def test_sliders_and_the_map_change_the_image(named):
    model, _, p = named
    d = model.latent_dim
    spec = p.js("() => window.vaekit.spec.models[0]")
    before, code = p.image(), p.code()
    dim = spec["dims"]["order"][0]
    slider = p.page.locator(f'#panel-0 input[data-dim="{dim}"]')
    target = float(slider.get_attribute("max"))  # the top of its range: +3 standard deviations
    slider.fill(str(target))
    p.settle()
    after, moved = p.image(), p.code()
    assert moved[dim] == pytest.approx(target, abs=1e-9)
    others = [i for i in range(d) if i != dim]
    assert torch.equal(moved[others], code[others])  # one slider moves one coordinate
    assert (after - before).abs().max() > 1e-3
    assert (after - _decoded(model, moved[None])[0]).abs().max() <= TOL

    # the map: a point decodes to the code it stands for (lifted through the projection when D > 2)
    e, proj = spec["map"]["extent"], spec["map"]["projection"]
    images = []
    for fx, fy in [(0.2, 0.3), (0.8, 0.7)]:
        b = p.box("#panel-0 .map-top")
        p.page.mouse.move(b["x"] + fx * b["width"], b["y"] + fy * b["height"])
        p.settle()
        u, v = e[0] + fx * (e[1] - e[0]), e[2] + (1 - fy) * (e[3] - e[2])
        want = (
            torch.tensor([u, v], dtype=torch.float64)
            if proj is None
            else torch.tensor(proj["mean"], dtype=torch.float64)
            + u * torch.tensor(proj["axes"][0])
            + v * torch.tensor(proj["axes"][1])
        )
        assert (p.code() - want).abs().max() <= 0.02 * (e[1] - e[0])  # within a pixel or so of the pointer
        images.append(p.image())
        assert (images[-1] - _decoded(model, p.code()[None])[0]).abs().max() <= TOL
    assert (images[0] - images[1]).abs().max() > 1e-3


def test_interpolation_between_two_picked_images(browser, tmp_path):
    model = _model("mlp", 5)
    x, y = _digits()
    p = _open(browser, tmp_path, model, x, y)
    g = p.js("() => window.vaekit.spec.models[0].gallery")
    assert sorted(g["labels"][:10]) == list(range(10))  # one of each label first
    p.page.locator('#panel-0 .thumb[data-i="0"]').click()
    p.page.locator('#panel-0 .thumb[data-i="3"]').click()
    with torch.no_grad():
        za, zb = model.embed(x[[g["indices"][0], g["indices"][3]]]).double()
    from vaekit.explorer.pictures import interpolate_codes

    for mode in ("linear", "slerp"):
        p.page.locator("#panel-0 select.mode").select_option(mode)
        p.page.locator("#panel-0 input.t").fill("0.25")
        p.settle()
        want = interpolate_codes(za, zb, 5, mode)[1]  # t = 0.25
        assert (p.code() - want).abs().max() <= TOL
        assert (p.image() - _decoded(model, p.code()[None])[0]).abs().max() <= TOL
    p.close()


# -- every kind of model the explorer takes --------------------------------------------------------


def _pca(whiten: bool = False):
    x, _ = _digits(200, (1, 8, 8))
    return PCA(3, whiten=whiten).fit(x)


KINDS = {
    "resnet": lambda: _model("resnet", 4, channels=[4, 8], depth=1),
    "gated_mlp": lambda: _model("mlp", 3, block="gated", activation="gelu"),
    "residual_mlp": lambda: _model("mlp", 3, block="residual", hidden=[32, 32], activation="elu"),
    "tanh_cb": lambda: _model("mlp", 3, activation="tanh", likelihood="continuous_bernoulli"),
    "rgb_conv": lambda: _model("conv", 4, shape=(3, 12, 10), likelihood="gaussian_pixel"),
    "logistic_mixture": lambda: _model(
        "conv", 3, shape=(3, 8, 8), likelihood="discretized_logistic_mixture", mixture_components=3
    ),
    "logistic": lambda: _model("mlp", 3, shape=(1, 8, 8), likelihood="discretized_logistic"),
    "vectors": lambda: _model("mlp", 3, shape=(12,), likelihood="gaussian_shared"),
    "ae": lambda: _model("mlp", 2, name="ae", likelihood="gaussian"),
    "conditional": lambda: _model("mlp", 2, conditional=True, num_classes=10),
    "conditional_conv": lambda: _model("conv", 3, conditional=True, num_classes=10),
    "tied_linear": lambda: build_linear_ae(ModelConfig(name="linear_ae", latent_dim=3, tied=True), (1, 8, 8)),
    "pca": _pca,
    "pca_whitened": lambda: _pca(whiten=True),
}


# The default suite opens five kinds that between them cover the nets (MLP, conv, ResNet), a
# conditional model, vectors, a mixture likelihood and PCA; the slow suite opens the rest.
FAST_KINDS = ("resnet", "conditional_conv", "vectors", "logistic_mixture", "pca_whitened")


@pytest.mark.parametrize("kind", [k if k in FAST_KINDS else pytest.param(k, marks=pytest.mark.slow) for k in KINDS])
def test_every_kind_of_model_runs_in_the_page_as_in_pytorch(browser, tmp_path, kind):
    model = KINDS[kind]()
    x, y = _digits(64, model.shape)
    if "logistic" in kind:
        x = torch.round(x * 255) / 255
    p = _open(browser, tmp_path, model, x, y)
    d = model.latent_dim
    z = torch.randn(4, d, generator=torch.Generator().manual_seed(2)).double()
    labels = [None] if not model.conditional else [3, 7]
    for label in labels:
        yz = None if label is None else torch.full((4,), label)
        assert (p.decode(z, label) - _decoded(model, z, yz)).abs().max() <= TOL, label
        enc = p.encode(x[:3], label)
        yx = None if label is None else torch.full((3,), label)
        with torch.no_grad():
            ref = model.embed(x[:3].float(), yx).double()
        assert (torch.tensor([e["mean"] for e in enc]) - ref).abs().max() <= TOL
    if model.conditional:  # the label picker re-decodes the same code
        before = p.image()
        p.page.locator("#panel-0 select.label-pick").select_option("7")
        p.settle()
        assert (p.image() - before).abs().max() > 1e-4
        assert (p.image() - _decoded(model, p.code()[None], torch.tensor([7]))[0]).abs().max() <= TOL
    p.close()


def test_the_sample_button_draws_from_the_fitted_sampler(browser, tmp_path):
    from vaekit.models.samplers import fit_sampler

    model = _model("mlp", 3, name="ae", likelihood="gaussian")
    x, y = _digits(300)
    sampler = fit_sampler(model, x, "gaussian", 0)
    p = _open(browser, tmp_path, model, x, y, sampler=sampler, sampler_name="gaussian")
    p.page.locator("#panel-0 button.sample").click()
    p.settle()
    assert (p.image() - _decoded(model, p.code()[None])[0]).abs().max() <= TOL
    draws = torch.tensor(
        p.js(
            "() => { const p = window.vaekit.panels[0], out = [];"
            "for (let i = 0; i < 4000; i++) { p.sample(); out.push(p.code()); } return out; }"
        ),
        dtype=torch.float64,
    )
    loc, tril = sampler.loc[0].double(), sampler.scale_tril[0].double()
    cov = tril @ tril.T
    se = cov.diagonal().sqrt() / math.sqrt(len(draws))
    assert ((draws.mean(0) - loc).abs() <= 4 * se).all()  # the fitted mean, within 4 standard errors
    assert torch.allclose(torch.cov(draws.T), cov, rtol=0.1, atol=0.1 * cov.diagonal().max().item())
    p.close()


def test_the_two_stage_samplers_second_decoder_runs_in_the_page(browser, tmp_path):
    from vaekit.models.samplers import TwoStage

    model = _model("mlp", 3, name="ae", likelihood="gaussian")
    torch.manual_seed(1)
    inner = build_vae(ModelConfig(name="vae", latent_dim=3, hidden=[16, 16], likelihood="gaussian_shared"), (3,)).eval()
    x, y = _digits()
    p = _open(browser, tmp_path, model, x, y, sampler=TwoStage(inner), sampler_name="two-stage")
    u = torch.randn(5, 3, generator=torch.Generator().manual_seed(3)).double()
    got = torch.tensor(
        p.js("(us) => us.map(u => window.vaekit.panels[0].secondStage(u))", u.tolist()), dtype=torch.float64
    )
    assert (got - _decoded(inner, u)).abs().max() <= TOL
    p.page.locator("#panel-0 button.sample").click()
    p.settle()
    assert (p.image() - _decoded(model, p.code()[None])[0]).abs().max() <= TOL
    p.close()


def test_the_sample_button_draws_from_a_learned_mixture_prior(browser, tmp_path):
    model = _model("mlp", 2, prior="mog", prior_components=3)
    with torch.no_grad():
        model.prior_module.means.copy_(torch.tensor([[-4.0, 0.0], [4.0, 0.0], [0.0, 6.0]]))
        model.prior_module.logvars.fill_(math.log(0.04))
        model.prior_module.logits.copy_(torch.tensor([0.0, 0.0, math.log(2.0)]))
    x, y = _digits()
    p = _open(browser, tmp_path, model, x, y)
    draws = torch.tensor(
        p.js(
            "() => { const p = window.vaekit.panels[0], out = [];"
            "for (let i = 0; i < 4000; i++) { p.sample(); out.push(p.code()); } return out; }"
        ),
        dtype=torch.float64,
    )
    nearest = torch.cdist(draws, model.prior_module.means.double()).argmin(1)
    share = torch.bincount(nearest, minlength=3).double() / len(draws)
    assert torch.allclose(share, torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64), atol=0.03)
    within = (draws - model.prior_module.means.double()[nearest]).norm(dim=1)
    assert within.max() < 1.5  # 0.2 standard deviation: every draw sits at its component
    p.close()


def test_the_tours_page_links_the_ae_and_the_vae(browser, tmp_path):
    from vaekit.tutorial.experiment import moon_explorer

    ae, vae = _model("mlp", 2, name="ae", likelihood="gaussian"), _model("mlp", 2)
    x, y = _digits()
    p = Page(browser, moon_explorer(ae, vae, x, y, tmp_path / "explorer.html"))
    assert p.requests == [p.url] and p.errors == []
    spec = p.js("() => window.vaekit.spec")
    assert spec["linked"] and [m["variational"] for m in spec["models"]] == [False, True]
    assert p.js("() => document.querySelector('#panel-0 button.sample').disabled")  # the AE has no prior
    b = p.box("#panel-0 .map-top")
    p.page.mouse.move(b["x"] + 0.25 * b["width"], b["y"] + 0.6 * b["height"])
    p.settle()
    for i, model in enumerate((ae, vae)):  # one cursor: the same place on both maps, decoded by each model
        e = spec["models"][i]["map"]["extent"]
        want = torch.tensor([e[0] + 0.25 * (e[1] - e[0]), e[2] + 0.4 * (e[3] - e[2])], dtype=torch.float64)
        assert (p.code(i) - want).abs().max() <= 0.02 * (e[1] - e[0])
        assert (p.image(i) - _decoded(model, p.code(i)[None])[0]).abs().max() <= TOL
    p.close()
