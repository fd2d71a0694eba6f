"""Autoencoders and the VAE, on the model contract of `models.base`.

``encode(x)`` gives q(z|x): a point mass at the code for an autoencoder, a diagonal Gaussian for a
VAE. ``decode(z)`` gives the distribution p(x|z) over ``(B, *shape)``. ``embed(x)`` is the point code
``(B, D)`` (the posterior mean for a VAE); ``reconstruct(x)`` is the mean of p(x | embed(x)).
``forward(x)`` returns a `ModelOutput` from which the objective is computed, so a DDP wrapper sees
every parameter used.

An autoencoder here is a VAE whose encoder is a point mass: the same likelihoods apply and its
training objective is the reconstruction negative log-likelihood (squared error, up to constants,
for the Gaussian).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution

from vaekit.config import setting
from vaekit.errors import VaekitError
from vaekit.models import nets
from vaekit.models.base import LatentModel, require_squared_error
from vaekit.models.likelihoods import Observation, PointMass
from vaekit.registry import NETS, POSTERIORS, PRIORS

if TYPE_CHECKING:
    from vaekit.config import ModelConfig


@dataclass
class ModelOutput:
    """What the objectives need from one forward pass.

    px: p(x|z) with batch shape (B,) or (K, B); z: the code used, (B, D) or (K, B, D); qz: q(z|x)
    with batch shape (B,) (None for an autoencoder); prior: p(z), or None for N(0, I) (whose KL to
    a diagonal Gaussian has a closed form).

    What a posterior drawn with its density (`likelihoods.JointDraw`) adds, each (B,) or (K, B),
    nats, at the code z: log_qz = log q(z|x), and log_pz = log p(z) where the model computed it on
    the way (a hierarchical prior); kl_parts: the KL term in named parts (a hierarchical VAE: each
    layer's KL to its prior given the layers above, in closed form), which then is the KL.
    penalties: terms (B,) added to the training loss but not part of the bound (a VQ-VAE's
    commitment), each reported under its name.
    """

    px: Distribution
    z: torch.Tensor
    qz: Distribution | None = None
    prior: Distribution | None = None
    log_qz: torch.Tensor | None = None
    log_pz: torch.Tensor | None = None
    kl_parts: dict[str, torch.Tensor] | None = None
    penalties: dict[str, torch.Tensor] | None = None


def full_precision(t: torch.Tensor) -> torch.Tensor:
    """Under mixed precision the nets compute in bf16/fp16; the distributions built from their
    outputs (and every log-density) work in fp32. fp32 and fp64 outputs pass unchanged."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


class Autoencoder(nn.Module, LatentModel):
    """Deterministic autoencoder: x -> z = encoder(x) -> p(x|z). q(z|x) is a point mass at z.

    encoder: (B, *shape) -> (B, D) (called as encoder(x, c) with a one-hot label c: (B, n) when the
    model is conditional); decoder: (B, D [+ n]) -> (B, P * shape[0], *shape[1:]), the likelihood's
    P parameters per dimension. Any `nn.Module`s with those shapes can be plugged in.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        shape: tuple[int, ...],
        latent_dim: int,
        likelihood: str = "gaussian",
        sigma: float = 1.0,
        config: ModelConfig | None = None,
        *,
        components: int = 5,
        num_classes: int = 0,
    ):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.shape, self.latent_dim = tuple(shape), latent_dim
        self.likelihood, self.sigma = likelihood, sigma
        self.observation = Observation(likelihood, self.shape, sigma, components)
        self.num_classes = num_classes  # > 0: encoder and decoder are conditioned on a label
        self.config = config

    def _onehot(self, y: torch.Tensor | None, n: int, like: torch.Tensor) -> torch.Tensor | None:
        """Labels (B,) (or one label for all n) -> one-hot (n, num_classes); None if unconditional."""
        if not self.conditional:
            return None
        if y is None:
            raise ValueError(f"this model is conditioned on a label: pass y (labels 0..{self.num_classes - 1})")
        c = F.one_hot(y.long(), self.num_classes).to(like.dtype)
        return c.expand(n, self.num_classes) if c.dim() == 1 else c

    def _encode(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """The encoder's raw output: (B, *shape) -> (B, D) here, (B, 2D) for a VAE."""
        c = self._onehot(y, x.shape[0], x)  # x.shape[0], not len(x): it stays symbolic when exported
        return full_precision(self.encoder(x) if c is None else self.encoder(x, c))

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Distribution:
        return PointMass(self._encode(x, y))  # (B, *shape) -> point mass at (B, D)

    def embed(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self._encode(x, y)  # (B, D), the point mass's location without building it

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> Distribution:
        """z: (..., B, D) -> p(x|z) with batch shape (..., B); y: (B,) labels for a conditional model."""
        lead = z.shape[:-1]
        flat = z.reshape(-1, z.shape[-1])  # (N, D) with N = prod(lead)
        if self.conditional:
            c = self._onehot(y, lead[-1], z)  # (B, n)
            flat = torch.cat([flat, c.expand(*lead, self.num_classes).reshape(-1, self.num_classes)], 1)
        params = full_precision(self.decoder(flat))  # (N, P * C, H, W) or (N, P * F)
        return self.observation(params.view(*lead, *params.shape[1:]))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, n_samples: int = 1) -> ModelOutput:
        z = self._encode(x, y)
        return ModelOutput(px=self.decode(z, y), z=z)

    def describe(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "model": cfg.name if cfg else "custom",
            "config": dataclasses.asdict(cfg) if cfg else None,
            "shape": list(self.shape),
            "latent_dim": self.latent_dim,
            "likelihood": self.likelihood,
            "sigma": self.sigma,
            "variational": self.variational,
            "components": self.observation.components,
            "num_classes": self.num_classes,
            "prior": None,
            "prior_components": None,
        }


class VAE(Autoencoder):
    """Variational autoencoder with q(z|x) = N(m, diag(exp(s))) and a prior p(z) (N(0, I) by default,
    or a learned mixture or VampPrior).

    The encoder outputs (B, 2D): the mean m and the log-variance s. The code is sampled as
    z = m + exp(s / 2) * e with e ~ N(0, I) (reparameterisation), so gradients flow through it.
    """

    variational = True

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        shape: tuple[int, ...],
        latent_dim: int,
        likelihood: str = "gaussian",
        sigma: float = 1.0,
        config: ModelConfig | None = None,
        *,
        components: int = 5,
        num_classes: int = 0,
        prior: str = "standard_normal",
        prior_components: int | None = None,
    ):
        super().__init__(
            encoder,
            decoder,
            shape,
            latent_dim,
            likelihood,
            sigma,
            config,
            components=components,
            num_classes=num_classes,
        )
        self.prior_name = prior
        self.prior_module = PRIORS.get(prior)(latent_dim, self.shape, prior_components)
        # q(z|x) from the encoder's output: a diagonal Gaussian, or a flow on it (set by the config)
        self.posterior_name = config.posterior if config is not None else "diagonal"
        self.posterior_module = POSTERIORS.get(self.posterior_name)(
            latent_dim, *((config.flow_steps, config.flow_hidden) if config is not None else ())
        )

    @property
    def diagonal_posterior(self) -> bool:
        return self.posterior_module.diagonal

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Distribution:
        return self.posterior_module(self._encode(x, y))  # (B, P * D) -> q(z|x), batch (B,), event (D,)

    def embed(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        q = self.encode(x, y)
        return q.mean if self.diagonal_posterior else q.point

    def encoder_log_variance(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        d = self.latent_dim
        return self._encode(x, y)[..., d : 2 * d]  # (B, D): the (base) Gaussian's log-variance

    def prior(self) -> Distribution:
        """p(z), event shape (D,)."""
        return self.prior_module(self.encode)

    def init_from_data(self, x: torch.Tensor) -> None:
        """The VampPrior's pseudo-inputs start at random training examples x: (N, *shape)."""
        self.prior_module.init_from(x)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, n_samples: int = 1) -> ModelOutput:
        """One code per example (z: (B, D)), or n_samples > 1 codes each (z: (K, B, D))."""
        qz = self.encode(x, y)
        log_qz = None
        if self.diagonal_posterior:
            z = qz.rsample() if n_samples == 1 else qz.rsample((n_samples,))
        else:  # a flow: the code with its log-density, in one pass
            z, log_qz = qz.rsample_and_log_prob(() if n_samples == 1 else (n_samples,))
        prior = None if self.prior_name == "standard_normal" else self.prior()
        return ModelOutput(px=self.decode(z, y), z=z, qz=qz, prior=prior, log_qz=log_qz)

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, y: torch.Tensor | int | None = None
    ) -> torch.Tensor:
        """n codes from the prior, decoded to the mean of p(x|z): (n, *shape). A conditional model
        needs y: one label for all n, or (n,) labels."""
        ref = next(self.parameters())
        z = self.prior_module.draw(n, self.encode, generator, ref)  # (n, D)
        if y is not None:
            y = torch.as_tensor(y, device=ref.device).long().expand(n)
        return self.decode(z, y).mean

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "prior": self.prior_name, "prior_components": self.prior_module.components}


