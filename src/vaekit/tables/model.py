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
from torch import nn

from vaekit.models.autoencoder import VAE
from vaekit.models.nets import mlp
from vaekit.tables.columns import Schema
from vaekit.tables.families import TableObservation


class TableInput(nn.Module):
    """Rows (B, F) in model units, NaN where missing -> the encoder's input (B, E), no weights:
    the numbers (standardised; a count as standardised log(1 + x); a boolean as -1/+1), then every
    label column one-hot, then the F missing-cell indicators; a missing cell's own inputs are 0.
    Built with one gather per kind and one scatter for the one-hot labels, not a loop over columns."""

    def __init__(self, schema: Schema):
        super().__init__()
        cols = schema.columns
        pick = lambda kinds: [j for j, c in enumerate(cols) if c.kind in kinds]
        numeric, count, boolean = pick(("continuous", "positive", "datetime")), pick(("count",)), pick(("boolean",))
        labelled = pick(("categorical", "ordinal"))
        sizes = [cols[j].n_labels for j in labelled]
        buffers = {
            "numeric": numeric,
            "count": count,
            "boolean": boolean,
            "labelled": labelled,
            "sizes": sizes,
            "offsets": [sum(sizes[:i]) for i in range(len(sizes))],
        }
        for name, values in buffers.items():
            self.register_buffer(name, torch.tensor(values, dtype=torch.long), persistent=False)
        self.register_buffer("count_loc", torch.tensor([cols[j].loc for j in count]), persistent=False)
        self.register_buffer("count_scale", torch.tensor([cols[j].scale for j in count]), persistent=False)
        self.n_labels = sum(sizes)
        self.width = len(numeric) + len(count) + len(boolean) + self.n_labels + len(cols)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seen = ~torch.isnan(x)  # (B, F)
        v = torch.where(seen, x, torch.zeros_like(x))
        keep = seen.to(x.dtype)
        counts = (torch.log1p(v[:, self.count].clamp_min(0)) - self.count_loc) / self.count_scale
        labels = (v[:, self.labelled].long().clamp_min(0).minimum(self.sizes - 1)) + self.offsets  # (B, n)
        onehot = torch.zeros(len(x), self.n_labels, dtype=x.dtype, device=x.device)
        onehot.scatter_(1, labels, keep[:, self.labelled])
        parts = [
            v[:, self.numeric] * keep[:, self.numeric],
            counts * keep[:, self.count],
            (2 * v[:, self.boolean] - 1) * keep[:, self.boolean],
            onehot,
            1 - keep,
        ]
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
