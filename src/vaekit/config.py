"""Typed, frozen, strict run configuration.

A run is described by three sections, each a frozen dataclass that owns its defaults:
``[data]``, ``[model]`` and ``[train]``. They are read from TOML (or JSON) and overridden with
``--set section.key=value``. Unknown keys and wrong types are errors that name the key; building a
config has no side effects. The resolved config is saved beside every run as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from vaekit.errors import VaekitError, check_regular_file
from vaekit.registry import LIKELIHOODS, MODELS, NETS, OBJECTIVES, POSTERIORS, PRIORS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


def setting(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, **rules: Any) -> Any:
    """A config field and the rules its value must follow, declared where the field is.

    Rules (checked by `check_value` when a section is built; a value of None skips all but `choices`):
    ``choices`` (a registry of names), ``positive`` (> 0), ``non_negative`` (>= 0),
    ``unset_or_positive`` (None or > 0), ``sizes`` (a list of sizes, each > 0), ``layers`` (a list's
    length, or the count itself, is at most `MAX_LAYERS`; the value names what is counted) and
    ``expect`` (``(test, "what is allowed")``: the value must pass the test)."""
    unknown = set(rules) - RULES
    if unknown:
        raise TypeError(f"unknown config rule(s) {sorted(unknown)}; known: {sorted(RULES)}")
    return field(default=default, default_factory=factory, metadata=rules)


RULES = {"choices", "positive", "non_negative", "unset_or_positive", "sizes", "layers", "expect"}


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from and how it is prepared.

    name: ``"mnist"`` or a path to a folder of images, a ``.npy``/``.npz`` file or a ``.csv``.
    """

    name: str = "mnist"  # mnist, fashion-mnist, cifar10, celeba, or a path: image folder, .npy/.npz, .csv, IDX file
    data_dir: str | None = None  # files the user already has (IDX, mnist.npz, MNIST/raw)
    binarize: Literal["none", "dynamic", "fixed"] = (
        "none"  # dynamic: resampled every training batch (val/test fixed); fixed: once, seeded
    )
    val_size: int = setting(5000, non_negative=True)  # examples carved from the training set for validation (0: none)
    limit: int | None = setting(None, unset_or_positive=True)  # use only the first N training examples (quick runs)
    test_size: int | None = setting(
        None, unset_or_positive=True
    )  # data without a test split: examples carved for testing (None: 10%; streamed: at most 10,000)
    image_size: list[int] | None = setting(
        None, sizes=True
    )  # [H, W] to resize an image folder to (None: all must match); shapes: the resolution (None: 64 x 64)
    shapes_grid: list[int] | None = setting(
        None, sizes=True
    )  # shapes: values of each factor [shape (1-3), scale, orientation, pos_x, pos_y]; None: [3, 6, 40, 32, 32]
    crop: list[int] | None = setting(
        None, sizes=True
    )  # image folders: [H, W] centre crop, before the resize (e.g. CelebA: [148, 148] then 64 x 64)
    stream: bool = False  # image folders: read training images from disk as batches are needed (DataLoader workers)
    workers: int = 2  # stream: DataLoader worker processes (0: read in the training process)
    grayscale: bool | None = None  # image folders: force grey (True) or RGB (False); None: as found
    scaling: Literal["minmax", "standard", "none"] = "minmax"  # CSV/arrays of floats
    seed: int = setting(0, non_negative=True)  # validation split and fixed binarisation
    dequantize: Literal["none", "uniform"] = "none"  # 8-bit data: x = (255 x + u) / 256, u ~ U[0, 1), fresh each batch