class TiedLinear(nn.Module):
    """The decoder x = W^T z + b that shares W with a linear encoder (the tutorial's W and W^T)."""

    def __init__(self, encoder: nn.Linear, shape: tuple[int, ...]):
        super().__init__()
        self.encoder = [encoder]  # a list so the shared weight is registered (and saved) once
        self.bias = nn.Parameter(torch.zeros(encoder.in_features))
        self.shape = tuple(shape)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(z, self.encoder[0].weight.t(), self.bias).unflatten(1, self.shape)


class _Flatten(nn.Module):
    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.linear = linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


class LinearAutoencoder(Autoencoder):
    """z = W x + a, x_hat = V z + b (V = W^T when tied), trained on squared error: PCA learned."""

    def __init__(self, shape: tuple[int, ...], latent_dim: int, tied: bool = False, config: ModelConfig | None = None):
        n_in = math.prod(shape)
        lin = nn.Linear(n_in, latent_dim)
        dec: nn.Module = TiedLinear(lin, shape) if tied else nets.MLPDecoder(latent_dim, [], shape)
        super().__init__(_Flatten(lin), dec, shape, latent_dim, "gaussian", 1.0, config)
        self.tied = tied

    def subspace(self) -> torch.Tensor:
        """(D, F) rows spanning the decoder's column space: the subspace reconstructions lie in.

        Squared error pins down this subspace (it is PCA's at the optimum); an untied encoder's
        rows may still drift in directions the data does not occupy.
        """
        w = self.encoder.linear.weight if self.tied else self.decoder.net[0].weight.T
        return w.detach()


