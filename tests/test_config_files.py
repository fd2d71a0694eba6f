"""The shipped configs: each loads and sets what its file says; the model kinds they cover."""

from pathlib import Path

import pytest

from vaekit.config import load_config, read_file

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_a_shipped_config_sets_what_its_file_says(path):
    raw = read_file(path)
    cfg = load_config(path).to_dict()
    assert set(raw) <= {"data", "model", "train"} and raw, path.name
    for section, values in raw.items():
        for key, value in values.items():
            assert cfg[section][key] == value, f"{path.name}: {section}.{key}"
    assert cfg["model"]["latent_dim"] > 0 and cfg["model"]["likelihood"] is not None  # the model's defaults filled


def test_every_model_kind_has_a_shipped_config_or_is_the_tours():
    from vaekit.registry import MODELS

    named = {load_config(p).model.name for p in CONFIGS}
    assert set(MODELS.names()) - named <= {"linear_ae", "factorvae"}  # the tour trains the linear AE
