"""Observation models p(x|z): the decoder's output becomes a distribution over x.

Every likelihood keeps all its normalising constants, so ``log_prob(x)`` (shape ``(...,)``: the sum
over x's dimensions, in nats) of one can be compared with another's on the same data:

- ``bernoulli``: a mass function on {0, 1} (binarised data);
- ``continuous_bernoulli``: a density on [0, 1] (Loaiza-Ganem & Cunningham 2019), for grey values;
- ``gaussian`` (fixed sigma), ``gaussian_shared`` (one learned sigma: the sigma-VAE of Rybkin et al.
  2021), ``gaussian_pixel`` (a learned sigma per dimension): densities on the real line;
- ``discretized_logistic`` and ``discretized_logistic_mixture``: mass functions on the 256 levels
  {0, 1/255, ..., 1} of 8-bit data (PixelCNN++'s bins; channels are modelled independently).

An `Observation` module turns decoder outputs into the distribution and owns any learned scale. The
decoder emits ``params_per_dim`` numbers per data dimension, stacked along the first data axis:
``(N, P * C, H, W)`` for images or ``(N, P * F)`` for vectors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Distribution, Independent, Normal, constraints

from vaekit.registry import LIKELIHOODS

GAUSSIANS = {"gaussian", "gaussian_shared", "gaussian_pixel"}
MIN_LOG_SCALE = -7.0  # learned log sigma / logistic log-scale floor, as in PixelCNN++


class ContinuousBernoulli(Distribution):
    """The continuous Bernoulli on [0, 1], parameterised by logits l = log(lambda / (1 - lambda)).

    p(x) = C(l) * lambda^x (1 - lambda)^(1 - x), with normaliser C(l) = l / tanh(l / 2) (-> 2 at l = 0).
    Written in logits because torch's version works from lambda and loses accuracy once
    sigmoid(l) rounds to 1 in float32 (|l| > ~17: the log-normaliser and the mean go wrong).
    """

    arg_constraints = {"logits": constraints.real}
    support = constraints.unit_interval
    has_rsample = False

    def __init__(self, logits: torch.Tensor, validate_args: bool | None = False):
        self.logits = logits
        super().__init__(logits.shape, validate_args=validate_args)

    def log_normalizer(self) -> torch.Tensor:
        """log C(l), stable at l = 0 and for large |l|.

        Near 0 a Taylor series: l / tanh(l/2) = 2 / (1 - l^2/12 + l^4/120 - ...), so
        log C(l) = log 2 + l^2/12 - 7 l^4/1440 + O(l^6); below |l| = 1e-2 the next term is < 1e-14."""
        l = self.logits
        a = l.abs()
        small = a < 1e-2
        safe = torch.where(small, torch.ones_like(a), a)
        exact = torch.log(safe) - torch.log(torch.tanh(safe / 2))
        u = l * l
        taylor = math.log(2.0) + u / 12 - 7 * u * u / 1440
        return torch.where(small, taylor, exact)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        # x log(lambda) + (1 - x) log(1 - lambda) = -BCE(logits, x)
        logits, value = torch.broadcast_tensors(self.logits, value)
        return -F.binary_cross_entropy_with_logits(logits, value, reduction="none") + self.log_normalizer()

    @property
    def mean(self) -> torch.Tensor:
        """E[x] = sigmoid(l) / tanh(l/2) - 1/l, which is 1/2 + l/12 - l^3/720 + O(l^5) near 0.
        The two terms of the closed form cancel as l -> 0 (each about 1/l), so below |l| = 0.25 the
        series is used: at most 7e-7 from the exact mean in float32 (the closed form down to
        |l| = 1e-3, as before, erred by up to 1e-4)."""
        l = self.logits
        small = l.abs() < 0.25
        safe = torch.where(small, torch.ones_like(l), l)
        exact = torch.sigmoid(safe) / torch.tanh(safe / 2) - 1 / safe
        return torch.where(small, 0.5 + l / 12 - l * l * l / 720, exact)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        """Inverse CDF: x = log(1 + u (e^l - 1)) / l, written for l > 0 as
        1 + log(u + (1 - u) e^-l) / l and mirrored (x -> 1 - x, u -> 1 - u) for l < 0."""
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            l = self.logits.expand(shape)
            u = torch.rand(shape, dtype=l.dtype, device=l.device)
            a = l.abs().clamp_min(1e-3)
            v = torch.where(l >= 0, u, 1 - u)
            x = 1 + torch.log(v + (1 - v) * torch.exp(-a)) / a
            x = torch.where(l >= 0, x, 1 - x)
            return torch.where(l.abs() < 1e-3, u, x).clamp(0, 1)


class IndependentBernoulli(Independent):
    """Bernoulli(logits) over the last `event_dims` dimensions, with a faster log_prob.

    log p(x) = sum_i [x_i l_i - softplus(l_i)], the same value as torch's (which is -BCE summed),
    but the x.l term is a batched matrix product when K codes per example are scored against one x
    (importance sampling): about twice as fast, and x is never copied K times.
    """

    def __init__(self, logits: torch.Tensor, event_dims: int):
        super().__init__(Bernoulli(logits=logits, validate_args=False), event_dims, validate_args=False)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        n = self.reinterpreted_batch_ndims
        logits = self.base_dist.logits.flatten(-n)  # (..., E)
        v = value.flatten(-n).to(logits.dtype)  # (..., E)
        if logits.dim() == 3 and v.dim() == 2 and logits.shape[1:] == v.shape:  # (K, B, E) against (B, E)
            dot = torch.einsum("kbe,be->kb", logits, v)
        else:
            dot = (logits * v).sum(-1)
        return dot - F.softplus(logits).sum(-1)


class DiscretizedLogistic(Distribution):
    """A mixture of M logistics, discretised to the 256 levels k/255 of 8-bit data, per dimension.

    logit_weights, loc, log_scale: (M, *batch). P(x = k/255) is the logistic mass of the bin
    [x - h, x + h] with h = 1/510; the first and last bins extend to -inf and +inf, so the masses of
    the 256 levels sum to exactly 1.
    """

    arg_constraints = {}
    support = constraints.unit_interval
    levels = 256

    def __init__(self, logit_weights: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor):
        self.logit_weights, self.loc = logit_weights, loc
        self.log_scale = log_scale.clamp_min(MIN_LOG_SCALE)
        super().__init__(loc.shape[1:], validate_args=False)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        h = 0.5 / (self.levels - 1)
        inv_s = torch.exp(-self.log_scale)
        centred = value.unsqueeze(0) - self.loc  # (M, *batch)
        upper = (centred + h) * inv_s
        lower = (centred - h) * inv_s
        # log(sigmoid(a) - sigmoid(b)) = log sigmoid(a) + log sigmoid(-b) + log(1 - e^(b - a)), a > b;
        # the edge bins drop the missing side (b = -inf at x = 0, a = +inf at x = 1).
        at_low, at_high = value <= h, value >= 1 - h
        log_cdf_upper = torch.where(at_high, torch.zeros_like(upper), F.logsigmoid(upper))
        log_sf_lower = torch.where(at_low, torch.zeros_like(lower), F.logsigmoid(-lower))
        width = (2 * h) * inv_s
        both = at_low | at_high
        log_gap = torch.where(both, torch.zeros_like(width), torch.log(-torch.expm1(-width)))
        log_mass = log_cdf_upper + log_sf_lower + log_gap  # (M, *batch)
        return torch.logsumexp(log_mass + F.log_softmax(self.logit_weights, 0), 0)

    @property
    def mean(self) -> torch.Tensor:
        """E[x] = (1/255) sum_{k=1}^{255} P(x >= k/255), summed bin edge by bin edge."""
        w = torch.softmax(self.logit_weights, 0)
        inv_s = torch.exp(-self.log_scale)
        total = torch.zeros_like(self.loc[0])
        for k in range(1, self.levels):
            edge = (k - 0.5) / (self.levels - 1)
            total = total + (w * torch.sigmoid((self.loc - edge) * inv_s)).sum(0)
        return total / (self.levels - 1)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            m = self.logit_weights.shape[0]
            comp = torch.distributions.Categorical(logits=self.logit_weights.movedim(0, -1)).sample(sample_shape)
            pick = lambda t: torch.gather(t.movedim(0, -1).expand(*shape, m), -1, comp.unsqueeze(-1)).squeeze(-1)
            u = torch.rand(shape, device=self.loc.device, dtype=self.loc.dtype).clamp(1e-5, 1 - 1e-5)
            x = pick(self.loc) + torch.exp(pick(self.log_scale)) * (torch.log(u) - torch.log1p(-u))
            return torch.round(x.clamp(0, 1) * (self.levels - 1)) / (self.levels - 1)


@dataclass(frozen=True)
class Family:
    """One likelihood family, as registered in `registry.LIKELIHOODS`.

    build(params, obs) -> p(x|z): params (P, ..., *shape) when P > 1, else (..., *shape); obs is the
    `Observation` (its shape, sigma, learned log_sigma). params_per_dim(components) -> P.
    scale: "shared" or "pixel" when the family learns a log-sigma (one, or one per dimension).
    discrete: a mass function (its log p(x) gives bits/dim of the data directly)."""

    build: Callable[[torch.Tensor, Observation], Distribution]
    discrete: bool = False
    scale: str | None = None
    params_per_dim: Callable[[int], int] = lambda components: 1


def _events(obs: Observation) -> int:
    return len(obs.shape)


def _gaussian(params: torch.Tensor, obs: Observation) -> Distribution:
    scale = obs.sigma if obs.family.scale is None else torch.exp(obs.log_sigma.clamp_min(MIN_LOG_SCALE))
    if not isinstance(scale, float):
        scale = scale.expand_as(params)
    return Independent(Normal(params, scale, validate_args=False), _events(obs), validate_args=False)


def _logistic(params: torch.Tensor, obs: Observation) -> Distribution:
    loc, log_scale = params
    return Independent(
        DiscretizedLogistic(torch.zeros_like(loc)[None], loc[None], log_scale[None]), _events(obs), validate_args=False
    )


def _logistic_mixture(params: torch.Tensor, obs: Observation) -> Distribution:
    m = obs.components  # mixture: weights, locations, log-scales, M of each
    return Independent(
        DiscretizedLogistic(params[:m], params[m : 2 * m], params[2 * m :]), _events(obs), validate_args=False
    )


BERNOULLI = Family(lambda p, obs: IndependentBernoulli(p, _events(obs)), discrete=True)
CONTINUOUS_BERNOULLI = Family(lambda p, obs: Independent(ContinuousBernoulli(p), _events(obs), validate_args=False))
GAUSSIAN = Family(_gaussian)
GAUSSIAN_SHARED = Family(_gaussian, scale="shared")
GAUSSIAN_PIXEL = Family(_gaussian, scale="pixel")
DISCRETIZED_LOGISTIC = Family(_logistic, discrete=True, params_per_dim=lambda components: 2)
DISCRETIZED_LOGISTIC_MIXTURE = Family(
    _logistic_mixture, discrete=True, params_per_dim=lambda components: 3 * components
)


class Observation(nn.Module):
    """Decoder outputs (N, P * shape[0], *shape[1:]) -> p(x|z) with event shape `shape`.

    Leading dimensions before N (e.g. K importance samples) are kept as batch dimensions.
    """

    def __init__(self, name: str, shape: tuple[int, ...], sigma: float = 1.0, components: int = 5):
        super().__init__()
        self.family: Family = LIKELIHOODS.get(name)
        self.name, self.shape, self.sigma, self.components = name, tuple(shape), float(sigma), components
        if self.family.scale == "shared":
            self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma)))
        elif self.family.scale == "pixel":
            self.log_sigma = nn.Parameter(torch.full(self.shape, math.log(sigma)))
        self.params_per_dim = self.family.params_per_dim(components)

    @property
    def discrete(self) -> bool:
        return self.family.discrete

    def param_shape(self) -> tuple[int, ...]:
        """The decoder's output shape per example: (P * shape[0], *shape[1:])."""
        return (self.params_per_dim * self.shape[0], *self.shape[1:])

    def forward(self, params: torch.Tensor) -> Distribution:
        n_event = len(self.shape)
        if self.params_per_dim > 1:  # (..., P*C, H, W) -> (P, ..., C, H, W)
            params = params.unflatten(-n_event, (self.params_per_dim, self.shape[0])).movedim(-n_event - 1, 0)
        return self.family.build(params, self)


