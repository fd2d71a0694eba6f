"""Autoencoders and the VAE, sharing one interface.

``encode(x)`` gives the code: a tensor ``(B, D)`` for an autoencoder, the distribution q(z|x) for a
VAE. ``decode(z)`` gives the distribution p(x|z) over ``(B, *shape)``. ``embed(x)`` is the point code
``(B, D)`` for every model (the posterior mean for a VAE); ``reconstruct(x)`` is the mean of
p(x | embed(x)). ``forward(x)`` returns a `ModelOutput` from which the objective is computed, so a
DDP wrapper sees every parameter used.

An autoencoder here is a VAE whose encoder is a point mass: the same likelihoods apply and its
training objective is the reconstruction negative log-likelihood (squared error, up to constants,
for the Gaussian).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution

from .. import nets
from ..config import ModelConfig
from ..errors import VaekitError
from ..likelihoods import Observation, diagonal_normal
from ..priors import build_prior


@dataclass
class ModelOutput:
    """What the objectives need from one forward pass.

    px: p(x|z) with batch shape (B,) or (K, B); z: the code used, (B, D) or (K, B, D); qz: q(z|x)
    with batch shape (B,) (None for an autoencoder); prior: p(z), or None for N(0, I) (whose KL to
    a diagonal Gaussian has a closed form).
    """

    px: Distribution
    z: torch.Tensor
    qz: Distribution | None = None
    prior: Distribution | None = None


def full_precision(t: torch.Tensor) -> torch.Tensor:
    """Under mixed precision the nets compute in bf16/fp16; the distributions built from their
    outputs (and every log-density) work in fp32. fp32 and fp64 outputs pass unchanged."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


