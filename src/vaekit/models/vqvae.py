"""The VQ-VAE (van den Oord et al. 2017) with a learned autoregressive prior, on the model contract.

The encoder maps x (B, C, H, W) to a grid of T = H_L W_L vectors of ``model.codebook_dim`` numbers;
each is replaced by its nearest of the ``model.codebook_size`` (K) codebook vectors. The code z is
the grid of their indices, (B, T) (as floats, like every vaekit code), and q(z|x) puts all its mass
on it. The decoder maps the quantised grid to p(x|z).

Training (all per example, shape (B,)):
- the reconstruction term -log p(x | z_q), its gradient passed to the encoder straight through the
  quantiser (z_q = z_e + sg(z_q - z_e));
- the commitment penalty ``model.commitment`` * ||z_e - sg(z_q)||^2, summed over the grid;
- the codebook follows the encoder by exponential moving averages of the vectors assigned to each
  code (decay ``model.codebook_decay``, Laplace-smoothed counts) instead of a gradient; a code
  whose average count falls below 1/K of a batch's share is restarted at a random encoder output
  of the batch (so no code stays dead);
- the prior p(z), a small causal transformer over the T indices in raster order, trained on the
  indices (which carry no gradient back to the encoder) by -log p(z_q).

Because q(z|x) is one code, H(q) = 0 and the evidence lower bound is

    log p(x) >= log p(x | z_q) + log p(z_q),

so the model's KL term is -log p(z_q) (nats, >= 0 for a distribution over discrete codes) and its
ELBO is that honest bound. Importance sampling cannot tighten it (every draw from q is z_q), so
the evaluation reports the bound and its bits/dim, with the codebook's usage and perplexity.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, constraints

from vaekit.config import setting
from vaekit.errors import VaekitError
from vaekit.models.autoencoder import ModelOutput, full_precision
from vaekit.models.base import LatentModel
from vaekit.models.likelihoods import Observation, PointMass
from vaekit.models.nets import GridDecoder, GridEncoder

if TYPE_CHECKING:
    from vaekit.config import ModelConfig


class Codebook(nn.Module):
    """K vectors of size E, trained by exponential moving averages. Buffers, not parameters: the
    optimiser never touches them (they are saved, averaged by EMA weights and resumed like weights)."""

    def __init__(self, size: int, dim: int, decay: float):
        super().__init__()
        self.size, self.dim, self.decay = size, dim, decay
        self.register_buffer("vectors", torch.randn(size, dim) / math.sqrt(dim))
        self.register_buffer("ema_count", torch.ones(size))
        self.register_buffer("ema_sum", self.vectors.clone())

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """(N, E) -> (N,) indices of the nearest vectors (squared Euclidean distance)."""
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.vectors.T + self.vectors.pow(2).sum(1)  # (N, K)
        return d.argmin(1)

    @torch.no_grad()
    def update(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        """One EMA step from encoder outputs flat (N, E) assigned to idx (N,); counts and sums are
        added over the processes of a torchrun job first. Then dead codes restart."""
        from vaekit.training.distributed import all_sum, current

        onehot = F.one_hot(idx, self.size).to(flat.dtype)  # (N, K)
        count, total = all_sum(onehot.sum(0), current()), all_sum(onehot.T @ flat, current())  # (K,), (K, E)
        self.ema_count.mul_(self.decay).add_(count, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(total, alpha=1 - self.decay)
        n = self.ema_count.sum()
        smoothed = (self.ema_count + 1e-5) / (n + self.size * 1e-5) * n  # Laplace smoothing: no division by 0
        self.vectors.copy_(self.ema_sum / smoothed[:, None])
        dead = self.ema_count < float(count.sum()) / self.size * 0.03  # far below a uniform share
        if bool(dead.any()):
            pick = torch.randint(0, len(flat), (int(dead.sum()),), device=flat.device)
            self.vectors[dead] = flat[pick]
            self.ema_sum[dead] = flat[pick]
            self.ema_count[dead] = 1.0


class CodePrior(nn.Module):
    """p(z) over T indices in raster order: a causal transformer (pre-norm, `layers` blocks of width
    W, 4 heads). Token t sees a start token and the indices before it."""

    def __init__(self, size: int, tokens: int, width: int, layers: int):
        super().__init__()
        self.size, self.tokens = size, tokens
        self.embed = nn.Embedding(size + 1, width)  # index `size` is the start token
        self.position = nn.Parameter(torch.zeros(tokens, width))
        block = nn.TransformerEncoderLayer(width, 4, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, size))
        self.register_buffer("causal", torch.triu(torch.full((tokens, tokens), float("-inf")), 1), persistent=False)

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        """(N, t) indices, t <= T -> (N, t, K): the logits of each next index given the ones before."""
        start = torch.full_like(idx[:, :1], self.size)
        h = self.embed(torch.cat([start, idx[:, :-1]], 1)) + self.position[: idx.shape[1]]
        t = idx.shape[1]
        return full_precision(self.out(self.blocks(h, mask=self.causal[:t, :t], is_causal=True)))

    def log_prob(self, idx: torch.Tensor) -> torch.Tensor:
        """(..., T) indices -> (...,) log p(z) in nats."""
        lead = idx.shape[:-1]
        flat = idx.reshape(-1, self.tokens).long()
        logp = torch.log_softmax(self.logits(flat), -1).gather(-1, flat[..., None])[..., 0]  # (N, T)
        return logp.sum(-1).view(lead)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, T) indices drawn one position at a time."""
        idx = torch.zeros(n, 0, dtype=torch.long, device=self.position.device)
        for _ in range(self.tokens):
            ahead = torch.cat([idx, idx.new_zeros(n, 1)], 1)  # the last column is a placeholder, never read
            probs = torch.softmax(self.logits(ahead)[:, -1], -1)  # (n, K): the next index's distribution
            idx = torch.cat([idx, torch.multinomial(probs, 1, generator=generator)], 1)
        return idx


