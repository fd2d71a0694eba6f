"""`TableModel`: fit a VAE to your own table, then synthesise, impute and score rows.

    from vaekit import TableModel
    m = TableModel(latent_dim=8).fit("penguins.csv")        # or a pandas DataFrame
    synth = m.sample(1000, seed=0)                          # a Table with the training columns
    filled = m.impute("penguins.csv")                       # missing cells filled
    scores = m.score("penguins.csv")                        # log p(row) in nats, with its error
    m.save("penguins-model"); m = TableModel.load("penguins-model")

Tables come back as `Table` (`.to_csv(path)`, `.to_frame()`, `.names`, `.cells`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaekit.errors import VaekitError
from vaekit.tables.columns import Schema, infer_schema
from vaekit.tables.csvfiles import RawTable, as_raw, resolve, to_frame, write_table
from vaekit.tables.fit import History, TableSettings, make_settings, split_rows, train
from vaekit.tables.inference import Scores, conditional_codes, impute, score
from vaekit.tables.model import TabularVAE

MODEL_FORMAT = "vaekit-table-model"


def penguins_path() -> Path:
    """The Palmer penguins table shipped with vaekit (344 rows, 8 columns, 19 missing cells; CC0,
    Horst, Hill & Gorman 2020): a CSV path. Settings and commands also take its name, 'penguins'."""
    return resolve("penguins")


class Table(RawTable):
    """Named columns of text cells (None where missing), as read or as written back."""

    def to_csv(self, path: str | Path, separator: str | None = None) -> Path:
        return write_table(self, path, separator)

    def to_frame(self):
        return to_frame(self)


def table_digest(raw: RawTable) -> str:
    """SHA-256 of a table's names and cells (the same for a CSV and the DataFrame read from it only
    when their cells read the same)."""
    import hashlib

    return hashlib.sha256(json.dumps([raw.names, raw.cells]).encode()).hexdigest()


class _PriorDraw:
    """The model's own prior with the samplers' `draw` signature."""

    def __init__(self, model: TabularVAE):
        self.model = model

    def draw(self, n: int, encode: Any, generator: torch.Generator, ref: torch.Tensor) -> torch.Tensor:
        return self.model.prior().sample((n,))


def _parts(raw: RawTable) -> tuple[list[str], list[list[str | None]], str]:
    return raw.names, raw.cells, raw.source


class TableModel:
    """A tabular VAE with its schema. Keywords are `TableSettings` (latent_dim, hidden, components,
    objective, samples, max_epochs, patience, seed, columns, missing, ...)."""

    def __init__(self, settings: TableSettings | dict[str, Any] | None = None, **kw: Any):
        if isinstance(settings, TableSettings):
            settings = dataclasses.asdict(settings)
        self.settings = make_settings(settings, **kw)
        self.schema: Schema | None = None
        self.model: TabularVAE | None = None
        self.history: History | None = None
        self.train_rows: Table | None = None  # after fit: the rows trained on, and those held out
        self.test_rows: Table | None = None
        self._samplers: dict[str, Any] = {}
        self.data_digest: str | None = None

    # ---- training ------------------------------------------------------------------------------

    def read(self, table: Any) -> RawTable:
        return as_raw(table, self.settings.separator, tuple(self.settings.missing))

    def fit(self, table: Any = None, progress: bool = False) -> TableModel:
        """Infer the schema from `table` (a CSV/TSV path or a DataFrame; default: the `data`
        setting) and train on its rows but a seeded `test_fraction`, which are kept as
        `test_rows` for evaluation. The schema (kinds, labels, units) is read from all rows."""
        s = self.settings
        if table is None and not s.data:
            raise VaekitError("fit() needs a table: pass a CSV/TSV path or a DataFrame, or set data = 'table.csv'")
        raw = self.read(s.data if table is None else table)
        self.schema = infer_schema(raw, s.columns, s.max_categories)
        self._split(raw)
        x = torch.as_tensor(self.schema.encode(self.train_rows), dtype=torch.float32)
        torch.manual_seed(s.seed)
        self.model = self._build()
        self.history = train(self.model, x, s, progress)
        return self

    def _split(self, raw: RawTable) -> None:
        """train_rows and test_rows: the seeded test_fraction of `raw` held out; `data_digest`
        identifies the table (SHA-256 of its names and cells), so a run can find it again."""
        kept, held = split_rows(raw.n_rows, self.settings.test_fraction, self.settings.seed, "test")
        self.test_rows, self.train_rows = Table(*_parts(raw.take(held))), Table(*_parts(raw.take(kept)))
        self.data_digest = table_digest(raw)

    def load_rows(self) -> None:
        """After `load`: read the `data` table again and split it as in training, refusing a table
        that changed since (its digest differs)."""
        if self.train_rows is not None:
            return
        if not self.settings.data:
            raise VaekitError("this model was trained on a DataFrame: its training rows are not on disk")
        raw = self.read(self.settings.data)
        if self.data_digest is None:
            raise VaekitError("this model records no digest of its table, so its held-out rows cannot be found again")
        if table_digest(raw) != self.data_digest:
            raise VaekitError(
                f"table '{self.settings.data}' changed since the model was trained on it (its SHA-256 differs); "
                "the held-out rows would not be the same"
            )
        self._split(raw)

    def _build(self) -> TabularVAE:
        s = self.settings
        return TabularVAE(self.schema, s.latent_dim, tuple(s.hidden), s.components, s.count_family)

    def _trained(self) -> TabularVAE:
        if self.model is None:
            raise VaekitError("this TableModel is not trained: call fit(table) or TableModel.load(folder)")
        return self.model

    def encode_rows(self, table: Any) -> torch.Tensor:
        """A table's rows in model units (N, F), NaN where missing, against the training schema."""
        self._trained()
        return torch.as_tensor(self.schema.encode(self.read(table)), dtype=torch.float32)

    def _table(self, units: np.ndarray) -> Table:
        return Table(self.schema.names, self.schema.decode(units), "the model")

    # ---- what the model answers ----------------------------------------------------------------

    def sample(
        self,
        n: int,
        seed: int = 0,
        where: dict[str, str] | None = None,
        missing: bool = True,
        sampler: str = "prior",
    ) -> Table:
        """n synthetic rows. Codes come from the model's prior, or from an ex-post `sampler`
        ('gaussian', 'gmm:K', 'two-stage': a density fitted to the training rows' codes, which
        leaves out the prior's empty regions); with `where`, that pool of codes is weighted by
        p(fixed cells | z) and resampled (importance resampling). Every label and mixture component
        is drawn. Then each column's cells are blanked at its training missing rate (missing=False: none)."""
        model = self._trained()
        codes = self.code_sampler(sampler)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            draw = lambda k: codes.draw(k, model.encode, torch.Generator().manual_seed(seed), self._ref())
            if where:
                row = self._fixed_row(where)
                z, self.last_ess = conditional_codes(model, row, n, draw)
            else:
                z = draw(n)
            with torch.no_grad():
                units = model.decode(z).sample().double().numpy()
            fixed = [self.schema.names.index(k) for k in where or {}]
            for j in fixed:
                units[:, j] = row[j].item()
            if missing:
                rates = np.array([c.missing_rate for c in self.schema.columns])
                blank = torch.rand(units.shape, dtype=torch.float64).numpy() < rates
                blank[:, fixed] = False
                units[blank] = np.nan
        return self._table(units)

    def _ref(self) -> torch.Tensor:
        return torch.zeros((), device=self.model.device)

    def code_sampler(self, spec: str = "prior"):
        """Where synthetic codes come from: the prior, or a density fitted to the training rows'
        codes (`models.samplers`; fitted once per model and kept)."""
        from vaekit.models.samplers import fit_sampler, parse_sampler

        model = self._trained()
        if parse_sampler(spec)[0] == "prior":
            return _PriorDraw(model)
        if spec not in self._samplers:
            self.load_rows()
            self._samplers[spec] = fit_sampler(model, self.encode_rows(self.train_rows), spec, self.settings.seed)
        return self._samplers[spec]

    def _fixed_row(self, where: dict[str, str]) -> torch.Tensor:
        """The cells `where` fixes as one row in model units (F,), NaN elsewhere."""
        unknown = sorted(set(where) - set(self.schema.names))
        if unknown:
            raise VaekitError(f"where: no column {unknown[0]!r} is modelled; the columns are {self.schema.names}")
        one = Table(self.schema.names, [[where.get(n)] for n in self.schema.names], "where")
        return torch.as_tensor(self.schema.encode(one)[0], dtype=torch.float32)

    def impute(self, table: Any, multiple: int = 0, k: int = 1000, seed: int = 0) -> Table | list[Table]:
        """The table with its missing cells filled (other columns kept as they were): one table by
        the importance-weighted mean or mode, or `multiple` tables drawn by sampling-importance-resampling."""
        model, raw = self._trained(), self.read(table)
        x = torch.as_tensor(self.schema.encode(raw), dtype=torch.float32)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            filled = impute(model, x, k, multiple)
        fills = [filled] if not multiple else list(filled)
        return [self._merge(raw, f) for f in fills] if multiple else self._merge(raw, fills[0])

    def _merge(self, raw: RawTable, units: np.ndarray) -> Table:
        cells = [list(c) for c in raw.cells]
        decoded = self.schema.decode(units)
        for j, name in enumerate(self.schema.names):
            col = cells[raw.names.index(name)]
            for i, v in enumerate(col):
                if v is None:
                    col[i] = decoded[j][i]
        return Table(list(raw.names), cells, raw.source)

    def score(self, table: Any, k: int = 1000, seed: int = 0) -> Scores:
        """Each row's importance-sampled log p(observed cells) in nats, its standard error and each
        column's share (`inference.Scores`)."""
        x = self.encode_rows(table)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return score(self.model, x, k)

    def evaluate(
        self,
        k: int = 1000,
        synthesis: bool = False,
        n: int | None = None,
        sampler: str = "prior",
        target: str | None = None,
        seed: int = 0,
    ) -> dict[str, Any]:
        """On the held-out rows: the mean importance-sampled log p(observed cells) per row, in nats,
        with its standard error over rows and each column's mean share; with `synthesis`, the
        synthetic-table figures of `metrics.synthesis` for `n` synthetic rows (default: as many as
        held out), each beside its floor (the held-out rows in their place)."""
        self._trained()
        self.load_rows()
        test = self.test_rows
        if test.n_rows == 0:
            raise VaekitError("this model held out no rows (test_fraction = 0): there is nothing to evaluate on")
        s = self.score(test, k, seed)
        out: dict[str, Any] = {
            "rows": test.n_rows,
            "k": k,
            "log_px": {"value": float(s.log_px.mean()), "unit": "nats", "reduction": "mean per row"},
            "log_px_se_rows": float(s.log_px.std(ddof=1) / math.sqrt(len(s.log_px))) if len(s.log_px) > 1 else None,
            "log_px_se_sampling": float(np.sqrt(np.mean(s.se**2) / len(s.se))),
            "columns": {name: float(v) for name, v in zip(self.schema.names, s.shares.mean(0))},
        }
        if synthesis:
            from vaekit.metrics.synthesis import synthesis_report

            synth = self.sample(n or test.n_rows, seed=seed, sampler=sampler)
            out["synthesis"] = synthesis_report(self.train_rows, test, synth, self.schema, target, seed)
            out["synthesis"]["sampler"] = sampler
        return out

    # ---- files ---------------------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """A folder with model.json (format, settings, history), schema.json and model.safetensors."""
        from vaekit import __version__
        from vaekit.training.checkpoints import atomic_dir, save_tensors

        model = self._trained()
        meta = {
            "format": MODEL_FORMAT,
            "version": 1,
            "vaekit": __version__,
            "settings": dataclasses.asdict(self.settings),
            "history": dataclasses.asdict(self.history) if self.history else None,
            "data_sha256": self.data_digest,
        }
        with atomic_dir(folder) as tmp:
            (tmp / "model.json").write_text(json.dumps(meta, indent=1) + "\n")
            (tmp / "schema.json").write_text(json.dumps(self.schema.to_json(), indent=1) + "\n")
            save_tensors(model.state_dict(), tmp / "model.safetensors")
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> TableModel:
        from vaekit.training.checkpoints import load_tensors, read_json

        folder = Path(folder)
        if not (folder / "model.json").is_file():
            raise VaekitError(f"'{folder}' is not a saved table model (no model.json)")
        meta = read_json(folder / "model.json")
        if meta.get("format") != MODEL_FORMAT or meta.get("version") != 1:
            raise VaekitError(f"'{folder / 'model.json'}' is not a vaekit table model (format {MODEL_FORMAT!r})")
        self = cls(meta.get("settings") or {})
        self.schema = Schema.load(folder / "schema.json")
        self.model = self._build()
        try:
            self.model.load_state_dict(load_tensors(folder / "model.safetensors"))
        except RuntimeError as e:
            raise VaekitError(f"'{folder}': the weights do not fit the schema and settings ({str(e)[:200]})") from None
        self.model.eval()
        if meta.get("history"):
            self.history = History(**meta["history"])
        self.data_digest = meta.get("data_sha256")
        return self
