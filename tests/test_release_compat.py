"""What the previous release wrote still reads alike: its resolved configs and its run directories.

The fixtures in tests/fixtures/release_0.1.0 were written by vaekit 0.1.0 as it stood before the
model settings moved into each model's module (commit a67f2e5), by make_release_fixtures.py."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vaekit.config import load_config
from vaekit.runs import load_run

FIXTURES = Path(__file__).parent / "fixtures" / "release_0.1.0"
CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.toml"))
RUNS = sorted(p.name for p in (FIXTURES / "runs").iterdir())


def test_the_fixtures_cover_every_shipped_config_and_every_model_kind():
    from vaekit.registry import MODELS

    assert sorted(json.loads((FIXTURES / "resolved_configs.json").read_text())) == [p.name for p in CONFIGS]
    assert sorted(RUNS) == sorted(MODELS.names())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_a_shipped_config_resolves_as_the_last_release_resolved_it(path):
    then = json.loads((FIXTURES / "resolved_configs.json").read_text())[path.name]
    assert load_config(path).to_dict() == then


@pytest.mark.parametrize("kind", RUNS)
def test_a_run_directory_of_the_last_release_loads_and_reconstructs_alike(kind):
    run = FIXTURES / "runs" / kind
    model, cfg = load_run(run)
    assert cfg.to_dict() == json.loads((run / "config.json").read_text())
    x = torch.from_numpy(np.load(FIXTURES / "data.npy")[:8])
    with torch.no_grad():
        now = model.reconstruct(x).numpy()
    then = np.load(run / "reconstructions.npy")
    assert now.shape == then.shape and np.allclose(now, then, rtol=0, atol=1e-6)