def make_likelihood(name: str, params: torch.Tensor, event_dims: int, sigma: float = 1.0) -> Distribution:
    """p(x|z) for a parameter-free likelihood: params (..., *shape), event over the last `event_dims`."""
    if name not in ("bernoulli", "continuous_bernoulli", "gaussian"):
        raise ValueError(
            f"make_likelihood covers bernoulli, continuous_bernoulli and gaussian; '{name}' needs an Observation"
        )
    return Observation(name, tuple(params.shape[-event_dims:]), sigma)(params)


def standard_normal(latent_dim: int, device: torch.device | str, dtype: torch.dtype = torch.float32) -> Distribution:
    """N(0, I) over D latent dimensions: event shape (D,)."""
    zeros = torch.zeros(latent_dim, device=device, dtype=dtype)
    return Independent(Normal(zeros, torch.ones_like(zeros), validate_args=False), 1, validate_args=False)


class JointDraw:
    """A posterior that draws codes together with their log-density, because computing log q(z|x)
    of a given code is costly or sequential (the inverse of an inverse autoregressive flow takes D
    passes; a hierarchical posterior needs a top-down pass). Mixed into a `Distribution`."""

    def rsample_and_log_prob(self, sample_shape: torch.Size = torch.Size()) -> tuple[torch.Tensor, torch.Tensor]:
        """(z: (*sample_shape, *batch, D) with gradients, log q(z|x): (*sample_shape, *batch)) in nats."""
        raise NotImplementedError


