"""The contract every vaekit model keeps, written down once.

Shapes (the fixed alphabet): ``x`` is ``(B, *shape)`` with ``shape`` = ``(C, H, W)`` or ``(F,)``;
``y`` is ``(B,)`` integer labels for a conditional model, else ``None`` (and ignored); ``z`` is
``(B, D)``, or ``(K, B, D)`` for K codes per example.

- ``encode(x, y=None)``: q(z|x), a Distribution with batch shape ``(B,)`` and event ``(D,)``. A
  deterministic encoder returns a `PointMass` (mean = the code, no density), so every model
  answers with the same type.
- ``embed(x, y=None)``: the point code ``(B, D)``: the mean of q(z|x) where it has a closed form;
  a flow posterior gives its base mean pushed through the flow, a hierarchical VAE each layer's
  conditional mean given the layers above.
- ``decode(z, y=None)``: p(x|z), a Distribution with batch shape ``z.shape[:-1]`` and event shape
  ``shape``; its ``mean`` is the decoded image or vector.
- ``reconstruct(x, y=None)``: ``(B, *shape)``, the mean of p(x | embed(x)).
- ``prior()``: p(z) with event shape ``(D,)``, or ``None`` for a model that has none and so cannot
  sample by itself (an autoencoder, PCA): samplers fitted to its codes plug in there.
- ``sample(n, generator, y)``: ``(n, *shape)`` decoded codes drawn from ``prior()``; a model without
  one raises `CannotSample`.
- ``init_from_data(x)``: data-dependent initialisation before training (a no-op but for the
  VampPrior, whose pseudo-inputs start at training examples).
- ``describe()``: the plain data (JSON) a model directory stores beside the weights.

Declared answers, so that no caller has to probe a model's type or attributes:

- ``variational``: q(z|x) has a density and p(z) exists, so the ELBO, its KL term and the
  importance-sampled log p(x) apply;
- ``exact_likelihood``: ``log_likelihood(x)`` gives log p(x) in closed form (probabilistic PCA);
- ``fitted_in_closed_form``: ``fit(x)`` solves the model at once (no training loop);
- ``diagonal_posterior``: q(z|x) is a diagonal Gaussian (``Independent(Normal)``), so its KL to
  N(0, I) splits by dimension in closed form and the per-dimension figures (KL per dimension,
  mutual information, the explorer's sliders) apply. A flow or hierarchical posterior is not;
  it draws codes together with their log-density (`likelihoods.JointDraw`);
- ``discrete_code``: the code is a grid of codebook indices and q(z|x) one code (a VQ-VAE): the
  ELBO log p(x|z_q) + log p(z_q) is the model's bound (importance sampling cannot tighten it), and
  ``code_metrics(codes)`` says how the codebook is used;
- ``kl_parts``: the names of the parts its KL term is reported in (a hierarchical VAE: one per
  stochastic layer), each a key of the objective's terms; empty for one KL;
- ``conditional`` / ``num_classes``: whether y is needed, and how many labels there are;
- ``shape``, ``latent_dim``, ``likelihood`` (the name of p(x|z)'s family);
- ``device`` / ``dtype``: where the model computes and the floating dtype of its weights, so that
  callers make inputs and codes for it without assuming it has ``parameters()`` (PCA has none).
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch.distributions import Distribution

from vaekit.errors import VaekitError


class CannotSample(VaekitError):
    """The model has no prior over its codes, so it cannot generate by itself."""


class LatentModel(ABC):
    """What every model implements; see the module docstring for the shapes."""

    variational: ClassVar[bool] = False
    exact_likelihood: ClassVar[bool] = False
    fitted_in_closed_form: ClassVar[bool] = False
    discrete_code: ClassVar[bool] = False

    shape: tuple[int, ...]
    latent_dim: int
    likelihood: str
    num_classes: int = 0

    @property
    def diagonal_posterior(self) -> bool:
        return False

    def _tensors(self):
        """The model's tensors, weights first: parameters then buffers for a torch module, else its state."""
        if isinstance(self, torch.nn.Module):
            return itertools.chain(self.parameters(), self.buffers())
        return iter(self.state_dict().values())

    @property
    def device(self) -> torch.device:
        """Where the model's tensors live: inputs and codes made for it go there."""
        first = next(self._tensors(), None)
        return first.device if first is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of its weights: inputs and codes made for it take it."""
        return next((t.dtype for t in self._tensors() if t.is_floating_point()), torch.get_default_dtype())

    @property
    def kl_parts(self) -> tuple[str, ...]:
        return ()

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @abstractmethod
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Distribution:
        """(B, *shape) -> q(z|x), batch (B,), event (D,)."""

    def embed(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, *shape) -> (B, D): the mean of q(z|x) (see the module docstring for other posteriors)."""
        return self.encode(x, y).mean

    @abstractmethod
    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> Distribution:
        """(..., B, D) -> p(x|z) with batch shape (..., B)."""

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, *shape) -> (B, *shape): the mean of p(x | embed(x))."""
        return self.decode(self.embed(x, y), y).mean

    def prior(self) -> Distribution | None:
        """p(z), event shape (D,); None when the model has no prior."""
        return None

    @property
    def can_sample(self) -> bool:
        return self.variational

    def sample(
        self, n: int, generator: torch.Generator | None = None, y: torch.Tensor | int | None = None
    ) -> torch.Tensor:
        """n codes from the prior, decoded to the mean of p(x|z): (n, *shape)."""
        raise CannotSample(f"a {type(self).__name__}, which has no prior to sample from; train a vae")

    def log_likelihood(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Exact log p(x) in nats, (B,), for a model with `exact_likelihood`."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form likelihood")

    def code_metrics(self, codes: torch.Tensor) -> dict[str, tuple[Any, str, str]]:
        """Figures about the codes (N, D) of N examples, {name: (value, unit, reduction)}: for a
        model with a `discrete_code`. None by default."""
        return {}

    def encoder_log_variance(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor | None:
        """The encoder's log-variance (B, D) as it computes it (before exp()), for diagnosing a
        diverged run; None for a deterministic encoder."""
        return None

    def init_from_data(self, x: torch.Tensor) -> None:  # noqa: B027 -- a hook: nothing to do unless a model overrides it
        """Data-dependent initialisation before training, from the training examples x: (N, *shape)
        (indexable by a tensor of indices; a streamed folder reads them from disk). None by default."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """The plain data that, with the weights, rebuilds this model (a model directory's config.json)."""


def require_squared_error(cfg: Any) -> None:
    """A model fitted by squared error (PCA, the linear autoencoder) has one likelihood: a fixed
    Gaussian. Refuse a config that asks for another."""
    if cfg.likelihood not in (None, "gaussian"):
        raise VaekitError(
            f"config key 'model.likelihood': {cfg.name} is fitted by squared error (a fixed Gaussian); got "
            f"{cfg.likelihood!r}"
        )
