"""The VQ-VAE: the codebook's moving averages and restarts, the straight-through gradient, a prior
that is a normalised distribution over code grids, and a bound that is exactly
log p(x | z_q) + log p(z_q)."""

import itertools
import math

import pytest
import torch

from vaekit.config import ModelConfig, build_section
from vaekit.errors import VaekitError
from vaekit.metrics.evaluation import evaluate
from vaekit.models import build_model
from vaekit.models.vqvae import Codebook, CodePrior
from vaekit.objectives.elbo import elbo_terms

SMALL = dict(name="vqvae", channels=[8, 16], depth=1, codebook_size=16, codebook_dim=4, prior_width=16, prior_layers=1)


def _vq(**kw):
    torch.manual_seed(0)
    return build_model(ModelConfig(**{**SMALL, **kw}), (1, 8, 8))


def _x(n=24, seed=0):
    return torch.bernoulli(torch.full((n, 1, 8, 8), 0.4), generator=torch.Generator().manual_seed(seed))


def test_the_prior_is_a_distribution_over_every_code_grid():
    """Summed over all K^T grids (K = 5, T = 4) its probabilities add up to 1, and what it samples
    has those probabilities."""
    torch.manual_seed(0)
    prior = CodePrior(size=5, tokens=4, width=8, layers=1)
    with torch.no_grad():
        for p in prior.parameters():
            p.add_(torch.randn_like(p))  # far from uniform
        grids = torch.tensor(list(itertools.product(range(5), repeat=4)))
        logp = prior.log_prob(grids)  # (625,)
    assert abs(float(torch.logsumexp(logp.double(), 0))) < 1e-5
    small = CodePrior(size=3, tokens=2, width=8, layers=1)
    with torch.no_grad():
        for p in small.parameters():
            p.add_(torch.randn_like(p))
        grids = torch.tensor(list(itertools.product(range(3), repeat=2)))
        probs = small.log_prob(grids).exp()
        draws = small.sample(20000, torch.Generator().manual_seed(1))
    freq = torch.stack([((draws == g).all(1)).float().mean() for g in grids])
    se = (probs * (1 - probs) / 20000).sqrt()
    assert bool(((freq - probs).abs() < 4 * se + 1e-3).all())


def test_the_prior_is_causal():
    """The log-probability of index t does not depend on the indices after it."""
    torch.manual_seed(0)
    prior = CodePrior(size=6, tokens=5, width=8, layers=2)
    a = torch.tensor([[1, 2, 3, 4, 5]])
    b = torch.tensor([[1, 2, 0, 0, 0]])
    with torch.no_grad():
        la = torch.log_softmax(prior.logits(a), -1).gather(-1, a[..., None])[0, :, 0]
        lb = torch.log_softmax(prior.logits(b), -1).gather(-1, b[..., None])[0, :, 0]
    assert torch.allclose(la[:2], lb[:2], atol=1e-6) and not torch.allclose(la[2:], lb[2:])


def test_the_codebook_moving_averages_and_restarts():
    torch.manual_seed(0)
    book = Codebook(size=4, dim=2, decay=0.9)
    before_sum, before_count = book.ema_sum.clone(), book.ema_count.clone()
    flat = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 5.0]])
    idx = torch.tensor([0, 0, 2])
    book.update(flat, idx)
    count = torch.tensor([2.0, 0.0, 1.0, 0.0])
    assert torch.allclose(book.ema_count, 0.9 * before_count + 0.1 * count)
    summed = torch.stack([flat[0] + flat[1], torch.zeros(2), flat[2], torch.zeros(2)])
    assert torch.allclose(book.ema_sum, 0.9 * before_sum + 0.1 * summed)
    n = book.ema_count.sum()
    smoothed = (book.ema_count + 1e-5) / (n + 4e-5) * n
    assert torch.allclose(book.vectors, book.ema_sum / smoothed[:, None])
    # a code nobody picks decays below 3% of a uniform share (0.03 * 3 / 4) and restarts at one of the batch's vectors
    used = {tuple(v.tolist()) for v in flat}
    for step in range(100):  # noqa: B007 -- read after the loop, where it broke
        book.update(flat, idx)
        if tuple(book.vectors[1].tolist()) in used:
            break
    assert tuple(book.vectors[1].tolist()) in used and float(book.ema_count[1]) == 1.0  # code 1 was never chosen
    assert (
        0.9 ** (step + 2) < 0.03 * 3 / 4 < 0.9 ** (step + 1)
    )  # restarted at the first update (of step + 2) its count fell below the share


