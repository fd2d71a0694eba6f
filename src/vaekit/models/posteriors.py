"""Posteriors q(z|x) for the VAE: the diagonal Gaussian, and normalising flows on top of it.

Each is a module registered in `registry.POSTERIORS` (``model.posterior``) that turns the encoder's
output (B, P * D) into q(z|x), a Distribution with batch shape (B,) and event shape (D,); P is the
class's ``params_per_dim``.

The flows (Kingma et al. 2016; Durkan et al. 2019): the encoder gives a mean m, a log-variance s
and a context h, each (B, D). A code is drawn as

    z_0 ~ N(m, diag(exp(s))),   z = f(z_0; h),

where f is ``model.flow_steps`` autoregressive transforms, each conditioned on h, with the order of
the dimensions reversed between steps. Then

    log q(z|x) = log N(z_0; m, diag(exp(s))) - log |det df/dz_0|,

the log-determinant included. Each step of f computes z_i from z_0,<i in one parallel pass (the
inverse-autoregressive direction), so drawing is fast. Scoring a code that was *not* drawn needs
f's inverse, D sequential passes (50 times slower at D = 50), so these posteriors draw codes
together with their log-density (`likelihoods.JointDraw`), and the objectives and the
importance-sampled log p(x) use that.

- ``iaf``: affine steps, z_i = mu_i(z_<i, h) + sigma_i(z_<i, h) z_i: the inverse autoregressive
  flow of Kingma et al. (2016).
- ``nsf``: monotonic rational-quadratic spline steps (Durkan et al. 2019) in the same direction,
  identity outside [-5, 5].

The transforms are zuko's (``pip install "vaekit[flows]"``): its masked autoregressive transforms
take a context, broadcast (K, B, D) codes against (B, D) contexts, and its `NormalizingFlow` draws
a code with its log-density in one pass. zuko's MAF computes the data-to-noise direction in
parallel; used as the noise-to-code map f (the `.inv` of the flow's transform), it is an IAF, as
zuko's maintainers describe it.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.distributions import Distribution, constraints

from vaekit.errors import VaekitError
from vaekit.models.likelihoods import JointDraw, diagonal_normal


class DiagonalPosterior(nn.Module):
    """q(z|x) = N(m, diag(exp(s))): the encoder's (B, 2D) output is m and s. No parameters."""

    params_per_dim: ClassVar[int] = 2
    diagonal: ClassVar[bool] = True

    def __init__(self, latent_dim: int, steps: int = 0, hidden: list[int] | tuple[int, ...] = ()):
        super().__init__()

    def forward(self, params: torch.Tensor) -> Distribution:
        mean, logvar = params.chunk(2, dim=-1)  # (B, 2D) -> 2 x (B, D)
        return diagonal_normal(mean, logvar)


class FlowPosterior(Distribution, JointDraw):
    """z = f(z_0; h), z_0 ~ N(m, diag(exp(s))): batch (B,), event (D,). Wraps zuko's
    `NormalizingFlow(f^-1, base)`, whose `rsample` applies f."""

    arg_constraints: dict = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, flow: Distribution):
        self.flow = flow
        super().__init__(flow.batch_shape, flow.event_shape, validate_args=False)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        return self.flow.rsample(sample_shape)

    def rsample_and_log_prob(self, sample_shape: torch.Size = torch.Size()) -> tuple[torch.Tensor, torch.Tensor]:
        return self.flow.rsample_and_log_prob(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """log q(z|x) of given codes (..., B, D) -> (..., B): exact, but D sequential passes."""
        return self.flow.log_prob(value)

    @property
    def base(self) -> Distribution:
        """The diagonal Gaussian N(m, diag(exp(s))) the flow bends: batch (B,), event (D,)."""
        return self.flow.base

    @property
    def point(self) -> torch.Tensor:
        """The base mean pushed through f, (B, D): the code `embed` gives (q's mean has no closed form)."""
        return self.flow.transform.inv(self.flow.base.mean)


def _zuko():
    try:
        import zuko
    except ImportError:
        raise VaekitError(
            "a flow posterior (model.posterior = 'iaf' or 'nsf') needs the 'zuko' package: "
            'pip install "vaekit[flows]"'
        ) from None
    return zuko


class _Flow(nn.Module):
    """The encoder's (B, 3D) output is m, s and the context h; `flow_class` builds f from h."""

    params_per_dim: ClassVar[int] = 3
    diagonal: ClassVar[bool] = False
    flow_class: ClassVar[str]

    def __init__(self, latent_dim: int, steps: int = 2, hidden: list[int] | tuple[int, ...] = (256, 256)):
        super().__init__()
        zuko = _zuko()
        self.latent_dim = latent_dim
        self.flow = getattr(zuko.flows, self.flow_class)(
            features=latent_dim, context=latent_dim, transforms=steps, hidden_features=tuple(hidden)
        )

    @classmethod
    def parameter_count(cls, latent_dim: int, steps: int, hidden: list[int] | tuple[int, ...]) -> int:
        """About how many weights the flow has, without building it: each step a masked MLP from the code
        and the context (2D inputs) through `hidden` to P outputs per dimension (P = 2 affine, 3 * 8 - 1 for a
        spline of 8 bins)."""
        sizes = [2 * latent_dim, *hidden, (2 if cls.flow_class == "MAF" else 23) * latent_dim]
        return steps * sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))

    def forward(self, params: torch.Tensor) -> FlowPosterior:
        from zuko.distributions import NormalizingFlow

        mean, logvar, h = params.split(self.latent_dim, dim=-1)  # (B, 3D) -> 3 x (B, D)
        f = self.flow.transform(h)  # zuko's MAF transform: parallel in this direction, so it maps z_0 to z
        return FlowPosterior(NormalizingFlow(f.inv, diagonal_normal(mean, logvar)))  # the flow's map is code -> noise


class IAF(_Flow):
    """Affine inverse autoregressive steps (Kingma et al. 2016)."""

    flow_class = "MAF"


class SplineIAF(_Flow):
    """Rational-quadratic spline steps (Durkan et al. 2019), inverse-autoregressive."""

    flow_class = "NSF"
