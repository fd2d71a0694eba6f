"""A hierarchical VAE with top-down inference (Sønderby et al. 2016; NVAE, Vahdat & Kautz 2020;
VDVAE, Child 2021), on the model contract of `models.base`.

L stochastic layers z_1 (next to x) ... z_L (top), of sizes ``model.latent_dims``; the code is their
concatenation z = [z_1, ..., z_L], (B, D) with D = sum of the sizes. The generative model runs top
down through a deterministic state s (B, H), H = ``model.hidden[-1]``:

    s <- s_top (learned);  for l = L..1:  z_l ~ p(z_l | s),  s <- s + cell_l([s, z_l]);  x ~ p(x | s)

with p(z_L) = N(0, I) and p(z_l | s) = N(mu_l(s), diag(exp(v_l(s)))) below it. Each cell is a
residual MLP block. The encoder is bidirectional: a bottom-up pass gives features d_1 = enc(x),
d_{l+1} = d_l + up_l(d_l), (B, H) each; the posterior then follows the same top-down pass, with

    q(z_l | x, z_>l) = N(mu_l(s) + dmu_l([s, d_l]), diag(exp(v_l(s) + dv_l([s, d_l])))),

NVAE's residual parameterisation relative to the prior (for z_L, relative to N(0, I)). The nets
facing x are ``model.arch``'s (mlp, conv, resnet), with the state in place of the code.

The objective's KL is the sum over layers of KL(q(z_l | x, z_>l) || p(z_l | z_>l)), each in closed
form at the drawn z_>l and reported separately (``kl_z1`` ... ``kl_zL``, nats). Both q(z|x) and p(z)
are distributions over the concatenated code, so the importance-sampled log p(x) scores every
layer: log w = log p(x | z) + log p(z) - log q(z | x), with z drawn from q as a whole.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.distributions import Distribution, constraints, kl_divergence

from vaekit.config import setting
from vaekit.errors import VaekitError
from vaekit.models.autoencoder import ModelOutput, full_precision
from vaekit.models.base import LatentModel
from vaekit.models.likelihoods import JointDraw, Observation, diagonal_normal
from vaekit.models.nets import ACTIVATIONS
from vaekit.registry import NETS

if TYPE_CHECKING:
    from vaekit.config import ModelConfig


@dataclass
class TopDown:
    """One top-down pass over lead shape (..., B): z (..., B, D); log q(z|x) and log p(z) (..., B);
    kl: each layer's KL given the layers above, bottom first, (..., B) each; logvars: q's (or p's)
    log-variances (..., B, D); s: the final state (..., B, H)."""

    z: torch.Tensor
    log_q: torch.Tensor | None
    log_p: torch.Tensor
    kl: list[torch.Tensor]
    logvars: torch.Tensor
    s: torch.Tensor


def _cell(a: int, h: int, activation: str) -> nn.Sequential:
    """(.., a) -> (.., h): Linear, activation, Linear (a residual update, s + cell([s, z]))."""
    return nn.Sequential(nn.Linear(a, h), ACTIVATIONS[activation](), nn.Linear(h, h))


class HierarchicalVAE(nn.Module, LatentModel):
    """Top-down hierarchical VAE; see the module docstring. encoder: (B, *shape) -> (B, H); decoder:
    (B, H) -> the likelihood's parameters."""

    variational = True

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        shape: tuple[int, ...],
        latent_dims: list[int],
        width: int,
        likelihood: str,
        sigma: float = 1.0,
        config: ModelConfig | None = None,
        *,
        components: int = 5,
        activation: str = "relu",
    ):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.shape, self.latent_dims, self.width = tuple(shape), list(latent_dims), width
        self.latent_dim = sum(latent_dims)
        self.likelihood, self.sigma, self.config = likelihood, sigma, config
        self.observation = Observation(likelihood, self.shape, sigma, components)
        n, act = len(latent_dims), ACTIVATIONS[activation]
        self.act = act()
        self.up = nn.ModuleList([_cell(width, width, activation) for _ in range(n - 1)])  # d_l -> d_{l+1}
        self.s_top = nn.Parameter(torch.zeros(width))
        self.prior_heads = nn.ModuleList(
            [nn.Linear(width, 2 * d) for d in latent_dims[:-1]]
        )  # s -> (mu, v) of z_l, l < L
        self.post_heads = nn.ModuleList([nn.Linear(2 * width, 2 * d) for d in latent_dims])  # [s, d_l] -> (dmu, dv)
        self.cells = nn.ModuleList([_cell(width + d, width, activation) for d in latent_dims])
        for head in [*self.prior_heads, *self.post_heads]:  # q starts at p, p at N(0, I)
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    @property
    def kl_parts(self) -> tuple[str, ...]:
        return tuple(f"kl_z{l + 1}" for l in range(len(self.latent_dims)))

    # -- the two passes ------------------------------------------------------------------------------
    def bottom_up(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, *shape) -> [d_1, ..., d_L], each (B, H)."""
        d = [self.act(full_precision(self.encoder(x)))]
        for up in self.up:
            d.append(d[-1] + full_precision(up(d[-1])))
        return d

    def top_down(
        self,
        lead: tuple[int, ...],
        ds: list[torch.Tensor] | None = None,
        z: torch.Tensor | None = None,
        use_mean: bool = False,
        generator: torch.Generator | None = None,
    ) -> TopDown:
        """One pass from z_L down to the state p(x|z) reads. `lead`: (..., B) or (n,). With `ds`
        (the bottom-up features) the codes come from q(z|x), else from p(z); `z` (..., B, D) gives
        them instead of drawing, `use_mean` takes each layer's conditional mean."""
        ref = self.s_top
        s = self.s_top.expand(*lead, self.width)  # (..., B, H)
        given = z.split(self.latent_dims, -1) if z is not None else None
        zs, kls, logvars = (
            [None] * len(self.latent_dims),
            [None] * len(self.latent_dims),
            [None] * len(self.latent_dims),
        )
        log_q = torch.zeros(lead, device=ref.device, dtype=ref.dtype) if ds is not None else None
        log_p = torch.zeros(lead, device=ref.device, dtype=ref.dtype)
        for l in reversed(range(len(self.latent_dims))):
            if l == len(self.latent_dims) - 1:  # the top: N(0, I)
                mu = torch.zeros(*lead, self.latent_dims[l], device=ref.device, dtype=ref.dtype)
                v = torch.zeros_like(mu)
            else:
                mu, v = full_precision(self.prior_heads[l](s)).chunk(2, -1)  # (..., B, d_l) each
            p = diagonal_normal(mu, v)
            q = None
            if ds is not None:
                dmu, dv = full_precision(self.post_heads[l](torch.cat([s, ds[l].expand_as(s)], -1))).chunk(2, -1)
                q = diagonal_normal(mu + dmu, v + dv)
            draw_from = q if q is not None else p
            if given is not None:
                zl = given[l]
            elif use_mean:
                zl = draw_from.mean
            else:
                base = draw_from.base_dist
                eps = torch.randn(base.loc.shape, generator=generator, device=ref.device, dtype=ref.dtype)
                zl = base.loc + base.scale * eps  # reparameterised
            log_p = log_p + p.log_prob(zl)
            if q is not None:
                log_q = log_q + q.log_prob(zl)
                kls[l] = kl_divergence(q, p)
            logvars[l] = 2 * draw_from.base_dist.scale.log()
            zs[l] = zl
            s = s + full_precision(self.cells[l](torch.cat([s, zl], -1)))
        return TopDown(torch.cat(zs, -1), log_q, log_p, kls, torch.cat(logvars, -1), s)

    def _px(self, s: torch.Tensor) -> Distribution:
        """The state (..., B, H) -> p(x|z) with batch shape (..., B)."""
        lead = s.shape[:-1]
        params = full_precision(self.decoder(s.reshape(-1, self.width)))
        return self.observation(params.view(*lead, *params.shape[1:]))

    # -- the contract ----------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Distribution:
        return HierarchicalPosterior(self, self.bottom_up(x))

    def embed(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.top_down(tuple(x.shape[:1]), self.bottom_up(x), use_mean=True).z  # (B, D)

    def encoder_log_variance(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.top_down(
            tuple(x.shape[:1]), self.bottom_up(x), use_mean=True
        ).logvars  # (B, D), along the mean path

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> Distribution:
        """z: (..., B, D) -> p(x|z) with batch shape (..., B)."""
        s = self.s_top.expand(*z.shape[:-1], self.width)
        for l, zl in reversed(list(enumerate(z.split(self.latent_dims, -1)))):
            s = s + full_precision(self.cells[l](torch.cat([s, zl], -1)))
        return self._px(s)

    def prior(self) -> Distribution:
        return HierarchicalPrior(self)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, n_samples: int = 1) -> ModelOutput:
        """One code per example (z: (B, D)) or n_samples each ((K, B, D)), drawn top-down from q."""
        ds = self.bottom_up(x)
        lead = (len(x),) if n_samples == 1 else (n_samples, len(x))
        td = self.top_down(lead, ds)
        return ModelOutput(
            px=self._px(td.s),
            z=td.z,
            qz=HierarchicalPosterior(self, ds),
            prior=None,
            log_qz=td.log_q,
            log_pz=td.log_p,
            kl_parts=dict(zip(self.kl_parts, td.kl)),
        )

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, y: torch.Tensor | int | None = None
    ) -> torch.Tensor:
        """n codes drawn top-down from p(z), decoded to the mean of p(x|z): (n, *shape)."""
        return self._px(self.top_down((n,), generator=generator).s).mean

    def describe(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "model": cfg.name if cfg else "custom",
            "config": dataclasses.asdict(cfg) if cfg else None,
            "shape": list(self.shape),
            "latent_dim": self.latent_dim,
            "likelihood": self.likelihood,
            "sigma": self.sigma,
            "variational": True,
            "components": self.observation.components,
            "num_classes": 0,
            "prior": "hierarchical",
            "prior_components": None,
        }