def build_nets(cfg: ModelConfig, shape: tuple[int, ...], out_dim: int, n_cls: int) -> tuple[nn.Module, nn.Module]:
    """Encoder (B, *shape) -> (B, out_dim) and decoder (B, D + n_cls) -> the likelihood's parameters."""
    pshape = Observation(cfg.likelihood, shape, cfg.sigma, cfg.mixture_components).param_shape()
    return NETS.get(cfg.arch)(cfg, shape, out_dim, n_cls, pshape)


def label_classes(cfg: ModelConfig) -> int:
    """How many label classes a conditional model takes (0 for an unconditional one)."""
    if cfg.conditional and not cfg.num_classes:
        raise VaekitError(
            "model.conditional = true needs model.num_classes (the API fills it in from the data's labels)"
        )
    return cfg.num_classes if cfg.conditional else 0


@dataclass(frozen=True)
class LinearAESettings:
    """The linear autoencoder's own ``[model]`` key."""

    tied: bool = setting(False)  # linear_ae: decoder is the transpose of the encoder

    check = staticmethod(require_squared_error)


def build_linear_ae(cfg: ModelConfig, shape: tuple[int, ...]) -> LinearAutoencoder:
    return LinearAutoencoder(shape, cfg.latent_dim, tied=cfg.tied, config=cfg)


def build_ae(cfg: ModelConfig, shape: tuple[int, ...]) -> Autoencoder:
    n_cls = label_classes(cfg)
    enc, dec = build_nets(cfg, shape, cfg.latent_dim, n_cls)
    return Autoencoder(
        enc,
        dec,
        shape,
        cfg.latent_dim,
        cfg.likelihood,
        cfg.sigma,
        cfg,
        components=cfg.mixture_components,
        num_classes=n_cls,
    )


def build_vae(cfg: ModelConfig, shape: tuple[int, ...], cls: type[VAE] = VAE, **extra: Any) -> VAE:
    """A VAE (or a subclass `cls`, given its own keyword arguments `extra`) with the config's nets."""
    n_cls = label_classes(cfg)
    per_dim = POSTERIORS.get(cfg.posterior).params_per_dim  # the mean and the log-variance (and a flow's context)
    enc, dec = build_nets(cfg, shape, per_dim * cfg.latent_dim, n_cls)
    return cls(
        enc,
        dec,
        shape,
        cfg.latent_dim,
        cfg.likelihood,
        cfg.sigma,
        cfg,
        components=cfg.mixture_components,
        num_classes=n_cls,
        prior=cfg.prior,
        prior_components=cfg.prior_components,
        **extra,
    )
