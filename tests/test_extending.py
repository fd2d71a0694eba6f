"""Adding a model or a dataset from outside vaekit: its own code (a model's settings declared beside
it) and one registration call. Nothing in vaekit is edited; the config, the checks, the run directory and
loading all follow."""

import dataclasses
import json
from dataclasses import dataclass

import pytest
import torch

from conftest import digit_like
from vaekit.config import DataConfig, ModelConfig, build_section, model_config_class, setting
from vaekit.data.sources import DataSource
from vaekit.errors import VaekitError
from vaekit.models.autoencoder import build_ae
from vaekit.registry import DATASETS, MODELS


@dataclass(frozen=True)
class WideningSettings:
    """The outside model's own ``[model]`` key."""

    extra_width: int = setting(6, positive=True, layers="units")  # width of one more hidden layer at the bottleneck


def build_widening_ae(cfg, shape):
    """An autoencoder whose last hidden layer is `extra_width` wide (it describes itself by `cfg`)."""
    model = build_ae(dataclasses.replace(cfg, hidden=[*cfg.hidden, cfg.extra_width]), shape)
    model.config = cfg
    return model


@pytest.fixture
def widening():
    MODELS.register(
        "widening_ae",
        build_widening_ae,
        defaults={"latent_dim": 2, "hidden": [8], "likelihood": "gaussian"},
        settings=WideningSettings,
    )
    try:
        yield
    finally:
        del MODELS["widening_ae"]


def _widths(model):
    return [m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)]


def test_a_registered_model_brings_its_settings_into_the_config(widening):
    cfg = build_section("model", {"name": "widening_ae", "extra_width": 5})
    assert cfg.extra_width == 5 and cfg.hidden == [8] and cfg.latent_dim == 2  # its key and its defaults
    assert "extra_width" in {f.name for f in dataclasses.fields(model_config_class())}
    with pytest.raises(VaekitError, match=r"^config key 'model.extra_width': got 0, must be > 0$"):
        build_section("model", {"name": "widening_ae", "extra_width": 0})
    with pytest.raises(VaekitError, match=r"config key 'model.extra_width': got 'wide', expected an integer"):
        build_section("model", {"name": "widening_ae", "extra_width": "wide"})


def test_the_settings_leave_with_the_model(widening):
    del MODELS["widening_ae"]
    try:
        with pytest.raises(VaekitError, match="unknown config key 'model.extra_width'"):
            build_section("model", {"extra_width": 5})
    finally:
        MODELS.register("widening_ae", build_widening_ae, settings=WideningSettings)


def test_a_registered_model_trains_saves_and_loads_with_its_setting(widening, images_npz, tmp_path):
    from vaekit import train
    from vaekit.runs import load_run

    cfg = {
        "data": {"name": str(images_npz), "val_size": 30},
        "model": {"name": "widening_ae", "extra_width": 5},
        "train": {"epochs": 1, "batch_size": 64, "eval_k": 0, "progress": False},
    }
    result = train(cfg, run_dir=tmp_path / "run", pictures=False)
    assert 5 in _widths(result["model"])
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["model"]["extra_width"] == 5 and saved["model"]["name"] == "widening_ae"
    model, again = load_run(tmp_path / "run")
    assert again.model.extra_width == 5 and _widths(model) == _widths(result["model"])
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(model.reconstruct(x), result["model"].reconstruct(x))


def test_a_model_may_not_take_a_key_it_does_not_own():
    @dataclass(frozen=True)
    class Greedy:
        latent_dim: int = setting(3, positive=True)  # already a shared key

    MODELS.register("greedy", build_ae, settings=Greedy)
    try:
        with pytest.raises(TypeError, match="model setting 'latent_dim' is declared by both"):
            model_config_class()
    finally:
        del MODELS["greedy"]
    assert model_config_class() is ModelConfig  # the class of before, so configs of before compare equal


def test_a_setting_refuses_a_rule_it_does_not_know():
    with pytest.raises(TypeError, match="unknown config rule"):
        setting(1, positve=True)


class Stripes(DataSource):
    """A dataset from outside: 8 x 8 uint8 images, each with a bright row at its label's index."""

    def read(self, cfg):
        x, y = digit_like(n=240, size=8, seed=cfg.seed)
        return x, y, None, None  # no test split of its own: vaekit carves one


@pytest.fixture
def stripes():
    DATASETS.register("stripes", Stripes(), defaults={"aliases": ["stripes-8"]})
    try:
        yield
    finally:
        del DATASETS["stripes"]


def test_a_registered_dataset_is_read_described_and_trained_on(stripes, tmp_path, capsys):
    from vaekit import train
    from vaekit.cli import main
    from vaekit.data.prepared import fingerprint, prepare

    data = prepare(DataConfig(name="STRIPES-8", val_size=20))  # its alias, in any case
    assert data.shape == (1, 8, 8) and len(data.x_train) + len(data.x_val) + len(data.x_test) == 240
    assert data.levels == 256 and float(data.x_train.max()) <= 1.0  # uint8 scaled as every source's
    assert fingerprint(DataConfig(name="stripes")) is None  # a dataset by name has no file to fingerprint
    assert main(["data", "info", "stripes"]) == 0
    assert "train_count  240" in capsys.readouterr().out
    cfg = {
        "data": {"name": "stripes", "val_size": 20},
        "model": {"name": "vae", "latent_dim": 2, "hidden": [16], "likelihood": "continuous_bernoulli"},
        "train": {"epochs": 2, "batch_size": 32, "eval_k": 5, "progress": False},
    }
    result = train(cfg, run_dir=tmp_path / "run", pictures=False)
    losses = [h["train_loss"] for h in result["history"]]
    assert losses[-1] < losses[0] and result["eval"]["log_px"]["unit"] == "nats"


def test_an_unknown_name_lists_the_registered_datasets(stripes):
    from vaekit.data.prepared import prepare

    with pytest.raises(VaekitError, match=r"neither a dataset name \(mnist, .*shapes, stripes\) nor an existing path"):
        prepare(DataConfig(name="no-such-data"))
