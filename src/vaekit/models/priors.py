"""Priors p(z) over the D-dimensional code, as modules that return a Distribution (event shape (D,)).

- ``standard_normal``: N(0, I). The KL to a diagonal Gaussian q(z|x) has a closed form.
- ``mog``: a learned mixture of K diagonal Gaussians.
- ``vamp``: the VampPrior (Tomczak & Welling 2018), p(z) = 1/K sum_k q(z | u_k), the encoder's
  posteriors at K learned pseudo-inputs u_k. It needs the encoder, so the model passes it in. With a
  flow posterior the components are the base Gaussians N(m(u_k), diag(exp(s(u_k)))) that the flow
  bends: still a normalised mixture, whose log-density and samples stay cheap (a mixture of the
  flows themselves would need D sequential passes per component to score a code).

The names are registered in `registry.PRIORS`.

For the two mixtures the KL has no closed form; objectives use the single-sample Monte-Carlo
estimate log q(z|x) - log p(z) at the sampled z, which is unbiased.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.distributions import Categorical, Distribution, Independent, MixtureSameFamily, Normal

from vaekit.models.likelihoods import standard_normal


class GaussianMixture(MixtureSameFamily):
    """sum_k pi_k N(z; m_k, diag(s_k^2)) over D dimensions, with a faster log_prob than torch's.

    torch's MixtureSameFamily broadcasts every code against every component, (..., K, D) in memory;
    here the quadratic form is expanded, so the (N, K) log-densities come from two matrix products:
    log N(z; m, s) = -1/2 [z^2 . s^-2 - 2 z . m s^-2 + m^2 . s^-2 + sum log s^2 + D log 2 pi].
    logits: (K,); loc, scale: (K, D).
    """

    def __init__(self, logits: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor):
        comp = Independent(Normal(loc, scale, validate_args=False), 1, validate_args=False)
        super().__init__(Categorical(logits=logits, validate_args=False), comp, validate_args=False)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        base = self.component_distribution.base_dist
        prec = base.scale.pow(-2)  # (K, D)
        d = z.shape[-1]
        const = -0.5 * ((base.loc**2 * prec).sum(-1) + 2 * base.scale.log().sum(-1) + d * math.log(2 * math.pi))  # (K,)
        flat = z.reshape(-1, d)  # (N, D)
        log_comp = -0.5 * (flat**2) @ prec.T + flat @ (base.loc * prec).T + const  # (N, K)
        log_w = torch.log_softmax(self.mixture_distribution.logits, -1)
        return torch.logsumexp(log_comp + log_w, -1).view(z.shape[:-1])


class Prior(nn.Module):
    """A prior module: ``forward(encode)`` gives p(z) with event shape (D,) (the VampPrior needs the
    model's encoder; the others ignore it). Built as ``cls(latent_dim, shape, components)``."""

    @property
    def components(self) -> int:
        """Mixture components (0 for a single Gaussian)."""
        return 0

    def init_from(self, x: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Data-dependent initialisation from training examples x: (N, *shape); none by default."""

    @torch.no_grad()
    def draw(self, n: int, encode: Callable, generator: torch.Generator | None, ref: torch.Tensor) -> torch.Tensor:
        """n codes from p(z), all randomness from `generator`: (n, D) on ref's device and dtype.
        A mixture picks components, then draws from each."""
        prior = self(encode)
        comp = prior.component_distribution.base_dist  # Normal with loc, scale: (K, D)
        idx = torch.multinomial(prior.mixture_distribution.probs, n, replacement=True, generator=generator)
        eps = torch.randn(n, comp.loc.shape[-1], generator=generator, device=ref.device, dtype=ref.dtype)
        return comp.loc[idx] + comp.scale[idx] * eps


class StandardNormalPrior(Prior):
    def __init__(self, latent_dim: int, shape: tuple[int, ...] = (), components: int | None = None):
        super().__init__()
        self.latent_dim = latent_dim
        self.register_buffer("_ref", torch.zeros(()), persistent=False)  # follows the model's device/dtype

    def forward(self, encode: Callable | None = None) -> Distribution:
        return standard_normal(self.latent_dim, self._ref.device, self._ref.dtype)

    @torch.no_grad()
    def draw(self, n: int, encode: Callable, generator: torch.Generator | None, ref: torch.Tensor) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator, device=ref.device, dtype=ref.dtype)


class MixturePrior(Prior):
    """p(z) = sum_k pi_k N(z; m_k, diag(exp(s_k))), all learned, K = components (default 10).
    Means start spread as N(0, I)."""

    def __init__(self, latent_dim: int, shape: tuple[int, ...] = (), components: int | None = None):
        super().__init__()
        k = components or 10
        self.logits = nn.Parameter(torch.zeros(k))
        self.means = nn.Parameter(torch.randn(k, latent_dim))
        self.logvars = nn.Parameter(torch.zeros(k, latent_dim))

    @property
    def components(self) -> int:
        return len(self.logits)

    def forward(self, encode: Callable | None = None) -> Distribution:
        return GaussianMixture(self.logits, self.means, torch.exp(0.5 * self.logvars))


class VampPrior(Prior):
    """p(z) = 1/K sum_k q(z | u_k) with pseudo-inputs u: (K, *shape), learned with the model
    (K = components, default 500)."""

    def __init__(self, latent_dim: int, shape: tuple[int, ...], components: int | None = None):
        super().__init__()
        self.pseudo_inputs = nn.Parameter(0.5 + 0.01 * torch.randn(components or 500, *shape))

    @property
    def components(self) -> int:
        return len(self.pseudo_inputs)

    @torch.no_grad()
    def init_from(self, x: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Start the pseudo-inputs at K random training examples x: (N, *shape)."""
        idx = torch.randint(len(x), (len(self.pseudo_inputs),), generator=generator, device="cpu").to(x.device)
        self.pseudo_inputs.copy_(x[idx])

    def forward(self, encode: Callable | None = None) -> Distribution:
        if encode is None:
            raise ValueError("the VampPrior needs the encoder: call it through the model's prior()")
        q = encode(self.pseudo_inputs)
        qu = getattr(q, "base", q).base_dist  # diagonal Gaussians (a flow's base): loc, scale (K, D)
        k = len(self.pseudo_inputs)
        return GaussianMixture(torch.zeros(k, device=qu.loc.device, dtype=qu.loc.dtype), qu.loc, qu.scale)
