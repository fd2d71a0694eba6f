"""The generated `shapes` dataset: deterministic, every factor combination a different image, and each
factor changing the image the way it says (a shift moves the centroid, a turn keeps the area, the
scale sets it)."""

import hashlib
import math

import numpy as np
import pytest
import torch

from vaekit.config import build_section
from vaekit.data.prepared import RenderedData, prepare, split_indices
from vaekit.data.shapes import FULL_GRID, HALF_SIZE, POS_RANGE, RenderedImages, ShapesGrid
from vaekit.errors import VaekitError

GRID = ShapesGrid()


def _random_codes(n, seed=0, grid=GRID):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, s, n) for s in grid.sizes], 1)


def _centroid(images):
    """(N, 1, H, W) -> the (row, column) centroids in pixels, each (N,)."""
    im = images[:, 0].double()
    n = im.sum((1, 2))
    r = torch.arange(im.shape[1], dtype=torch.float64) + 0.5
    c = torch.arange(im.shape[2], dtype=torch.float64) + 0.5
    return (im.sum(2) * r).sum(1) / n, (im.sum(1) * c).sum(1) / n


def test_the_full_grid_is_dsprites_sized_and_numbered_row_major():
    assert len(GRID) == 737_280 and GRID.sizes == FULL_GRID == (3, 6, 40, 32, 32) and GRID.shape == (1, 64, 64)
    idx = np.array([0, 1, 32, 1024, 40 * 1024, 6 * 40 * 1024, len(GRID) - 1])
    codes = GRID.codes(idx)
    assert codes.tolist() == [
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 1, 0],
        [0, 0, 1, 0, 0],
        [0, 1, 0, 0, 0],
        [1, 0, 0, 0, 0],
        [2, 5, 39, 31, 31],
    ]
    assert np.array_equal(GRID.index(codes), idx)
    some = np.random.default_rng(0).integers(0, len(GRID), 5000)
    assert np.array_equal(GRID.index(GRID.codes(some)), some)


def test_rendering_is_deterministic_binary_and_the_same_by_index_or_by_codes():
    codes = _random_codes(300)
    a, b = GRID.render(codes), GRID.render(codes)
    assert a.dtype == torch.uint8 and a.shape == (300, 1, 64, 64) and torch.equal(a, b)
    assert set(a.unique().tolist()) == {0, 1} and bool((a.flatten(1).sum(1) > 0).all())
    assert torch.equal(GRID.images(GRID.index(codes)), a)
    # rendered in chunks or one at a time: the same pixels
    assert torch.equal(torch.cat([GRID.render(c[None]) for c in codes[:20]]), a[:20])


def test_factor_values_follow_the_documented_grids():
    v = GRID.values(np.array([[0, 0, 1, 0, 31], [1, 5, 39, 31, 0], [2, 3, 20, 16, 5]]))
    assert v[:, 0].tolist() == [0, 1, 2]
    assert np.allclose(v[:, 1], [0.5, 1.0, 0.8])
    assert np.allclose(v[:, 2], [math.pi / 2 / 40, math.pi * 39 / 40, 2 * math.pi * 20 / 40])  # each shape's own period
    assert np.allclose(v[:, 3], [POS_RANGE[0], POS_RANGE[1], POS_RANGE[0] + 16 * (POS_RANGE[1] - POS_RANGE[0]) / 31])


def _distinct(images):
    return len({hashlib.sha1(im.numpy().tobytes()).digest() for im in images}) == len(images)


def test_turns_and_scales_are_different_images_where_the_raster_can_tell():
    """At full scale all 3 x 40 turns differ; so do all 6 x 40 scales and turns of the heart (no
    symmetry). The smallest squares and ellipses turned by 2.25 or 4.5 degrees can fall on the same
    pixels of a 64 x 64 raster (see the slow test for how often)."""
    for p in (3, 20):
        assert _distinct(GRID.render(np.array([[k, 5, o, p, p] for k in range(3) for o in range(40)])))
        assert _distinct(GRID.render(np.array([[2, s, o, p, p] for s in range(6) for o in range(40)])))


def test_every_position_is_a_different_image():
    codes = np.array([[k, 0, 7, x, y] for k in range(3) for x in range(32) for y in range(32)])
    assert _distinct(GRID.render(codes))


@pytest.mark.slow
def test_the_few_repeated_images_are_small_symmetric_shapes_one_step_apart():
    """Of all 737,280 combinations (each exactly once in the numbering) 7,608 (1.03%) draw an image
    already drawn, and 13,596 (1.84%) share their pixels with some other image (the first of each
    group counted too; dSprites repeats every square and ellipse): all of them squares or ellipses
    below full scale whose twin differs in the orientation (at most 6 of 40 steps) or the scale alone."""
    first, twins = {}, []
    for s in range(0, len(GRID), 16384):
        idx = np.arange(s, min(s + 16384, len(GRID)))
        for i, im in zip(idx, GRID.images(idx).numpy()):
            h = hashlib.sha1(im.tobytes()).digest()
            if h in first:
                twins.append((first[h], i))
            else:
                first[h] = i
    assert len(twins) == 7608  # images that repeat an earlier one
    assert len({i for pair in twins for i in pair}) == 13596  # images that share their pixels with another
    a, b = (GRID.codes(np.array(t)) for t in zip(*twins))
    assert set(a[:, 0]) <= {0, 1} and a[:, 1].max() < 5
    differ = a != b
    assert differ.sum(1).max() == 1 and not differ[:, [0, 3, 4]].any()
    turn = np.abs(a[:, 2] - b[:, 2])
    assert np.minimum(turn, 40 - turn).max() <= 6


