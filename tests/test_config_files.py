from pathlib import Path

import pytest

from vaekit.config import load_config

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    cfg = load_config(path)
    assert cfg.model.latent_dim > 0


def test_there_are_configs():
    assert len(CONFIGS) >= 4
