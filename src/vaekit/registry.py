"""Named parts: models, nets, likelihoods, priors, objectives, datasets and data formats, each found
by its config name.

A registry maps a name to the object that builds or computes it. The built-in entries are given
here as ``"module:attribute"`` strings and imported only when used, so the config can check a name
(and the docs list the names) without importing torch. Adding a part is one new file plus one
line in the table below; your own code can also add one at run time::

    from vaekit.registry import MODELS
    MODELS.register("my_vae", my_builder, defaults={"latent_dim": 16, "hidden": [256], "likelihood": "bernoulli"},
                    settings=MyVAESettings)

An unknown name is an error that lists the known ones.

What each registry's objects are:

- ``MODELS``: ``build(cfg: ModelConfig, shape) -> LatentModel``; ``defaults``: the model's
  ``latent_dim``, ``hidden`` and ``likelihood`` where the config leaves them unset; ``settings``:
  the model's own ``[model]`` keys, a frozen dataclass in its module whose fields are declared with
  `config.setting` (their defaults, ranges and one-line comments), with an optional
  ``check(cfg)`` for rules between its keys and the shared ones.
- ``NETS``: ``build(cfg, shape, out_dim, cond_dim, param_shape) -> (encoder, decoder)``.
- ``LIKELIHOODS``: a `likelihoods.Family` (parameters per dimension, how to build p(x|z), whether
  it is a mass function).
- ``PRIORS``: ``build(latent_dim, shape, components) -> nn.Module`` whose forward gives p(z).
- ``POSTERIORS``: ``build(latent_dim, steps, hidden) -> nn.Module`` whose forward turns the
  encoder's (B, params_per_dim * D) output into q(z|x).
- ``DATASETS`` and ``FORMATS``: a `data.sources.DataSource` (``read``, and optionally
  ``prepare``, ``describe``, ``fetch``; formats ``claims(path)``).
- ``OBJECTIVES``: ``terms(out, x, beta, free_bits, cfg=None, at=None) -> {name: (B,) nats}`` with a ``"loss"``
  (cfg: the TrainConfig; at: `objectives.Progress`, where training is).
"""

from __future__ import annotations

import copy
import importlib
from typing import Any

from vaekit.errors import VaekitError