def sample_with_log_prob(
    q: Distribution, sample_shape: torch.Size | tuple[int, ...] = ()
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Codes drawn from q with their log-density when q draws them together (`JointDraw`), else
    (q.sample(shape), None): the caller then scores the codes it keeps with q.log_prob."""
    if isinstance(q, JointDraw):
        return q.rsample_and_log_prob(torch.Size(sample_shape))
    return q.sample(torch.Size(sample_shape)), None


class PointMass(Distribution):
    """All mass at `loc` (..., D): the "posterior" of a deterministic encoder, event shape (D,).

    Its mean and every sample are `loc` (samples keep gradients: z = loc is the reparameterisation);
    its variance is zero. It has no density with respect to Lebesgue measure, so `log_prob` refuses,
    and with it every KL and importance weight that would need one."""

    arg_constraints = {}
    has_rsample = True

    def __init__(self, loc: torch.Tensor):
        self.loc = loc
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=False)

    @property
    def mean(self) -> torch.Tensor:
        return self.loc

    @property
    def mode(self) -> torch.Tensor:
        return self.loc

    @property
    def variance(self) -> torch.Tensor:
        return torch.zeros_like(self.loc)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        return self.loc if not sample_shape else self.loc.expand(*sample_shape, *self.loc.shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        raise ValueError("a point mass (a deterministic encoder) has no density: log q(z|x) is undefined; use a VAE")


def diagonal_normal(mean: torch.Tensor, logvar: torch.Tensor) -> Distribution:
    """q(z|x) = N(mean, diag(exp(logvar))): mean, logvar (..., D); event shape (D,)."""
    return Independent(Normal(mean, torch.exp(0.5 * logvar), validate_args=False), 1, validate_args=False)


def fit_problem(name: str, x: torch.Tensor, levels: int | None, dequantized: bool) -> tuple[str, bool] | None:
    """Why likelihood `name` does not fit data x, or None. Returns (message, overridable).

    `levels`: 256 for 8-bit data, 2 for binarised data, None for continuous data. Hard problems
    (values outside the support) cannot be overridden; soft ones (a Bernoulli on grey values, a
    Gaussian on undequantised 8-bit data) can, with model.likelihood_check = false.
    """
    lo, hi = float(x.min()), float(x.max())
    if name in ("bernoulli", "continuous_bernoulli") and (lo < 0 or hi > 1):
        return (
            f"model.likelihood = '{name}' needs data in [0, 1], found [{lo:.3g}, {hi:.3g}]; use a Gaussian or "
            f"data.scaling = 'minmax'",
            False,
        )
    if name.startswith("discretized_logistic") and (levels != 256 or dequantized):
        return (
            f"model.likelihood = '{name}' models 8-bit data (256 levels); this data is "
            + (
                "dequantised (set data.dequantize = 'none')"
                if dequantized
                else "not 8-bit (use a Gaussian or continuous_bernoulli)"
            )
        ), False
    if (
        name == "bernoulli" and levels != 2 and not bool(((x == 0) | (x == 1)).all())
    ):  # levels 2: binarised (dynamically too)
        return (
            "model.likelihood = 'bernoulli' on non-binary values: its log p(x) is not a likelihood of this data; "
            "set data.binarize = 'dynamic', use 'continuous_bernoulli', or set model.likelihood_check = false to train "
            "on "
            "cross-entropy anyway (the tutorial's loss)"
        ), True
    if name in GAUSSIANS and levels == 256 and not dequantized:
        return (
            f"model.likelihood = '{name}' on 8-bit data without dequantisation: a density on discrete values "
            "is not a likelihood (a learned sigma can shrink without bound); set data.dequantize = 'uniform', "
            "or model.likelihood_check = false"
        ), True
    return None