def test_nearest_is_the_closest_vector():
    torch.manual_seed(0)
    book = Codebook(size=7, dim=3, decay=0.99)
    flat = torch.randn(50, 3)
    brute = torch.cdist(flat, book.vectors, compute_mode="donot_use_mm_for_euclid_dist").argmin(1)
    assert torch.equal(book.nearest(flat), brute)


def test_the_gradient_goes_straight_through_the_quantiser():
    """d loss / d z_e equals d loss / d z_q: the encoder learns from the reconstruction as if there
    were no quantiser; the commitment adds 2 beta (z_e - z_q)."""
    m = _vq(commitment=0.0)
    x = _x(4)
    m.train()
    captured = {}

    def keep(module, inputs, output):
        output.retain_grad()
        captured["z_e"] = output

    hook = m.encoder.register_forward_hook(keep)
    vectors = m.codebook.vectors.clone()  # the forward quantises with these, then takes its moving-average step
    out = m(x)
    hook.remove()
    z_e = captured["z_e"]
    z_q = vectors[out.z.long().flatten()].view(4, 2, 2, -1).permute(0, 3, 1, 2)  # the grid used
    nll = -out.px.log_prob(x).sum()
    nll.backward()
    # the same decoder on z_q directly, with z_q a leaf: its gradient is the one z_e received
    zq_leaf = z_q.detach().clone().requires_grad_(True)
    (-m._px(zq_leaf, (4,)).log_prob(x).sum()).backward()
    assert torch.allclose(z_e.grad, zq_leaf.grad, atol=1e-5)
    assert m.encoder.body[0].weight.grad.abs().sum() > 0  # it reaches the encoder's first layer


def test_the_bound_is_log_p_x_given_z_q_plus_log_p_z_q():
    m = _vq().eval()
    x = _x()
    with torch.no_grad():
        out = m(x)
        idx = m.encode(x).mean  # (B, T) index grid
        manual = m.decode(idx).log_prob(x) + m.prior().log_prob(idx)
        terms = elbo_terms(out, x)
    assert torch.allclose(terms["elbo"], manual, atol=1e-4)
    assert bool((terms["kl"] > 0).all())  # -log p(z_q) of a discrete code
    res = evaluate(m, x, k=100)
    assert math.isclose(res["elbo"]["value"], float(manual.mean()), abs_tol=1e-3)
    assert "log_px" not in res  # importance sampling cannot tighten a one-code posterior
    assert math.isclose(res["bits_per_dim"]["value"], -res["elbo"]["value"] / (64 * math.log(2)), rel_tol=1e-9)
    assert "upper bound" in res["bits_per_dim"]["reduction"]
    assert 1 <= res["codebook_usage"]["value"] <= 16 and 1 <= res["codebook_perplexity"]["value"] <= 16


def test_code_metrics_count_and_perplexity():
    m = _vq()
    codes = torch.tensor([[0.0, 0, 1, 1], [2, 2, 3, 3]])  # four codes, equally often
    got = m.code_metrics(codes)
    assert got["codebook_usage"][0] == 4 and math.isclose(got["codebook_perplexity"][0], 4.0)
    assert math.isclose(m.code_metrics(torch.zeros(3, 4))["codebook_perplexity"][0], 1.0)


def test_the_codebook_starts_at_encoder_outputs():
    m = _vq()
    x = _x(40)
    m.init_from_data(x)
    with torch.no_grad():
        z_e = m.encoder(x).permute(0, 2, 3, 1).reshape(-1, 4)
    dist = torch.cdist(m.codebook.vectors, z_e, compute_mode="donot_use_mm_for_euclid_dist").min(1).values
    assert float(dist.max()) < 1e-5 and torch.equal(m.codebook.ema_sum, m.codebook.vectors)


def test_encoding_does_not_move_the_codebook():
    m = _vq()
    before = m.codebook.vectors.clone()
    m.train()
    m.encode(_x())
    m.reconstruct(_x())
    assert torch.equal(m.codebook.vectors, before)
    m(_x())  # a training forward does
    assert not torch.equal(m.codebook.vectors, before)


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"codebook_decay": 1.0}, "'model.codebook_decay': got 1.0, expected a decay in"),
        ({"prior_layers": 65}, "'model.prior_layers': got 65, expected at most 64"),
        ({"codebook_size": 0}, "'model.codebook_size': got 0, must be > 0"),
        ({"prior_width": 30}, "'model.prior_width': got 30"),
        ({"commitment": -1.0}, "'model.commitment': got -1.0, must be >= 0"),
    ],
)
def test_bad_vq_configs_name_the_key(raw, message):
    with pytest.raises(VaekitError, match=message):
        build_section("model", {"name": "vqvae", **raw})


def test_vectors_are_refused():
    with pytest.raises(VaekitError, match="needs image data"):
        build_model(build_section("model", {"name": "vqvae"}), (7,))