def test_a_shift_moves_the_centroid_by_the_step():
    codes = _random_codes(1000, seed=1)
    codes[:, 3:] = np.minimum(codes[:, 3:], 30)
    step = (POS_RANGE[1] - POS_RANGE[0]) / 31 * 64  # pixels per position step
    r0, c0 = _centroid(GRID.render(codes))
    right, down = codes.copy(), codes.copy()
    right[:, 3] += 1
    down[:, 4] += 1
    r1, c1 = _centroid(GRID.render(right))
    r2, c2 = _centroid(GRID.render(down))
    assert float((c1 - c0 - step).abs().max()) < 0.5 and float((r1 - r0).abs().max()) < 0.5  # rasterised: half a pixel
    assert float((r2 - r0 - step).abs().max()) < 0.5 and float((c2 - c0).abs().max()) < 0.5
    assert abs(float((c1 - c0).mean()) - step) < 0.02  # and on average exactly the step


@pytest.mark.parametrize("kind, area", [(0, lambda h: (1.6 * h) ** 2), (1, lambda h: math.pi * h * h * 0.5)])
def test_a_turn_keeps_the_area_and_the_scale_sets_it(kind, area):
    """The pixel count is the shape's area (a 0.8-half-side square; an ellipse of semi-axes 1 and 0.5
    in half-size units) at every orientation, within rasterisation; it grows as the scale squared."""
    for s, tol in ((5, 0.1), (0, 0.3)):
        counts = GRID.render(np.array([[kind, s, o, 16, 16] for o in range(40)]))[:, 0].double().sum((1, 2))
        expected = area(HALF_SIZE * 64 * GRID.values(np.array([[kind, s, 0, 0, 0]]))[0, 1])
        assert float((counts / expected - 1).abs().max()) < tol
        assert abs(float(counts.mean()) / expected - 1) < tol / 4


def test_the_heart_keeps_its_area_under_turns_and_has_no_symmetry():
    counts = GRID.render(np.array([[2, 5, o, 16, 16] for o in range(40)]))[:, 0].double().sum((1, 2))
    assert float(counts.std() / counts.mean()) < 0.02
    turns = GRID.render(np.array([[2, 5, o, 16, 16] for o in range(40)]))
    assert all(not torch.equal(turns[o], turns[o + 20]) for o in range(20))  # a half turn is another image
    rows, _ = _centroid(turns[[0, 20]])
    assert float(rows[0]) < float(rows[1]) - 1  # upright the lobes are on top; upside down the point is


def test_small_grids_and_resolutions():
    g = ShapesGrid((2, 2, 4, 5, 5), (32, 48))
    assert len(g) == 400 and g.render(_random_codes(50, grid=g)).shape == (50, 1, 32, 48)
    square = ShapesGrid((2, 2, 4, 5, 5), (32, 32))
    codes = np.array([[k, 1, o, 2, 2] for k in range(2) for o in range(4)])
    wide, same = g.render(codes).double().sum((1, 2, 3)), square.render(codes).double().sum((1, 2, 3))
    assert float((wide / same - 1).abs().max()) < 0.15  # drawn in square units: a wider image does not stretch it
    with pytest.raises(VaekitError, match="data.shapes_grid"):
        ShapesGrid((4, 1, 1, 1, 1))
    with pytest.raises(VaekitError, match="data.image_size"):
        ShapesGrid(FULL_GRID, (4, 4))


def test_prepared_shapes_render_training_batches_on_demand():
    cfg = build_section(
        "data", {"name": "shapes", "shapes_grid": [3, 2, 4, 8, 8], "image_size": [32, 32], "val_size": 100}
    )
    d = prepare(cfg)
    grid = d.ground_truth
    assert isinstance(d, RenderedData) and isinstance(d.x_train, RenderedImages) and d.streamed and d.levels == 2
    n = len(grid)
    test, val, train = d.x_test, d.x_val, d.x_train
    assert len(test) == n // 10 and len(val) == 100 and len(train) == n - n // 10 - 100
    t_idx, v_idx, tr_idx = split_indices(n, cfg, carve_test=True, test_cap=10000, ordered=True)
    assert (
        np.array_equal(train.index, tr_idx) and len(np.unique(np.concatenate([t_idx, v_idx, tr_idx]))) == n
    )  # disjoint
    assert torch.equal(test, grid.images(t_idx).float()) and torch.equal(val, grid.images(v_idx).float())
    batch = torch.tensor([0, 5, 17])
    assert torch.equal(train[batch], grid.images(train.index[[0, 5, 17]]).float())
    assert torch.equal(d.y_train[batch], torch.from_numpy(grid.codes(train.index[[0, 5, 17]])[:, 0]))
    assert torch.equal(d.train_batch(batch), train[batch])  # binary already: no resampling
    again = prepare(cfg)
    assert torch.equal(again.x_test, d.x_test) and np.array_equal(again.x_train.index, train.index)
    limited = prepare(
        build_section("data", {"name": "shapes", "shapes_grid": [3, 2, 4, 8, 8], "limit": 200, "val_size": 50})
    )
    assert (
        len(limited.x_train) == 150 and len(np.unique(grid.codes(limited.x_train.index)[:, 0])) == 3
    )  # a random subset