class CodeDistribution(Distribution):
    """p(z) as a Distribution over (T,) index codes (floats holding integers)."""

    arg_constraints: dict = {}
    support = constraints.real_vector

    def __init__(self, prior: CodePrior):
        self.prior = prior
        super().__init__(torch.Size(), torch.Size([prior.tokens]), validate_args=False)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.prior.log_prob(value)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        n = math.prod(sample_shape)
        return self.prior.sample(n).float().view(*sample_shape, self.prior.tokens)


class VQVAE(nn.Module, LatentModel):
    """See the module docstring. encoder: (B, C, H, W) -> (B, E, H_L, W_L); decoder: the quantised
    grid (B, E, H_L, W_L) -> the likelihood's parameters."""

    variational = True
    discrete_code = True

    def __init__(
        self,
        encoder: GridEncoder,
        decoder: nn.Module,
        shape: tuple[int, ...],
        likelihood: str,
        config: ModelConfig,
        *,
        sigma: float = 1.0,
        components: int = 5,
    ):
        super().__init__()
        self.encoder, self.decoder, self.config = encoder, decoder, config
        self.shape, self.grid = tuple(shape), encoder.grid
        self.latent_dim = self.grid[0] * self.grid[1]  # T: the code is one index per grid position
        self.likelihood, self.sigma = likelihood, sigma
        self.observation = Observation(likelihood, self.shape, sigma, components)
        self.codebook = Codebook(config.codebook_size, config.codebook_dim, config.codebook_decay)
        self.code_prior = CodePrior(config.codebook_size, self.latent_dim, config.prior_width, config.prior_layers)
        self.commitment = config.commitment

    def _quantise(self, x: torch.Tensor, learn: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, C, H, W) -> (indices (B, T), z_e (B, E, H_L, W_L), z_q (B, E, H_L, W_L) without the
        straight-through). `learn`: then take the codebook's moving-average step (a training forward)."""
        z_e = full_precision(self.encoder(x))
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])  # (B T, E), raster order
        idx = self.codebook.nearest(flat)
        z_q = self.codebook.vectors[idx].view(z_e.shape[0], *self.grid, -1).permute(0, 3, 1, 2)  # before the step
        if learn:
            self.codebook.update(flat.detach(), idx)
        return idx.view(-1, self.latent_dim), z_e, z_q  # (B, T); -1 keeps B symbolic for ONNX export

    def _px(self, z_q: torch.Tensor, lead: tuple[int, ...]) -> Distribution:
        params = full_precision(self.decoder(z_q))
        return self.observation(params.view(*lead, *params.shape[1:]))

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Distribution:
        return PointMass(self._quantise(x)[0].to(x.dtype))  # all mass on the index grid (B, T), in the input's dtype

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> Distribution:
        """z: (..., B, T) indices -> p(x|z) with batch shape (..., B)."""
        lead = z.shape[:-1]
        idx = z.reshape(-1, self.latent_dim).round().long().clamp(0, self.codebook.size - 1)
        z_q = self.codebook.vectors[idx].view(-1, *self.grid, self.codebook.dim).permute(0, 3, 1, 2)
        return self._px(z_q, lead)

    def prior(self) -> Distribution:
        return CodeDistribution(self.code_prior)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, n_samples: int = 1) -> ModelOutput:
        """q(z|x) is one code, so every one of n_samples draws is it: z (B, T) or (K, B, T)."""
        idx, z_e, z_q = self._quantise(x, learn=self.training)
        st = z_e + (z_q - z_e).detach()  # straight through: the decoder's gradient reaches the encoder
        commit = self.commitment * (z_e - z_q.detach()).pow(2).flatten(1).sum(1)  # (B,)
        z = idx.to(z_e.dtype)
        log_pz = self.code_prior.log_prob(idx)  # (B,): trains the prior; the indices carry no gradient
        px = self._px(st, (len(x),))
        if n_samples > 1:  # the same code K times
            z, log_pz = z.expand(n_samples, *z.shape), log_pz.expand(n_samples, -1)
            px = self._px(st.repeat(n_samples, 1, 1, 1), (n_samples, len(x)))
        return ModelOutput(
            px=px,
            z=z,
            qz=PointMass(idx.to(z_e.dtype)),
            prior=None,
            log_qz=torch.zeros_like(log_pz),
            log_pz=log_pz,
            penalties={"commitment": commit},
        )

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, y: torch.Tensor | int | None = None
    ) -> torch.Tensor:
        """n index grids drawn from the prior, decoded to the mean of p(x|z): (n, *shape)."""
        return self.decode(self.code_prior.sample(n, generator).float()).mean

    def init_from_data(self, x: torch.Tensor) -> None:
        """The codebook starts at encoder outputs of random training examples (no code starts dead)."""
        pick = torch.randperm(len(x))[: max(1, math.ceil(4 * self.codebook.size / self.latent_dim))]
        ref = self.codebook.vectors
        with torch.no_grad():
            z_e = full_precision(self.encoder(x[pick].to(ref.device, ref.dtype)))
            flat = z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])
            chosen = flat[torch.randperm(len(flat), device=flat.device)[: self.codebook.size]]
            self.codebook.vectors[: len(chosen)] = chosen
            self.codebook.ema_sum.copy_(self.codebook.vectors)

    def code_metrics(self, codes: torch.Tensor) -> dict[str, tuple[float, str, str]]:
        """From the index grids of N examples (N, T): how many codebook entries are used, and the
        perplexity exp(H) of the codes' frequencies (K if all were used equally)."""
        freq = torch.bincount(codes.round().long().flatten(), minlength=self.codebook.size).double()
        p = freq / freq.sum()
        entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
        return {
            "codebook_usage": (
                int((freq > 0).sum()),
                "count",
                f"codebook entries used over the examples, of {self.codebook.size}",
            ),
            "codebook_perplexity": (
                math.exp(entropy),
                "codes",
                "exp(entropy) of the codes' frequencies over the examples",
            ),
        }

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.config.name,
            "config": dataclasses.asdict(self.config),
            "shape": list(self.shape),
            "latent_dim": self.latent_dim,
            "likelihood": self.likelihood,
            "sigma": self.sigma,
            "variational": True,
            "components": self.observation.components,
            "num_classes": 0,
            "prior": "autoregressive",
            "prior_components": None,
        }