class _TopDownDistribution(Distribution):
    """Shared by q(z|x) and p(z) over the concatenated code: event (D,)."""

    arg_constraints: dict = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, model: HierarchicalVAE, ds: list[torch.Tensor] | None, batch: tuple[int, ...]):
        self.model, self.ds = model, ds
        super().__init__(torch.Size(batch), torch.Size([model.latent_dim]), validate_args=False)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        return self.model.top_down((*sample_shape, *self.batch_shape), self.ds).z

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (...,): one top-down pass with the given codes, every layer scored."""
        td = self.model.top_down(value.shape[:-1], self.ds, z=value)
        return td.log_q if self.ds is not None else td.log_p


class HierarchicalPosterior(_TopDownDistribution, JointDraw):
    """q(z|x) = q(z_L | x) prod_l q(z_l | x, z_>l): batch (B,), event (D,)."""

    def __init__(self, model: HierarchicalVAE, ds: list[torch.Tensor]):
        super().__init__(model, ds, (len(ds[0]),))

    def rsample_and_log_prob(self, sample_shape: torch.Size = torch.Size()) -> tuple[torch.Tensor, torch.Tensor]:
        td = self.model.top_down((*sample_shape, *self.batch_shape), self.ds)
        return td.z, td.log_q

    @property
    def point(self) -> torch.Tensor:
        return self.model.top_down(tuple(self.batch_shape), self.ds, use_mean=True).z


class HierarchicalPrior(_TopDownDistribution):
    """p(z) = N(z_L; 0, I) prod_l p(z_l | z_>l): batch (), event (D,)."""

    def __init__(self, model: HierarchicalVAE):
        super().__init__(model, None, ())


@dataclass(frozen=True)
class HVAESettings:
    """The hierarchical VAE's own ``[model]`` key."""

    latent_dims: list[int] | None = setting(
        None, sizes=True, layers="stochastic layers", expect=(lambda v: 1 <= len(v) <= 16, "1 to 16 layer sizes")
    )  # hvae: each stochastic layer's code size, bottom (next to x) to top; None: two layers of latent_dim