def test_shapes_configs_are_checked():
    for bad in ([3, 6, 40, 32], [4, 6, 40, 32, 32], [3, 6, 0, 32, 32], [3, 600, 400, 320, 320]):
        with pytest.raises(VaekitError, match="data.shapes_grid"):
            build_section("data", {"name": "shapes", "shapes_grid": bad})
    for bad in ({"dequantize": "uniform"}, {"binarize": "fixed"}):
        with pytest.raises(VaekitError, match="need the data in memory"):
            prepare(build_section("data", {"name": "shapes", "shapes_grid": [1, 1, 2, 2, 2], **bad}))
    tiny = prepare(
        build_section("data", {"name": "shapes", "shapes_grid": [1, 1, 2, 2, 2], "val_size": 5, "test_size": 100})
    )
    assert (len(tiny.x_test), len(tiny.x_val), len(tiny.x_train)) == (7, 0, 1)  # always one left to train on


def _dsprites_like(path, grid=ShapesGrid((3, 2, 4, 3, 3), (16, 16))):
    """A small file in dSprites' layout: imgs (N, H, W) 0/1 uint8, latents_classes (N, 6) with colour 0 first,
    latents_values, rows in row-major order of the factors."""
    idx = np.arange(len(grid))
    classes = np.c_[np.zeros(len(grid), dtype=np.int64), grid.codes(idx)]
    np.savez_compressed(
        path, imgs=grid.images(idx)[:, 0].numpy(), latents_classes=classes, latents_values=classes.astype(float)
    )
    return grid


def test_a_dsprites_file_is_read_with_its_factors(tmp_path):
    grid = _dsprites_like(tmp_path / "dsprites.npz")
    d = prepare(build_section("data", {"name": str(tmp_path / "dsprites.npz"), "val_size": 20}))
    truth = d.ground_truth
    assert (
        isinstance(d, RenderedData)
        and truth.sizes == grid.sizes
        and truth.names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    )
    rows = np.array([0, 5, 71, len(grid) - 1])
    assert np.array_equal(truth.codes(rows), grid.codes(rows)) and torch.equal(
        truth.images(rows), grid.images(rows).float()
    )
    assert (
        d.levels == 2
        and not d.dynamic_binarize
        and torch.equal(d.x_train[torch.tensor([0, 1])], truth.images(d.x_train.index[:2]))
    )
    rng = np.random.default_rng(0)
    fixed = truth.draw_fixed(2, 50, rng)
    assert (
        len(set(truth.codes(fixed)[:, 2])) == 1 and len(set(truth.codes(fixed)[:, 3])) > 1
    )  # one factor held, the rest vary


def test_an_npz_of_images_and_factors_of_any_values(tmp_path):
    rng = np.random.default_rng(0)
    factors = np.c_[rng.choice([-1.5, 0.25, 7.0], 300), rng.integers(10, 13, 300)]  # values, not codes
    x = rng.integers(0, 256, (300, 6, 6, 3), dtype=np.uint8)  # channels last
    np.savez(tmp_path / "own.npz", x=x, factors=factors)
    d = prepare(build_section("data", {"name": str(tmp_path / "own.npz"), "val_size": 30, "binarize": "dynamic"}))
    truth = d.ground_truth
    assert (
        truth.sizes == (3, 3)
        and d.shape == (3, 6, 6)
        and truth.codes(np.array([0]))[0, 0] == [-1.5, 0.25, 7.0].index(factors[0, 0])
    )
    assert torch.allclose(truth.images(np.array([4])), torch.from_numpy(x[4].transpose(2, 0, 1)).float()[None] / 255)
    assert d.dynamic_binarize and set(d.x_test.unique().tolist()) <= {
        0.0,
        1.0,
    }  # 8-bit images binarised like any others
    groups = truth.draw_fixed(1, 40, rng)
    assert len(set(truth.codes(groups)[:, 1])) == 1
    np.savez(tmp_path / "bad.npz", x=x, factors=factors[:10])
    with pytest.raises(VaekitError, match="factors: expected an \\(N, F\\) array for 300 images"):
        prepare(build_section("data", {"name": str(tmp_path / "bad.npz")}))