@dataclass(frozen=True)
class SharedModelConfig:
    """Which model and its shape. Fields that do not apply to a model are ignored by it.

    These are the keys every model family shares (the nets, the likelihood, the prior, the
    posterior); a model's own keys are declared in its module and registered with it (see
    `model_config_class`)."""

    name: str = setting("vae", choices=MODELS)  # the model (registry.MODELS)
    latent_dim: int | None = setting(None, positive=True)  # None: the model's default (registry.MODELS)
    arch: str = setting("mlp", choices=NETS)  # encoder/decoder bodies (registry.NETS)
    hidden: list[int] | None = setting(
        None, sizes=True, layers="layers"
    )  # mlp: hidden widths; None: the model's default (registry.MODELS)
    block: Literal["plain", "residual", "gated"] = "plain"  # mlp hidden layers
    dropout: float = 0.0  # mlp: probability of zeroing each hidden unit in training (0: off)
    channels: list[int] = setting(
        factory=lambda: [32, 64], sizes=True, layers="stages"
    )  # conv/resnet: width of each stride-2 stage
    depth: int = setting(2, positive=True, layers="blocks per stage")  # resnet: residual blocks per stage
    activation: Literal["relu", "tanh", "elu", "gelu"] = "relu"  # hidden-layer nonlinearity
    likelihood: str | None = setting(
        None, choices=LIKELIHOODS
    )  # p(x|z) (registry.LIKELIHOODS); None: the model's default
    likelihood_check: bool = True  # refuse a likelihood that does not fit the data (false: train anyway)
    sigma: float = setting(1.0, positive=True)  # std of the fixed Gaussian; the starting std of the learned ones
    mixture_components: int = setting(5, positive=True)  # discretized_logistic_mixture
    prior: str = setting("standard_normal", choices=PRIORS)  # vae: p(z) (registry.PRIORS)
    prior_components: int | None = setting(
        None, unset_or_positive=True
    )  # mog (default 10) or vamp pseudo-inputs (default 500)
    posterior: str = setting(
        "diagonal", choices=POSTERIORS
    )  # vae: q(z|x) (registry.POSTERIORS): diagonal Gaussian, or a flow on it (iaf, nsf)
    flow_steps: int = setting(2, positive=True, layers="flow steps")  # iaf/nsf: autoregressive steps
    flow_hidden: list[int] = setting(
        factory=lambda: [256, 256], sizes=True, layers="layers"
    )  # iaf/nsf: hidden widths of each step's autoregressive net
    conditional: bool = False  # condition encoder and decoder on the label (CVAE)
    num_classes: int | None = setting(None, unset_or_positive=True)  # conditional: filled in from the data's labels


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation. Applies to every trainable model."""

    epochs: int = setting(10, positive=True)  # passes over the training set (at most 1,000,000)
    batch_size: int = setting(128, positive=True)  # the global batch (under torchrun: split over the processes)
    lr: float = setting(1e-3, positive=True)  # base learning rate
    optimizer: Literal["adam", "adamw"] = "adam"  # adamw: decoupled weight decay
    weight_decay: float = setting(0.0, non_negative=True)  # L2 (adam) or decoupled (adamw) weight decay
    schedule: Literal["constant", "cosine", "exponential"] = "constant"  # learning-rate decay over train.epochs
    gamma: float = setting(0.95, non_negative=True)  # exponential schedule: lr multiplier per epoch
    warmup_epochs: float = setting(0.0, non_negative=True)  # linear learning-rate warm-up
    objective: str = setting("elbo", choices=OBJECTIVES)  # registry.OBJECTIVES
    samples: int = setting(1, positive=True)  # codes drawn per example: K of the IWAE bound (elbo: averaged)
    beta: float = setting(1.0, non_negative=True)  # weight of the KL term (beta-VAE); 1.0 is the ELBO
    free_bits: float = setting(
        0.0, non_negative=True
    )  # nats per latent dimension below which the KL is not pushed down (Kingma et al. 2016)
    tc_beta: float = setting(
        6.0, non_negative=True
    )  # btcvae: weight of the total correlation (Chen et al. 2018's beta)
    tc_estimator: Literal["mss", "mws"] = (
        "mss"  # btcvae: log q(z) from the minibatch by stratified (mss) or weighted (mws) sampling
    )
    mmd_weight: float = setting(
        10.0, non_negative=True
    )  # infovae: weight of MMD^2(q(z), p(z)) (InfoVAE's alpha + lambda - 1; WAE's lambda)
    capacity: float = setting(
        25.0, non_negative=True
    )  # capacity: the KL's target C in nats at the end of its ramp (Burgess et al. 2018)
    capacity_epochs: float = setting(10.0, non_negative=True)  # capacity: epochs over which C rises linearly from 0
    kl_schedule: Literal["linear", "cyclic"] = (
        "linear"  # KL warm-up: once (linear) or restarted every kl_cycle_epochs (cyclic)
    )
    kl_warmup_epochs: float = setting(
        0.0, non_negative=True
    )  # KL weight rises linearly from 0 to beta over these epochs
    kl_cycle_epochs: float = setting(
        0.0, non_negative=True
    )  # cyclic: period of the ramp (Fu et al. 2019); the ramp takes kl_warmup_epochs
    ema: float | None = None  # decay of an exponential moving average of the weights, used for evaluation
    grad_clip: float | None = setting(None, unset_or_positive=True)  # max global gradient norm
    patience: int | None = setting(None, unset_or_positive=True)  # early stopping on validation loss; None: off
    max_minutes: float | None = setting(
        None, unset_or_positive=True
    )  # stop after the first epoch that ends past this much training time
    checkpoint_every: int | None = setting(
        None, unset_or_positive=True
    )  # also checkpoint every N optimiser steps (None: at the end of each epoch only)
    keep_checkpoints: int = setting(3, positive=True)  # training checkpoints kept: the newest N, plus the best epoch's
    on_nan: Literal["stop", "rollback"] = "stop"  # non-finite loss/gradient: stop with a diagnosis, or roll back
    max_rollbacks: int = setting(
        3, non_negative=True
    )  # rollback: restore the last good checkpoint and halve the lr at most this often
    seed: int = setting(0, non_negative=True)  # initial weights, batch order and noise
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda when available
    precision: Literal["fp32", "bf16", "fp16"] = (
        "fp32"  # bf16/fp16: the nets under autocast, losses and log-densities in fp32
    )
    compile: bool = False  # torch.compile the model for training (checkpoints stay free of its prefixes)
    eval_k: int = setting(1000, non_negative=True)  # importance samples for log p(x) at the end of training (0: skip)
    progress: bool = True  # progress bars


_ASSEMBLED: tuple[int, type] | None = None  # (MODELS.version it was built for, the class)
# One class per set of settings: registering a model and taking it away again gives back the class
# (and so equal configs) of before, since a dataclass's instances compare equal only within a class.
_CLASSES: dict[tuple[type, ...], type] = {}


def model_config_class() -> type:
    """`ModelConfig`: the shared keys, then each registered model's own settings (its registry entry's
    ``settings``, a frozen dataclass in the model's module), as one flat frozen dataclass, so that
    ``[model]`` stays one table and config.json one flat section. Built on first use and again after a
    model is registered (the same settings give the same class). Each key has one owner: a model may
    not declare a shared key or another model's."""
    global _ASSEMBLED
    if _ASSEMBLED is not None and _ASSEMBLED[0] == MODELS.version:
        return _ASSEMBLED[1]
    own_settings = tuple(MODELS.settings_classes())
    if own_settings in _CLASSES:
        _ASSEMBLED = (MODELS.version, _CLASSES[own_settings])
        return _ASSEMBLED[1]
    fields = []
    owners: dict[str, type] = {f.name: SharedModelConfig for f in dataclasses.fields(SharedModelConfig)}
    for owner in own_settings:
        hints = typing.get_type_hints(owner)
        for f in dataclasses.fields(owner):
            if f.name in owners:
                raise TypeError(f"model setting '{f.name}' is declared by both {owners[f.name]} and {owner}")
            owners[f.name] = owner
            own = field(default=f.default, default_factory=f.default_factory, metadata={**f.metadata, "owner": owner})
            fields.append((f.name, hints[f.name], own))
    # A subclass: the shared keys first, then each model's, in registration order.
    cls = dataclasses.make_dataclass("ModelConfig", fields, bases=(SharedModelConfig,), frozen=True)
    cls.__module__, cls.__doc__ = __name__, SharedModelConfig.__doc__
    _CLASSES[own_settings] = cls
    _ASSEMBLED = (MODELS.version, cls)
    return cls