def build_hvae(cfg: ModelConfig, shape: tuple[int, ...]) -> HierarchicalVAE:
    if cfg.conditional:
        raise VaekitError(
            "config key 'model.conditional': the hierarchical VAE ('hvae') is not conditional; use model.name = 'vae'"
        )
    if cfg.prior != "standard_normal" or cfg.posterior != "diagonal":
        key = "prior" if cfg.prior != "standard_normal" else "posterior"
        raise VaekitError(
            f"config key 'model.{key}': the hierarchical VAE has its own (top-down) {key}; leave it unset"
        )
    dims = cfg.latent_dims or [cfg.latent_dim, cfg.latent_dim]
    width = cfg.hidden[-1] if cfg.hidden else cfg.latent_dim
    pshape = Observation(cfg.likelihood, shape, cfg.sigma, cfg.mixture_components).param_shape()
    nets_cfg = dataclasses.replace(cfg, latent_dim=width, hidden=cfg.hidden[:-1])  # the state in place of the code
    enc, dec = NETS.get(cfg.arch)(nets_cfg, shape, width, 0, pshape)
    return HierarchicalVAE(
        enc,
        dec,
        shape,
        dims,
        width,
        cfg.likelihood,
        cfg.sigma,
        cfg,
        components=cfg.mixture_components,
        activation=cfg.activation,
    )
