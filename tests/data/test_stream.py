"""Image folders streamed from disk by DataLoader workers: the same splits, batches and trained
weights as the folder read into memory; corrupt files named in one line; exact resume."""

import numpy as np
import pytest
import torch
from PIL import Image

from vaekit.cli import main
from vaekit.config import DataConfig, ModelConfig, TrainConfig
from vaekit.data.prepared import StreamData, prepare
from vaekit.models import build_model
from vaekit.training.loop import fit


@pytest.fixture
def folder(tmp_path):
    """150 RGB images of 10x12 in two class folders."""
    rng = np.random.default_rng(0)
    for i in range(150):
        d = tmp_path / "imgs" / ("cats" if i % 3 else "dogs")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(d / f"{i:04d}.png")
    return tmp_path / "imgs"


def _cfg(folder, **kw):
    return DataConfig(name=str(folder), val_size=20, image_size=[8, 8], crop=[10, 10], **kw)


def test_stream_matches_memory(folder):
    mem = prepare(_cfg(folder))
    st = prepare(_cfg(folder, stream=True, workers=2))
    assert isinstance(st, StreamData) and not isinstance(mem, StreamData)
    assert st.shape == mem.shape == (3, 8, 8) and st.n_train == mem.n_train == 115
    for a, b in ((st.x_val, mem.x_val), (st.x_test, mem.x_test), (st.y_train, mem.y_train), (st.y_test, mem.y_test)):
        assert torch.equal(a, b)
    idx = [torch.tensor([3, 1, 4]), torch.tensor([100, 5])]
    for (xs, ys), (xm, ym) in zip(st.iterate(idx), mem.iterate(idx)):
        assert torch.equal(xs, xm) and torch.equal(ys, ym)


def _model():
    torch.manual_seed(0)
    return build_model(ModelConfig(name="vae", latent_dim=3, hidden=[16], likelihood="gaussian_shared"), (3, 8, 8))


def test_training_on_a_stream_equals_training_in_memory(folder, tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=16, progress=False, checkpoint_every=5)
    mem = fit(_model(), prepare(_cfg(folder, dequantize="uniform")), cfg)
    st = fit(_model(), prepare(_cfg(folder, dequantize="uniform", stream=True, workers=2)), cfg, run_dir=tmp_path / "r")
    for (k, a), b in zip(mem.model.state_dict().items(), st.model.state_dict().values()):
        assert torch.equal(a, b), k
    # and a streamed run resumes exactly from a mid-epoch checkpoint
    cfg3 = TrainConfig(epochs=3, batch_size=16, progress=False, checkpoint_every=5)
    straight = fit(_model(), prepare(_cfg(folder, dequantize="uniform", stream=True, workers=0)), cfg3)
    import shutil

    from vaekit.training.checkpoints import checkpoint_dirs

    last = checkpoint_dirs(tmp_path / "r")[-1]
    for p in checkpoint_dirs(tmp_path / "r")[:-1]:
        shutil.rmtree(p)
    assert last.name == "step-000000016"
    resumed = fit(
        _model(), prepare(_cfg(folder, dequantize="uniform", stream=True)), cfg3, run_dir=tmp_path / "r", resume=True
    )
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_corrupt_file_found_by_a_worker_is_one_line(folder, tmp_path, capsys):
    bad = sorted((folder / "cats").iterdir())[40]
    bad.write_bytes(bad.read_bytes()[:60])
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--set",
            f"data.name={folder}",
            "--set",
            "data.stream=true",
            "--set",
            "data.val_size=5",
            "--set",
            "model.likelihood=gaussian_shared",
            "--set",
            "data.dequantize=uniform",
            "--set",
            "train.epochs=1",
            "--set",
            "train.batch_size=8",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"vaekit: error: cannot read image '{bad}'"), err
    assert not out.exists()


def test_stream_refusals(folder, tmp_path, capsys):
    for i, (sets, fragment) in enumerate(
        (
            (["data.binarize=fixed"], "needs the data in memory"),
            (["model.name=pca"], "set data.stream = false"),
            (["data.crop=[11, 11]"], "smaller than data.crop = [11, 11]"),
        )
    ):
        argv = [
            "train",
            "--set",
            f"data.name={folder}",
            "--set",
            "data.stream=true",
            "--out",
            str(tmp_path / f"r{i}"),
            "--quiet",
        ]
        for s in sets:
            argv += ["--set", s]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert fragment in err and err.count("\n") == 1, err
        assert not (tmp_path / f"r{i}").exists()


@pytest.mark.parametrize("arch", ["conv", "resnet"])
def test_conv_and_resnet_vaes_train_on_64x64_rgb(tmp_path, arch):
    """CelebA-style: 80x70 RGB photos, centre crop 64x64, streamed; the model's input is (3, 64, 64)."""
    rng = np.random.default_rng(1)
    d = tmp_path / "faces"
    d.mkdir()
    yy, xx = np.mgrid[0:80, 0:70]
    for i in range(48):
        blob = np.exp(-((yy - 40) ** 2 + (xx - 35) ** 2) / rng.uniform(100, 400))[..., None] * rng.uniform(60, 255, 3)
        Image.fromarray((blob + rng.uniform(0, 20, (80, 70, 3))).clip(0, 255).astype(np.uint8)).save(d / f"{i}.png")
    data = prepare(DataConfig(name=str(d), crop=[64, 64], stream=True, workers=1, val_size=8))
    assert data.shape == (3, 64, 64)
    torch.manual_seed(0)
    model = build_model(
        ModelConfig(name="vae", arch=arch, channels=[8, 16], depth=1, latent_dim=8, likelihood="discretized_logistic"),
        data.shape,
    )
    res = fit(model, data, TrainConfig(epochs=2, batch_size=8, lr=2e-3, progress=False))
    losses = [r["val_loss"] for r in res.history]
    assert losses[-1] < losses[0]
    assert model.sample(2).shape == (2, 3, 64, 64)


def test_the_streamed_training_set_is_the_whole_split_on_disk(folder):
    """x_train of a stream is every training image (read from disk when indexed), not the first
    few held in memory for checks: the VampPrior's pseudo-inputs are drawn from all of it."""
    from vaekit.data.prepared import DiskImages

    mem = prepare(_cfg(folder))
    st = prepare(_cfg(folder, stream=True, workers=0))
    assert isinstance(st.x_train, DiskImages) and len(st.x_train) == st.n_train == len(mem.x_train)
    idx = torch.tensor([0, 114, 57, 57])
    assert torch.equal(st.x_train[idx], mem.x_train[idx])
    assert torch.equal(st.x_check, mem.x_train[: len(st.x_check)])
    vamp = build_model(ModelConfig(name="vae", latent_dim=3, hidden=[16], prior="vamp", prior_components=40), (3, 8, 8))
    torch.manual_seed(0)
    vamp.init_from_data(st.x_train)
    torch.manual_seed(0)
    ref = torch.randint(len(mem.x_train), (40,))
    assert torch.equal(vamp.prior_module.pseudo_inputs.detach(), mem.x_train[ref])
