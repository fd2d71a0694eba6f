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
    viz.reconstruction_grid(torch.rand(4, 1, 5, 5), {"a": torch.rand(4, 1, 5, 5)}, tmp_path / "r.png")
    viz.latent_maps({"m": (torch.randn(50, 2), torch.randint(0, 10, (50,)))}, tmp_path / "l.png")
    viz.manifold_grid(lambda z: torch.sigmoid(z.sum(1)).view(-1, 1, 1, 1).expand(-1, 1, 3, 3), tmp_path / "m.png", n=4)
    viz.training_curves({"r": [{"epoch": 1, "train_loss": 2.0}, {"epoch": 2, "train_loss": 1.0}]}, tmp_path / "c.png")
    for name in ("r", "l", "m", "c"):
        assert np.asarray(Image.open(tmp_path / f"{name}.png")).size > 0


def test_interpolation_paths():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    lin = viz.interpolate_codes(a, b, 5)
    assert torch.equal(lin[0], a) and torch.equal(lin[-1], b) and torch.allclose(lin[2], (a + b) / 2)
    s = viz.interpolate_codes(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), 7, "slerp")
    assert torch.allclose(s.norm(dim=1), torch.ones(7), atol=1e-6)  # stays on the circle
    assert torch.allclose(s[-1], torch.tensor([0.0, 1.0]), atol=1e-6)