class Autoencoder(nn.Module):
    """Deterministic autoencoder: x -> z = encoder(x) -> p(x|z).

    encoder: (B, *shape) -> (B, D) (called as encoder(x, c) with a one-hot label c: (B, n) when the
    model is conditional); decoder: (B, D [+ n]) -> (B, P * shape[0], *shape[1:]), the likelihood's
    P parameters per dimension. Any `nn.Module`s with those shapes can be plugged in.
    """

    is_variational = False

    def __init__(self, encoder: nn.Module, decoder: nn.Module, shape: tuple[int, ...], latent_dim: int,
                 likelihood: str = "gaussian", sigma: float = 1.0, config: ModelConfig | None = None,
                 *, components: int = 5, num_classes: int = 0):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.shape, self.latent_dim = tuple(shape), latent_dim
        self.likelihood, self.sigma = likelihood, sigma
        self.observation = Observation(likelihood, self.shape, sigma, components)
        self.num_classes = num_classes  # > 0: encoder and decoder are conditioned on a label
        self.config = config

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def _onehot(self, y: torch.Tensor | None, n: int, like: torch.Tensor) -> torch.Tensor | None:
        """Labels (B,) (or one label for all n) -> one-hot (n, num_classes); None if unconditional."""
        if not self.conditional:
            return None
        if y is None:
            raise ValueError(f"this model is conditioned on a label: pass y (labels 0..{self.num_classes - 1})")
        c = F.one_hot(y.long(), self.num_classes).to(like.dtype)
        return c.expand(n, self.num_classes) if c.dim() == 1 else c

    def _encode(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        c = self._onehot(y, len(x), x)
        return full_precision(self.encoder(x) if c is None else self.encoder(x, c))

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self._encode(x, y)  # (B, *shape) -> (B, D)

    def embed(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(x, y)

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
        z = self.encode(x, y)
        return ModelOutput(px=self.decode(z, y), z=z)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, *shape) -> (B, *shape): the mean of p(x | embed(x))."""
        return self.decode(self.embed(x, y), y).mean


class VAE(Autoencoder):
    """Variational autoencoder with q(z|x) = N(m, diag(exp(s))) and a prior p(z) (N(0, I) by default,
    or a learned mixture or VampPrior).

    The encoder outputs (B, 2D): the mean m and the log-variance s. The code is sampled as
    z = m + exp(s / 2) * e with e ~ N(0, I) (reparameterisation), so gradients flow through it.
    """

    is_variational = True

    def __init__(self, encoder: nn.Module, decoder: nn.Module, shape: tuple[int, ...], latent_dim: int,
                 likelihood: str = "gaussian", sigma: float = 1.0, config: ModelConfig | None = None,
                 *, components: int = 5, num_classes: int = 0, prior: str = "standard_normal",
                 prior_components: int | None = None):
        super().__init__(encoder, decoder, shape, latent_dim, likelihood, sigma, config,
                         components=components, num_classes=num_classes)
        if prior == "vamp" and num_classes:
            raise ValueError("the VampPrior is not defined for a conditional VAE (its pseudo-inputs carry no label)")
        self.prior_name = prior
        self.prior_module = build_prior(prior, latent_dim, self.shape, prior_components)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Distribution:
        mean, logvar = self._encode(x, y).chunk(2, dim=-1)  # (B, 2D) -> 2 x (B, D)
        return diagonal_normal(mean, logvar)

    def embed(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(x, y).mean

    def prior(self) -> Distribution:
        """p(z), event shape (D,)."""
        return self.prior_module(self.encode)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, n_samples: int = 1) -> ModelOutput:
        """One code per example (z: (B, D)), or n_samples > 1 codes each (z: (K, B, D))."""
        qz = self.encode(x, y)
        z = qz.rsample() if n_samples == 1 else qz.rsample((n_samples,))
        prior = None if self.prior_name == "standard_normal" else self.prior()
        return ModelOutput(px=self.decode(z, y), z=z, qz=qz, prior=prior)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, y: torch.Tensor | int | None = None) -> torch.Tensor:
        """n codes from the prior, decoded to the mean of p(x|z): (n, *shape). A conditional model
        needs y: one label for all n, or (n,) labels."""
        ref = next(self.parameters())
        if self.prior_name == "standard_normal":
            z = torch.randn(n, self.latent_dim, generator=generator, device=ref.device, dtype=ref.dtype)
        else:  # a mixture: pick components, then draw from each, all from `generator`
            prior = self.prior()
            comp = prior.component_distribution.base_dist  # Normal with loc, scale: (K, D)
            idx = torch.multinomial(prior.mixture_distribution.probs, n, replacement=True, generator=generator)
            eps = torch.randn(n, self.latent_dim, generator=generator, device=ref.device, dtype=ref.dtype)
            z = comp.loc[idx] + comp.scale[idx] * eps
        if y is not None:
            y = torch.as_tensor(y, device=ref.device).long().expand(n)
        return self.decode(z, y).mean


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
        n_in = int(torch.tensor(shape).prod())
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


def build_model(cfg: ModelConfig, shape: tuple[int, ...]) -> Autoencoder:
    """A trainable model from its config and the data's shape ((C, H, W) or (F,))."""
    from ..config import build_section

    if cfg.latent_dim is None or cfg.hidden is None or cfg.likelihood is None:  # fill the model's defaults
        cfg = build_section("model", {k: v for k, v in dataclasses.asdict(cfg).items() if v is not None})
    d = cfg.latent_dim
    if cfg.name == "linear_ae":
        return LinearAutoencoder(shape, d, tied=cfg.tied, config=cfg)
    n_cls = cfg.num_classes or 0 if cfg.conditional else 0
    if cfg.conditional and not n_cls:
        raise VaekitError("model.conditional = true needs model.num_classes (the API fills it in from the data's labels)")
    out = 2 * d if cfg.name == "vae" else d
    obs = Observation(cfg.likelihood, shape, cfg.sigma, cfg.mixture_components)
    pshape = obs.param_shape()  # what the decoder must emit per example
    if cfg.arch in ("conv", "resnet") and len(shape) != 3:
        raise VaekitError(f"model.arch = '{cfg.arch}' needs image data (C, H, W); this data has shape {shape}; use 'mlp'")
    if cfg.arch == "conv":
        enc = nets.ConvEncoder(shape, cfg.channels, out, cfg.activation, cond_dim=n_cls)
        dec = nets.ConvDecoder(d + n_cls, cfg.channels, pshape, cfg.activation)
    elif cfg.arch == "resnet":
        enc = nets.ResNetEncoder(shape, cfg.channels, cfg.depth, out, cfg.activation, cond_dim=n_cls)
        dec = nets.ResNetDecoder(d + n_cls, cfg.channels, cfg.depth, pshape, cfg.activation)
    else:
        enc = nets.MLPEncoder(shape, cfg.hidden, out, cfg.activation, cfg.block, cond_dim=n_cls, dropout=cfg.dropout)
        dec = nets.MLPDecoder(d + n_cls, list(reversed(cfg.hidden)), pshape, cfg.activation, cfg.block, cfg.dropout)
    common = dict(components=cfg.mixture_components, num_classes=n_cls)
    if cfg.name == "vae":
        try:
            return VAE(enc, dec, shape, d, cfg.likelihood, cfg.sigma, cfg, prior=cfg.prior,
                       prior_components=cfg.prior_components, **common)
        except ValueError as e:
            raise VaekitError(f"model config: {e}") from None
    return Autoencoder(enc, dec, shape, d, cfg.likelihood, cfg.sigma, cfg, **common)
