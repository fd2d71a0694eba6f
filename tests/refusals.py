"""What the tests of bad input share: generated hostile files, the check that a refusal is one
line on stderr with exit code 2 and no traceback, and small trained runs to damage."""

from __future__ import annotations

import numpy as np


def assert_clean_failure(code, err, fragment, out_path):
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("vaekit: error: "), err
    assert "Traceback" not in err
    assert fragment in lines[0], lines[0]
    assert not out_path.exists(), f"left behind: {sorted(p.name for p in out_path.iterdir())}"


RNG = np.random.default_rng(0)


X = RNG.random((60, 4)).astype(np.float32)  # a small valid table


SMALL = [
    "--set",
    "train.epochs=1",
    "--set",
    "train.eval_k=5",
    "--set",
    "model.hidden=[8]",
    "--set",
    "model.latent_dim=2",
    "--set",
    "data.val_size=0",
    "--quiet",
]


def assert_one_line(code, err, fragment):
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("vaekit: error: "), err
    assert "Traceback" not in err and fragment in lines[0], lines[0]