@dataclass(frozen=True)
class VQVAESettings:
    """The VQ-VAE's own ``[model]`` keys."""

    codebook_size: int = setting(
        512, positive=True, expect=(lambda v: v <= 65536, "at most 65,536 codes")
    )  # vqvae: K, the number of codebook vectors
    codebook_dim: int = setting(
        64, positive=True
    )  # vqvae: the size of each codebook vector (the encoder's output channels)
    commitment: float = setting(0.25, non_negative=True)  # vqvae: weight of the commitment penalty ||z_e - sg(z_q)||^2
    codebook_decay: float = setting(
        0.99, expect=(lambda v: 0 < v < 1, "a decay in (0, 1)")
    )  # vqvae: decay of the codebook's moving averages
    prior_width: int = setting(
        128, positive=True, expect=(lambda v: v % 4 == 0, "a width divisible by the prior's 4 attention heads")
    )  # vqvae: width of the prior's causal transformer over the code grid
    prior_layers: int = setting(
        2, positive=True, expect=(lambda v: v <= 64, "at most 64 blocks")
    )  # vqvae: blocks of that transformer


def build_vqvae(cfg: ModelConfig, shape: tuple[int, ...]) -> VQVAE:
    if len(shape) != 3:
        raise VaekitError(f"model.name = 'vqvae' needs image data (C, H, W); this data has shape {tuple(shape)}")
    if cfg.conditional:
        raise VaekitError("config key 'model.conditional': the VQ-VAE is not conditional; use model.name = 'vae'")
    pshape = Observation(cfg.likelihood, shape, cfg.sigma, cfg.mixture_components).param_shape()
    enc = GridEncoder(shape, cfg.channels, cfg.depth, cfg.codebook_dim, cfg.activation)
    dec = GridDecoder(cfg.codebook_dim, cfg.channels, cfg.depth, pshape, cfg.activation)
    return VQVAE(enc, dec, shape, cfg.likelihood, cfg, sigma=cfg.sigma, components=cfg.mixture_components)
