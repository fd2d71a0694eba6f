import numpy as np
import pytest
import torch

from vaekit.config import DataConfig
from vaekit.data.prepared import batches, describe, prepare
from vaekit.errors import VaekitError


def test_npz_images_scaled_and_split(images_npz):
    data = prepare(DataConfig(name=str(images_npz), val_size=50, seed=1))
    assert data.kind == "image" and data.shape == (1, 8, 8)
    assert len(data.x_test) == 30 and len(data.x_val) == 50 and len(data.x_train) == 220
    assert data.x_train.dtype == torch.float32 and 0 <= data.x_train.min() and data.x_train.max() <= 1
    raw = np.load(images_npz)["x"]
    # every prepared example is a raw example / 255, and the three splits are disjoint
    rows = {
        tuple(np.round(r.numpy().ravel() * 255).astype(int)) for r in torch.cat([data.x_train, data.x_val, data.x_test])
    }
    assert len(rows) == len(raw) == {tuple(r.ravel().astype(int)) for r in raw}.__len__()
    assert data.y_train is not None and len(data.y_train) == 220


def test_limit_and_no_val(images_npz):
    data = prepare(DataConfig(name=str(images_npz), val_size=0, limit=100))
    assert len(data.x_train) == 100 and len(data.x_val) == 0


def test_csv_standard_and_minmax(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.normal(5, 3, (200, 4))
    p = tmp_path / "t.csv"
    p.write_text("a,b,c,d\n" + "\n".join(",".join(f"{v:.6f}" for v in r) for r in a))
    std = prepare(DataConfig(name=str(p), val_size=20, scaling="standard"))
    assert std.kind == "vector" and std.shape == (4,)
    assert torch.allclose(std.x_train.mean(0), torch.zeros(4), atol=1e-5)
    assert torch.allclose(std.x_train.std(0, unbiased=False), torch.ones(4), atol=1e-4)
    mm = prepare(DataConfig(name=str(p), val_size=20, scaling="minmax"))
    assert torch.allclose(mm.x_train.min(0).values, torch.zeros(4)) and torch.allclose(
        mm.x_train.max(0).values, torch.ones(4)
    )


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("1,2,3\n4,5\n", "row 2: 2 columns, expected 3"),
        ("1,2\n3,x\n", "row 2: non-numeric cell"),
        ("", "is empty"),
        ("a,b\n", "no data rows"),
    ],
)
def test_csv_errors(tmp_path, text, fragment):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(VaekitError, match=fragment):
        prepare(DataConfig(name=str(p)))


def test_nan_rejected_with_index(tmp_path):
    a = np.ones((10, 3), np.float32)
    a[7, 1] = np.nan
    np.save(tmp_path / "a.npy", a)
    with pytest.raises(VaekitError, match="sample 7 holds NaN or Inf"):
        prepare(DataConfig(name=str(tmp_path / "a.npy")))


def test_corrupt_npy_and_missing(tmp_path):
    (tmp_path / "c.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(VaekitError, match="cannot read"):
        prepare(DataConfig(name=str(tmp_path / "c.npy")))
    with pytest.raises(VaekitError, match=r"neither a dataset name \(mnist, fashion-mnist, cifar10, celeba, shapes\)"):
        prepare(DataConfig(name=str(tmp_path / "nope.npz")))
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(VaekitError, match="unsupported type"):
        prepare(DataConfig(name=str(tmp_path / "f.txt")))


def test_labels_must_match(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 4), np.uint8), y=np.zeros(9))
    with pytest.raises(VaekitError, match="9 labels for 10 examples"):
        prepare(DataConfig(name=str(tmp_path / "d.npz")))


def _png(path, size, mode="L", value=128):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, 0, 255 - value)).save(path)


def test_image_folder_labels_and_resize(tmp_path):
    for cls in ("cat", "dog"):
        for i in range(6):
            _png(tmp_path / "imgs" / cls / f"{i}.png", (10 + i, 12), "RGB", value=20 * i)
    with pytest.raises(VaekitError, match="set data.image_size"):
        prepare(DataConfig(name=str(tmp_path / "imgs")))
    data = prepare(DataConfig(name=str(tmp_path / "imgs"), image_size=[6, 5], val_size=2))
    assert data.shape == (3, 6, 5)
    assert sorted(torch.cat([data.y_train, data.y_val, data.y_test]).tolist()) == [0] * 6 + [1] * 6
    grey = prepare(DataConfig(name=str(tmp_path / "imgs"), image_size=[6, 5], grayscale=True, val_size=0))
    assert grey.shape == (1, 6, 5)


def test_image_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(VaekitError, match="holds no images"):
        prepare(DataConfig(name=str(tmp_path / "empty")))
    _png(tmp_path / "imgs" / "a.png", (4, 4))
    (tmp_path / "imgs" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(VaekitError, match="cannot read image .*b.png"):
        prepare(DataConfig(name=str(tmp_path / "imgs")))


def test_binarisation(images_npz):
    fixed1 = prepare(DataConfig(name=str(images_npz), binarize="fixed", seed=3))
    fixed2 = prepare(DataConfig(name=str(images_npz), binarize="fixed", seed=3))
    assert torch.equal(fixed1.x_train, fixed2.x_train)  # seeded
    assert set(fixed1.x_train.unique().tolist()) <= {0.0, 1.0} and not fixed1.dynamic_binarize
    dyn = prepare(DataConfig(name=str(images_npz), binarize="dynamic"))
    assert dyn.dynamic_binarize and dyn.x_train.unique().numel() > 2  # train stays grey, resampled per batch
    assert set(dyn.x_test.unique().tolist()) <= {0.0, 1.0}  # test binarised once
    # The binarised mean matches the grey value it was drawn from.
    grey = prepare(DataConfig(name=str(images_npz)))
    assert abs(float(fixed1.x_train.mean() - grey.x_train.mean())) < 0.01


def test_binarise_needs_unit_range(tmp_path):
    np.save(tmp_path / "v.npy", np.linspace(-1, 1, 40, dtype=np.float32).reshape(10, 4))
    with pytest.raises(VaekitError, match="binarize needs values in"):
        prepare(DataConfig(name=str(tmp_path / "v.npy"), binarize="fixed", scaling="standard"))


def test_batches_cover_once():
    g = torch.Generator().manual_seed(0)
    idx = torch.cat(list(batches(103, 10, g)))
    assert sorted(idx.tolist()) == list(range(103))
    assert [len(b) for b in batches(103, 10, shuffle=False)][-1] == 3


def test_describe(images_npz):
    info = describe(DataConfig(name=str(images_npz)))
    assert info["shape"] == [1, 8, 8] and info["train_count"] == 300 and info["max"] <= 255
    assert sum(info["labels"].values()) == 300
