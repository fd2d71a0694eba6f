"""FactorVAE (Kim & Mnih 2018): a VAE whose total correlation is estimated by a discriminator.

The discriminator D (an MLP of widths `model.discriminator_hidden`, leaky ReLU 0.2, two logits)
learns to tell codes z ~ q(z) (the batch's drawn codes) from codes whose dimensions are shuffled
independently across the batch (draws from prod_d q(z_d)). At its optimum the logit difference is
the density ratio, so

    TC(z) = KL(q(z) || prod_d q(z_d)) ~ E_q[logit_joint(z) - logit_product(z)],

and the VAE minimises -ELBO + gamma * TC (`model.tc_gamma`). Both losses go through the one
backward pass of the training loop as the model's penalties (outside the bound):

- ``tc_penalty``: gamma * (logit_joint - logit_product) at each code, with D's weights detached, so
  only the encoder moves to lower it;
- ``discriminator``: D's cross-entropy on the detached codes (label 0) and the shuffled ones
  (label 1), averaged, so only D moves to lower it.

The paper trains D with its own Adam (betas 0.5, 0.9) on a second half-batch; here D shares the
loop's optimiser and the batch, so that the loop, checkpoints and exact resume stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.config import setting
from vaekit.models.autoencoder import VAE, ModelOutput, build_vae

if TYPE_CHECKING:
    from vaekit.config import ModelConfig


def shuffle_dimensions(z: torch.Tensor) -> torch.Tensor:
    """Each column of z (B, D) permuted independently across the batch (global RNG): draws from
    the product of the batch's marginals. Shape: (B, D) -> (B, D)."""
    order = torch.argsort(torch.rand(z.shape, device=z.device), dim=0)
    return torch.gather(z, 0, order)


class FactorVAE(VAE):
    """A VAE (any prior or posterior) with the total-correlation discriminator."""

    def __init__(
        self, *args, gamma: float = 35.0, discriminator_hidden: list[int] | tuple[int, ...] = (1000,) * 6, **kwargs
    ):
        super().__init__(*args, **kwargs)
        layers: list[nn.Module] = []
        width = self.latent_dim
        for h in discriminator_hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
            width = h
        self.discriminator = nn.Sequential(*layers, nn.Linear(width, 2))
        self.gamma = gamma

    def tc_logits(self, z: torch.Tensor) -> torch.Tensor:
        """logit_joint - logit_product of codes z (B, D) with D's weights held fixed: (B,), nats."""
        fixed = {name: p.detach() for name, p in self.discriminator.named_parameters()}
        logits = torch.func.functional_call(self.discriminator, fixed, (z,))
        return logits[:, 0] - logits[:, 1]

    def discriminator_loss(self, z: torch.Tensor) -> torch.Tensor:
        """D's cross-entropy, per example (B,) nats: the codes z (B, D) against their shuffled dimensions."""
        z = z.detach()
        joint = F.cross_entropy(
            self.discriminator(z), torch.zeros(len(z), dtype=torch.long, device=z.device), reduction="none"
        )
        product = F.cross_entropy(
            self.discriminator(shuffle_dimensions(z)),
            torch.ones(len(z), dtype=torch.long, device=z.device),
            reduction="none",
        )
        return 0.5 * (joint + product)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, n_samples: int = 1) -> ModelOutput:
        out = super().forward(x, y, n_samples)
        z = out.z if out.z.dim() == 2 else out.z[0]  # (B, D): the first code of each example
        out.penalties = {"tc_penalty": self.gamma * self.tc_logits(z), "discriminator": self.discriminator_loss(z)}
        return out


@dataclass(frozen=True)
class FactorVAESettings:
    """FactorVAE's own ``[model]`` keys."""

    tc_gamma: float = setting(
        35.0, non_negative=True
    )  # factorvae: weight of the discriminator's total-correlation estimate (Kim & Mnih's gamma)
    discriminator_hidden: list[int] = setting(
        factory=lambda: [1000] * 6, sizes=True, layers="layers"
    )  # factorvae: the discriminator's hidden widths


def build_factorvae(cfg: ModelConfig, shape: tuple[int, ...]) -> FactorVAE:
    return build_vae(cfg, shape, FactorVAE, gamma=cfg.tc_gamma, discriminator_hidden=cfg.discriminator_hidden)
