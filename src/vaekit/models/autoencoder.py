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
from torch import nn
from torch.distributions import Distribution

from .. import nets
from ..config import ModelConfig
from ..likelihoods import diagonal_normal, make_likelihood, standard_normal


@dataclass
class ModelOutput:
    """px: p(x|z) over (B, *shape); z: (B, D) code used; qz: q(z|x) (VAE) or None (autoencoder)."""

    px: Distribution
    z: torch.Tensor
    qz: Distribution | None = None


class Autoencoder(nn.Module):
    """Deterministic autoencoder: x -> z = encoder(x) -> p(x|z).

    encoder: (B, *shape) -> (B, D); decoder: (B, D) -> (B, *shape), the likelihood's parameters.
    Any `nn.Module`s with those shapes can be plugged in.
    """

    is_variational = False

    def __init__(self, encoder: nn.Module, decoder: nn.Module, shape: tuple[int, ...], latent_dim: int,
                 likelihood: str = "gaussian", sigma: float = 1.0, config: ModelConfig | None = None):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.shape, self.latent_dim = tuple(shape), latent_dim
        self.likelihood, self.sigma = likelihood, sigma
        self.config = config

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (B, *shape) -> (B, D)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)

    def decode(self, z: torch.Tensor) -> Distribution:
        return make_likelihood(self.likelihood, self.decoder(z), len(self.shape), self.sigma)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        z = self.encode(x)
        return ModelOutput(px=self.decode(z), z=z)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *shape) -> (B, *shape): the mean of p(x | embed(x))."""
        return self.decode(self.embed(x)).mean


class VAE(Autoencoder):
    """Variational autoencoder with q(z|x) = N(m, diag(exp(s))) and prior N(0, I).

    The encoder outputs (B, 2D): the mean m and the log-variance s. The code is sampled as
    z = m + exp(s / 2) * e with e ~ N(0, I) (reparameterisation), so gradients flow through it.
    """

    is_variational = True

    def encode(self, x: torch.Tensor) -> Distribution:
        mean, logvar = self.encoder(x).chunk(2, dim=-1)  # (B, 2D) -> 2 x (B, D)
        return diagonal_normal(mean, logvar)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x).mean

    def prior(self) -> Distribution:
        ref = next(self.parameters())
        return standard_normal(self.latent_dim, ref.device, ref.dtype)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        qz = self.encode(x)
        z = qz.rsample()  # (B, D)
        return ModelOutput(px=self.decode(z), z=z, qz=qz)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n codes from N(0, I), decoded to the mean of p(x|z): (n, *shape)."""
        ref = next(self.parameters())
        z = torch.randn(n, self.latent_dim, generator=generator, device=ref.device, dtype=ref.dtype)
        return self.decode(z).mean


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
    if cfg.latent_dim is None or cfg.hidden is None:  # fill the model's defaults
        from ..config import build_section

        cfg = build_section("model", {k: v for k, v in dataclasses.asdict(cfg).items() if v is not None})
    d = cfg.latent_dim
    if cfg.name == "linear_ae":
        return LinearAutoencoder(shape, d, tied=cfg.tied, config=cfg)
    out = 2 * d if cfg.name == "vae" else d
    if cfg.arch == "conv":
        if len(shape) != 3:
            from ..errors import VaekitError

            raise VaekitError(f"model.arch = 'conv' needs image data (C, H, W); this data has shape {shape}; use 'mlp'")
        enc = nets.ConvEncoder(shape, cfg.channels, out, cfg.activation)
        dec = nets.ConvDecoder(d, cfg.channels, shape, cfg.activation)
    else:
        enc = nets.MLPEncoder(shape, cfg.hidden, out, cfg.activation)
        dec = nets.MLPDecoder(d, list(reversed(cfg.hidden)), shape, cfg.activation)
    cls = VAE if cfg.name == "vae" else Autoencoder
    return cls(enc, dec, shape, d, cfg.likelihood, cfg.sigma, cfg)