def __getattr__(name: str) -> Any:
    if name == "ModelConfig":  # assembled from the registry on first use (PEP 562)
        return model_config_class()
    if name == "SECTIONS":  # the name of the previous release, now `sections()`
        return sections()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: SharedModelConfig = field(default_factory=lambda: model_config_class()())  # a ModelConfig
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if (
            self.model.latent_dim is None or self.model.hidden is None or self.model.likelihood is None
        ):  # built directly
            object.__setattr__(
                self,
                "model",
                build_section("model", {k: v for k, v in dataclasses.asdict(self.model).items() if v is not None}),
            )
        if self.train.free_bits > 0 and self.model.posterior != "diagonal":
            raise VaekitError(
                f"config key 'train.free_bits': needs model.posterior = 'diagonal' (a per-dimension KL); "
                f"the KL of a '{self.model.posterior}' posterior does not split by dimension"
            )
        if self.train.free_bits > 0 and self.model.prior != "standard_normal":
            raise VaekitError(
                f"config key 'train.free_bits': needs model.prior = 'standard_normal' (a per-dimension KL); "
                f"the KL to a '{self.model.prior}' prior does not split by dimension"
            )
        if self.train.objective == "btcvae" and (
            self.model.posterior != "diagonal" or self.model.prior != "standard_normal"
        ):
            raise VaekitError(
                "config key 'train.objective': 'btcvae' needs model.posterior = 'diagonal' and model.prior = "
                f"'standard_normal' (got {self.model.posterior!r}, {self.model.prior!r}): its dimension-wise KL "
                "needs both to factorise over dimensions"
            )
        if self.train.objective in ("btcvae", "infovae", "capacity") and self.train.free_bits > 0:
            raise VaekitError(
                f"config key 'train.free_bits': does not apply to train.objective = '{self.train.objective}'"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def sections() -> dict[str, type]:
    """The three sections and their classes (the model's assembled from the registry)."""
    return {"data": DataConfig, "model": model_config_class(), "train": TrainConfig}


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"a table of {type_name(typing.get_args(tp)[1])}"
    if tp is type(None):
        return "none"
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false"}.get(tp, str(tp))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check `value` against the annotation `tp`; return it (ints widen to floats). Raise on mismatch."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(key, value, arg)
            except VaekitError:
                pass
        if value in ("none", "null") and type(None) in typing.get_args(tp):
            return None  # how `--set key=none` unsets an optional key (TOML has no null)
    elif origin is Literal:
        if value in typing.get_args(tp):
            return value
    elif origin is list:
        (inner,) = typing.get_args(tp)
        if isinstance(value, (list, tuple)):
            return [_coerce(key, v, inner) for v in value]
    elif origin is dict:
        _, inner = typing.get_args(tp)
        if isinstance(value, dict):
            return {str(k): _coerce(f"{key}.{k}", v, inner) for k, v in value.items()}
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    raise VaekitError(f"config key '{key}': got {value!r}, expected {type_name(tp)}")


MAX_EPOCHS = 1_000_000
MAX_INT = 2**31 - 1  # sizes, counts and seeds: larger ones are typos or attacks, and overflow C integers


def check_seed(value: Any, name: str = "seed") -> int:
    """A seed, as every seed vaekit takes (config keys, --seed, the Python API) is checked: a whole
    number from 0 to MAX_INT, which torch, numpy and scikit-learn (below 2**32) all accept. `name`
    says where it came from, in the error."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise VaekitError(f"{name} {str(value)[:40]!r}: expected a whole number from 0 to {MAX_INT}")
    if not 0 <= value <= MAX_INT:
        raise VaekitError(f"{name} {str(value)[:40]}: must be from 0 to {MAX_INT}")
    return value


# Layers: the deepest published VAEs (NVAE, VDVAE) stack tens of cells per stage; thousands are a typo,
# and building them (even on the meta device, to estimate memory) takes minutes.
MAX_LAYERS = 128


def _short(n: int) -> str:
    text = str(n) if n.bit_length() < 200 else f"an integer of {len(str(abs(n)))} digits"
    return text


def _check_ranges(section: str, obj: Any) -> None:
    """Values that type-check but make no sense: each field's own rules (see `setting`), then the
    rules between fields of the section."""
    for f in dataclasses.fields(obj):
        check_value(f"{section}.{f.name}", f.metadata, getattr(obj, f.name))
    {"data": _check_data, "train": _check_train, "model": _check_model}[section](obj)


def check_value(key: str, rules: Any, v: Any) -> None:
    """One value against its field's rules (and the limits every number has)."""
    if "choices" in rules and v is not None:
        rules["choices"].check(v, key)
    if isinstance(v, float) and not math.isfinite(v):
        raise VaekitError(f"config key '{key}': got {v!r}, must be a finite number")
    for n in v if isinstance(v, list) else [v]:
        if isinstance(n, int) and not isinstance(n, bool) and abs(n) > MAX_INT:
            raise VaekitError(f"config key '{key}': got {_short(n)}, must be at most {MAX_INT}")
    if v is None:
        return
    if "layers" in rules:
        count = len(v) if isinstance(v, list) else v
        if count > MAX_LAYERS:
            raise VaekitError(f"config key '{key}': {count} {rules['layers']}; at most {MAX_LAYERS} are allowed")
    if rules.get("positive") and v <= 0:
        raise VaekitError(f"config key '{key}': got {v!r}, must be > 0")
    if rules.get("non_negative") and v < 0:
        raise VaekitError(f"config key '{key}': got {v!r}, must be >= 0")
    if rules.get("sizes") and any(h <= 0 for h in v):
        raise VaekitError(f"config key '{key}': got {v!r}, every size must be > 0")
    if rules.get("unset_or_positive") and v <= 0:
        raise VaekitError(f"config key '{key}': got {v!r}, must be > 0 (or left unset)")
    if "expect" in rules and not rules["expect"][0](v):
        raise VaekitError(f"config key '{key}': got {v!r}, expected {rules['expect'][1]}")


def _check_data(obj: Any) -> None:
    for key in ("image_size", "crop"):
        if getattr(obj, key) is not None and len(getattr(obj, key)) != 2:
            raise VaekitError(f"config key 'data.{key}': got {getattr(obj, key)!r}, expected [height, width]")
    if obj.workers < 0:
        raise VaekitError(f"config key 'data.workers': got {obj.workers!r}, must be >= 0")
    grid = obj.shapes_grid
    if grid is not None and (len(grid) != 5 or grid[0] > 3 or math.prod(grid) > 2**24):
        raise VaekitError(
            f"config key 'data.shapes_grid': got {grid!r}, expected 5 sizes [shapes (1-3), scales, "
            "orientations, x positions, y positions] of at most 16,777,216 images in all"
        )


def _check_train(obj: Any) -> None:
    if obj.epochs > MAX_EPOCHS:  # the longest published MNIST schedules run a few thousand epochs
        raise VaekitError(
            f"config key 'train.epochs': got {obj.epochs!r}, must be at most {MAX_EPOCHS:,} "
            "(to train until a time limit, set train.max_minutes)"
        )
    if obj.eval_k > 5000:  # the paper protocol's K; more runs for hours without changing the estimate's meaning
        raise VaekitError(
            f"config key 'train.eval_k': got {obj.eval_k!r}, must be at most 5000 (as vaekit evaluate --k)"
        )
    if obj.ema is not None and not 0 < obj.ema < 1:
        raise VaekitError(f"config key 'train.ema': got {obj.ema!r}, must be in (0, 1) (e.g. 0.999) or unset")
    if obj.kl_schedule == "cyclic" and obj.kl_cycle_epochs < obj.kl_warmup_epochs:
        raise VaekitError(
            f"config key 'train.kl_cycle_epochs': got {obj.kl_cycle_epochs!r}; a cyclic KL schedule "
            f"needs a period >= train.kl_warmup_epochs ({obj.kl_warmup_epochs!r}) and > 0"
        )
    if obj.kl_schedule == "cyclic" and obj.kl_cycle_epochs <= 0:
        raise VaekitError("config key 'train.kl_cycle_epochs': must be > 0 when train.kl_schedule = 'cyclic'")
    if obj.objective == "iwae" and obj.free_bits > 0:
        raise VaekitError(
            "config key 'train.free_bits': free bits act on a per-dimension KL, which the IWAE bound does not "
            "have; use objective 'elbo'"
        )


def _check_model(obj: Any) -> None:
    if not 0 <= obj.dropout < 1:
        raise VaekitError(f"config key 'model.dropout': got {obj.dropout!r}, must be in [0, 1)")
    if obj.prior == "vamp" and obj.conditional:
        raise VaekitError(
            "config key 'model.prior': 'vamp' is not available for a conditional VAE; use 'standard_normal' or 'mog'"
        )
    if obj.flow_steps > 32 or not obj.flow_hidden:
        raise VaekitError(
            f"config key 'model.flow_{'steps' if obj.flow_steps > 32 else 'hidden'}': "
            f"got {obj.flow_steps if obj.flow_steps > 32 else obj.flow_hidden!r}, "
            "expected 1..32 steps and at least one hidden width"
        )
    own = MODELS.settings(obj.name)
    if own is not None and hasattr(own, "check"):  # the rules between a model's own keys and the shared ones
        own.check(obj)


def typed_fields(cls: type, values: dict[str, Any], prefix: str, what: str = "config key") -> dict[str, Any]:
    """`values` for the fields of dataclass `cls`, each coerced to its annotation; an unknown key or
    a wrong type is refused naming `prefix.key` (config sections, and a table's settings)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    out = {}
    for key, value in values.items():
        if key not in names:
            raise VaekitError(f"unknown {what} '{prefix}.{key}'; allowed: {', '.join(sorted(names))}")
        out[key] = _coerce(f"{prefix}.{key}", value, hints[key])
    return out


def build_section(section: str, values: dict[str, Any]) -> Any:
    cls = sections()[section]
    obj = cls(**typed_fields(cls, values, section))
    if section == "model":  # the model's own defaults where the config leaves them unset
        MODELS.check(obj.name, "model.name")
        unset = {k: v for k, v in MODELS.defaults(obj.name).items() if getattr(obj, k) is None}
        obj = dataclasses.replace(obj, **unset)
    _check_ranges(section, obj)
    return obj


def from_dict(raw: dict[str, Any]) -> RunConfig:
    """Build a RunConfig from nested plain data, rejecting unknown sections and keys."""
    if not isinstance(raw, dict):
        raise VaekitError(f"config must be a table of sections, got {type(raw).__name__}")
    for section in raw:
        if section not in ("data", "model", "train"):
            raise VaekitError(f"unknown config section '{section}'; allowed: data, model, train")
        if not isinstance(raw[section], dict):
            raise VaekitError(f"config section '{section}' must be a table, got {raw[section]!r}")
    return RunConfig(**{s: build_section(s, raw.get(s, {})) for s in sections()})


def parse_value(text: str) -> Any:
    """Parse the right-hand side of ``--set key=value`` as a TOML value; bare words are strings."""
    if any(ord(c) < 32 for c in text):  # a newline would start a second TOML statement, silently dropped
        raise VaekitError(f"--set value {text!r}: control characters (newlines, tabs) are not allowed")
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    except (RecursionError, ValueError):
        raise VaekitError(f"--set value {text[:40]!r}...: nests too deeply or holds too long a number") from None


def apply_overrides(
    raw: dict[str, Any], overrides: list[str], sections: tuple[str, ...] = ("data", "model", "train")
) -> dict[str, Any]:
    """Apply ``section.key=value`` strings to nested plain data (a new dict is returned)."""
    out = {s: dict(v) for s, v in raw.items() if isinstance(v, dict)}
    out.update({s: v for s, v in raw.items() if not isinstance(v, dict)})
    for item in overrides:
        if "=" not in item:
            raise VaekitError(f"--set '{item}': expected section.key=value")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) != 2 or parts[0] not in sections:
            raise VaekitError(f"--set '{item}': key must be section.key with section one of {', '.join(sections)}")
        out.setdefault(parts[0], {})[parts[1]] = parse_value(text.strip())
    return out


def read_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or JSON config file into plain data."""
    p = Path(path)
    check_regular_file(p, "config file")
    if not p.is_file():
        raise VaekitError(f"config file '{p}' does not exist")
    kind = p.suffix.lstrip(".") or "TOML"
    try:
        raw = json.loads(p.read_text()) if p.suffix == ".json" else tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise VaekitError(f"config file '{p}' is not valid {kind}: {str(e).splitlines()[0][:200]}") from None
    except RecursionError:
        raise VaekitError(f"config file '{p}' nests too deeply to be a config") from None
    except ValueError as e:  # e.g. an integer of thousands of digits
        raise VaekitError(f"config file '{p}' is not valid {kind}: {str(e)[:120]}") from None
    if not isinstance(raw, dict):
        raise VaekitError(f"config file '{p}' must be a table of sections, got {type(raw).__name__}")
    return raw


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """The resolved config: defaults, then the file, then ``--set`` overrides."""
    raw = read_file(path) if path is not None else {}
    return from_dict(apply_overrides(raw, overrides or []))