class Registry:
    """Names -> objects (or lazily imported ``"module:attribute"`` paths), in registration order."""

    def __init__(self, kind: str, entries: dict[str, str | tuple[Any, ...]]):
        self.kind = kind
        self._entries: dict[str, Any] = {}
        self._defaults: dict[str, dict[str, Any]] = {}
        self._settings: dict[str, Any] = {}
        self.version = 0  # counts registrations, so that what is assembled from the entries can notice
        for name, entry in entries.items():
            path, defaults, settings = (*entry, None)[:3] if isinstance(entry, tuple) else (entry, {}, None)
            self.register(name, path, defaults=defaults, settings=settings)

    def register(
        self,
        name: str,
        obj: Any,
        *,
        defaults: dict[str, Any] | None = None,
        settings: Any = None,
        replace: bool = False,
    ) -> Any:
        """Add `obj` under `name` (refused if the name is taken, unless `replace`). Returns `obj`.
        `settings`: the entry's own config keys, a frozen dataclass (or its ``"module:attribute"``)
        whose fields are declared with `config.setting` (models: they join ``[model]``)."""
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._entries[name] = obj
        self._defaults[name] = dict(defaults or {})
        self._settings[name] = settings
        self.version += 1
        return obj

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __iter__(self):
        return iter(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def check(self, name: str, key: str | None = None) -> str:
        """`name` if it is registered, else a `VaekitError` naming the config key and the known names."""
        if name not in self._entries:
            if key:
                raise VaekitError(
                    f"config key '{key}': got {name!r}, expected one of {', '.join(map(repr, self._entries))}"
                )
            raise VaekitError(f"unknown {self.kind} '{name}'; allowed: {', '.join(self._entries)}")
        return name

    def get(self, name: str, default: Any = ...) -> Any:
        """The object registered as `name` (imported on first use); `default` (if given) when unknown,
        as dict.get."""
        if default is not ... and name not in self._entries:
            return default
        obj = self._entries[self.check(name)]
        if isinstance(obj, str):
            module, attr = obj.split(":")
            obj = self._entries[name] = getattr(importlib.import_module(module), attr)
        return obj

    # Mapping access, so that tests (and monkeypatch.setitem) can swap an entry and put it back.
    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __setitem__(self, name: str, obj: Any) -> None:
        self.register(name, obj, defaults=self._defaults.get(name), settings=self._settings.get(name), replace=True)

    def __delitem__(self, name: str) -> None:
        del self._entries[self.check(name)]
        del self._defaults[name]
        del self._settings[name]
        self.version += 1

    def settings(self, name: str) -> type | None:
        """The dataclass of the entry's own config keys (imported on first use), or None."""
        cls = self._settings[self.check(name)]
        if isinstance(cls, str):
            module, attr = cls.split(":")
            cls = self._settings[name] = getattr(importlib.import_module(module), attr)
        return cls

    def settings_classes(self) -> list[type]:
        """Every entry's settings dataclass, once each, in registration order."""
        out: list[type] = []
        for name in self._entries:
            cls = self.settings(name)
            if cls is not None and cls not in out:
                out.append(cls)
        return out

    def defaults(self, name: str) -> dict[str, Any]:
        return copy.deepcopy(self._defaults[self.check(name)])


# The built-in parts. One line each: a new model, net, likelihood, prior or objective adds a line here.
MODELS = Registry(
    "model",
    {
        "pca": (
            "vaekit.models.pca:build",
            {"latent_dim": 30, "hidden": [], "likelihood": "gaussian"},
            "vaekit.models.pca:PCASettings",
        ),
        "linear_ae": (
            "vaekit.models.autoencoder:build_linear_ae",
            {"latent_dim": 30, "hidden": [], "likelihood": "gaussian"},
            "vaekit.models.autoencoder:LinearAESettings",
        ),
        # Hinton & Salakhutdinov's (2006) deep autoencoder, trained on cross-entropy as in the paper.
        "ae": (
            "vaekit.models.autoencoder:build_ae",
            {"latent_dim": 30, "hidden": [1000, 500, 250], "likelihood": "bernoulli"},
        ),
        # PyTorch's examples/vae, with the continuous Bernoulli: a normalised density for grey values in [0, 1].
        "vae": (
            "vaekit.models.autoencoder:build_vae",
            {"latent_dim": 20, "hidden": [400], "likelihood": "continuous_bernoulli"},
        ),
        # A top-down hierarchical VAE (Ladder VAE / NVAE / VDVAE family): L stochastic layers of model.latent_dims.
        "hvae": (
            "vaekit.models.hierarchical:build_hvae",
            {"latent_dim": 32, "hidden": [512, 256], "likelihood": "bernoulli"},
            "vaekit.models.hierarchical:HVAESettings",
        ),
        # van den Oord et al.'s (2017) VQ-VAE with an autoregressive prior over its code grid
        # (latent_dim, hidden: unused).
        "vqvae": (
            "vaekit.models.vqvae:build_vqvae",
            {"latent_dim": 1, "hidden": [], "likelihood": "bernoulli"},
            "vaekit.models.vqvae:VQVAESettings",
        ),
        # Kim & Mnih's (2018) FactorVAE: a VAE with a discriminator estimating the codes' total correlation.
        "factorvae": (
            "vaekit.models.factorvae:build_factorvae",
            {"latent_dim": 10, "hidden": [400], "likelihood": "bernoulli"},
            "vaekit.models.factorvae:FactorVAESettings",
        ),
    },
)
NETS = Registry(
    "architecture",
    {
        "mlp": "vaekit.models.nets:build_mlp",
        "conv": "vaekit.models.nets:build_conv",
        "resnet": "vaekit.models.nets:build_resnet",
    },
)
LIKELIHOODS = Registry(
    "likelihood",
    {
        "bernoulli": "vaekit.models.likelihoods:BERNOULLI",
        "continuous_bernoulli": "vaekit.models.likelihoods:CONTINUOUS_BERNOULLI",
        "gaussian": "vaekit.models.likelihoods:GAUSSIAN",
        "gaussian_shared": "vaekit.models.likelihoods:GAUSSIAN_SHARED",
        "gaussian_pixel": "vaekit.models.likelihoods:GAUSSIAN_PIXEL",
        "discretized_logistic": "vaekit.models.likelihoods:DISCRETIZED_LOGISTIC",
        "discretized_logistic_mixture": "vaekit.models.likelihoods:DISCRETIZED_LOGISTIC_MIXTURE",
    },
)
PRIORS = Registry(
    "prior",
    {
        "standard_normal": "vaekit.models.priors:StandardNormalPrior",
        "mog": "vaekit.models.priors:MixturePrior",
        "vamp": "vaekit.models.priors:VampPrior",
    },
)
POSTERIORS = Registry(
    "posterior",
    {
        "diagonal": "vaekit.models.posteriors:DiagonalPosterior",
        "iaf": "vaekit.models.posteriors:IAF",
        "nsf": "vaekit.models.posteriors:SplineIAF",
    },
)
OBJECTIVES = Registry(
    "objective",
    {
        "elbo": "vaekit.objectives.elbo:elbo_terms",
        "iwae": "vaekit.objectives.elbo:iwae_terms",
        "btcvae": "vaekit.objectives.aggregate_posterior:btcvae_terms",
        "infovae": "vaekit.objectives.aggregate_posterior:infovae_terms",
        "capacity": "vaekit.objectives.aggregate_posterior:capacity_terms",
    },
)
# Datasets by name (`data.name = "mnist"`), each a `data.sources.DataSource`, with what is known of it
# before it is imported: "fetch": `vaekit data fetch NAME` downloads it; "aliases": other spellings.
DATASETS = Registry(
    "dataset",
    {
        "mnist": ("vaekit.data.mnist:MNIST_SOURCE", {"fetch": True}),
        "fashion-mnist": (
            "vaekit.data.named:FASHION_SOURCE",
            {"fetch": True, "aliases": ["fashion_mnist", "fashionmnist"]},
        ),
        "cifar10": ("vaekit.data.named:CIFAR10_SOURCE", {"fetch": True, "aliases": ["cifar-10", "cifar_10"]}),
        "celeba": ("vaekit.data.named:CELEBA_SOURCE", {"fetch": True, "aliases": ["celeb-a", "celeb_a"]}),
        "shapes": "vaekit.data.shapes:SHAPES_SOURCE",
    },
)
# File formats (`data.name = "path"`): the first whose `claims(path)` is true reads it.
FORMATS = Registry(
    "data format",
    {
        "arrays": "vaekit.data.formats:ARRAYS",
        "csv": "vaekit.data.formats:CSV",
        "idx": "vaekit.data.formats:IDX",
        "folder": "vaekit.data.formats:FOLDER",
    },
)
