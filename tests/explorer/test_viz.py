import numpy as np
import torch
from PIL import Image

from vaekit.explorer import pictures as viz


def test_grid_layout():
    rows = [torch.ones(3, 1, 4, 5), torch.zeros(2, 1, 4, 5)]
    a = viz.grid_array(rows, pad=1)
    assert a.shape == (2 * (4 + 1) + 1, 3 * (5 + 1) + 1, 1)
    assert a[1:5, 1:6].min() == 255 and a[6:10, 1:6].max() == 0  # first row white, second black


def test_pngs(tmp_path):
    imgs = torch.rand(10, 3, 6, 6)
    p = viz.image_grid(imgs, tmp_path / "g.png", nrow=5, scale=2)
    im = Image.open(p)
    assert im.size == ((5 * 8 + 2) * 2, (2 * 8 + 2) * 2) and im.mode == "RGB"
    # the PNG is the grid, each pixel drawn 2 x 2
    grid = viz.grid_array(list(imgs.split(5)))
    assert np.array_equal(np.asarray(im)[::2, ::2], grid) and np.array_equal(np.asarray(im)[1::2, 1::2], grid)


def test_a_reconstruction_grid_has_a_row_per_model_and_its_label(tmp_path):
    x = torch.rand(4, 1, 5, 5)
    one = np.asarray(Image.open(viz.reconstruction_grid(x, {"a": x}, tmp_path / "r1.png")))
    two = np.asarray(Image.open(viz.reconstruction_grid(x, {"a": x, "b": 1 - x}, tmp_path / "r2.png")))
    row = 2 * (5 + 2)  # a row of 5-pixel images with 2 pixels of padding, drawn at scale 2
    assert two.shape[0] - one.shape[0] == row and two.shape[1] == one.shape[1]
    assert one.shape[1] > 2 * (4 * (5 + 2) + 2)  # the labels take a column left of the images
    assert not np.array_equal(two[: one.shape[0]][-row:], two[-row:])  # the rows differ as x and 1 - x do


def test_the_manifold_grid_decodes_codes_at_gaussian_quantiles(tmp_path):
    """Cell (r, c) decodes z = (q_c, q_(n-1-r)); with q symmetric, sigmoid(z_1 + z_2) is 1/2 on the
    diagonal and brightest at the top right."""
    n = 4
    decode = lambda z: torch.sigmoid(z.sum(1)).view(-1, 1, 1, 1).expand(-1, 1, 3, 3)
    a = np.asarray(Image.open(viz.manifold_grid(decode, tmp_path / "m.png", n=n, scale=1)))
    cell = lambda r, c: a[2 + r * 5 : 2 + r * 5 + 3, 2 + c * 5 : 2 + c * 5 + 3]  # 3-pixel images, 2 of padding
    assert all(abs(int(cell(k, k).mean()) - 128) <= 1 for k in range(n))
    assert cell(0, n - 1).min() > 200 and cell(n - 1, 0).max() < 55


def test_plots_draw_one_panel_per_run(tmp_path):
    h = [{"epoch": 1, "train_loss": 2.0, "val_loss": 2.1}, {"epoch": 2, "train_loss": 1.0, "val_loss": 1.2}]
    one = Image.open(viz.training_curves({"r": h}, tmp_path / "c1.png"))
    two = Image.open(viz.training_curves({"r": h, "s": h}, tmp_path / "c2.png"))
    assert two.size[0] > 1.8 * one.size[0] and two.size[1] == one.size[1]
    maps = viz.latent_maps({"m": (torch.randn(50, 2), torch.randint(0, 10, (50,)))}, tmp_path / "l.png")
    colours = np.unique(np.asarray(Image.open(maps).convert("RGB")).reshape(-1, 3), axis=0)
    assert len(colours) > 10  # points in several class colours, not a blank canvas


def test_interpolation_paths():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    lin = viz.interpolate_codes(a, b, 5)
    assert torch.equal(lin[0], a) and torch.equal(lin[-1], b) and torch.allclose(lin[2], (a + b) / 2)
    s = viz.interpolate_codes(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), 7, "slerp")
    assert torch.allclose(s.norm(dim=1), torch.ones(7), atol=1e-6)  # stays on the circle
    assert torch.allclose(s[-1], torch.tensor([0.0, 1.0]), atol=1e-6)
