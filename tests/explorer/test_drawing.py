"""Pictures of images of any channel count, and what a grey mean looks like."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import train_small_run
from vaekit.cli import main

# 6. images whose channel count has no picture format ----------------------------------------


@pytest.mark.parametrize("shape", [(40, 5, 8, 8), (40, 2, 8, 8), (40, 8, 8, 28)])
def test_images_of_any_channel_count_are_drawn(tmp_path, capsys, shape):
    """(N, 8, 8, 28) reads as 28 channels: Pillow's mode table has no (1, 1, 28) entry."""

    np.save(tmp_path / "x.npy", np.random.default_rng(0).integers(0, 255, shape).astype(np.uint8))
    out = train_small_run(tmp_path / "x.npy", tmp_path / "r", hidden=8, pictures=True)
    for name in ("samples.png", "reconstructions.png"):
        assert Image.open(out / name).mode == "L"
    assert main(["sample", str(out), "--out", str(tmp_path / "s.png"), "--n", "4"]) == 0


def test_a_grey_mean_is_what_is_drawn():
    from vaekit.explorer.pictures import _to_uint8

    x = torch.zeros(1, 5, 2, 2)
    x[0, 0] = 1.0  # one channel of five at full: mean 0.2
    assert (_to_uint8(x) == round(0.2 * 255)).all() and _to_uint8(x).shape == (1, 2, 2, 1)
    rgb = torch.rand(2, 3, 2, 2)
    assert _to_uint8(rgb).shape == (2, 2, 2, 3)
