"""The tabular VAE: the library's VAE with a table's encoder input and a per-column p(x|z).

Rows are (B, F) in model units with NaN where a cell is missing (`schema.Schema.encode`). The
encoder sees every cell and the mask: numbers standardised (a count as log(1 + x)), labels one-hot,
each column followed by a 1 where its cell is missing (the cell's own inputs are then 0). The
decoder emits each column's parameters (`families.TableObservation`). Everything else (the ELBO,
the importance-weighted bound, importance-sampled log p(x), the prior, the ex-post samplers) is
the image VAE's, because p(x|z) is a distribution whose log_prob counts the observed cells.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vaekit.models.autoencoder import VAE
from vaekit.models.nets import mlp
from vaekit.tables.columns import LABELLED, Schema
from vaekit.tables.families import TableObservation


class TableInput(nn.Module):
    """Rows (B, F) in model units, NaN where missing -> the encoder's input (B, E), no weights."""

    def __init__(self, schema: Schema):
        super().__init__()
        self.columns = schema.columns
        self.width = sum((c.n_labels if c.kind in LABELLED and c.kind != "boolean" else 1) + 1 for c in self.columns)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seen = ~torch.isnan(x)
        v = torch.where(seen, x, torch.zeros_like(x))
        parts = []
        for j, col in enumerate(self.columns):
            missing = (~seen[:, j]).to(x.dtype)[:, None]
            if col.kind == "boolean":
                part = (2 * v[:, j] - 1)[:, None]
            elif col.kind in LABELLED:
                part = F.one_hot(v[:, j].long().clamp(0, col.n_labels - 1), col.n_labels).to(x.dtype)
            elif col.kind == "count":
                part = ((torch.log1p(v[:, j].clamp_min(0)) - col.loc) / col.scale)[:, None]
            else:
                part = v[:, j, None]
            parts += [part * (1 - missing), missing]
        return torch.cat(parts, 1)


class TabularVAE(VAE):
    """A VAE over table rows: `encode(x)` gives q(z|x) from the observed cells and the mask,
    `decode(z)` the `TableDistribution` p(row|z). latent_dim D; hidden: the MLP widths (the
    decoder's mirrored)."""

    def __init__(
        self,
        schema: Schema,
        latent_dim: int = 8,
        hidden: tuple[int, ...] = (128, 128),
        components: int = 1,
        count_family: str = "negative_binomial",
        prior: str = "standard_normal",
    ):
        table_input = TableInput(schema)
        observation = TableObservation(schema, components, count_family)
        encoder = nn.Sequential(table_input, mlp([table_input.width, *hidden, 2 * latent_dim]))
        decoder = mlp([latent_dim, *reversed(hidden), observation.n_params])
        super().__init__(encoder, decoder, (len(schema.columns),), latent_dim, "gaussian", prior=prior)
        self.observation, self.likelihood, self.schema = observation, "table", schema
