"""A corpus of broken inputs, generated here, each fed to the `vaekit` command.

Every case must end with one line on stderr that names the file, key or value, exit code 2, and no
run directory (or output file) left behind."""

import errno
import gzip
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from conftest import digit_like
from vaekit.cli import main


def _png(path, size=(8, 8), mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, 128).save(path)
    return path


def _idx(shape, n_bytes=None, magic=b"\x00\x00\x08"):
    data = np.arange(int(np.prod(shape)), dtype=np.uint8).tobytes()
    raw = magic + bytes([len(shape)]) + b"".join(int(s).to_bytes(4, "big") for s in shape) + data
    return raw if n_bytes is None else raw[:n_bytes]


def _npz_bytes(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _corpus(d):
    """(name, path or None, extra --set overrides, fragment the message must hold)."""
    x, y = digit_like(60)
    good_npz = _npz_bytes(x=x, y=y)
    good_npy = io.BytesIO()
    np.save(good_npy, x)
    good_npy = good_npy.getvalue()
    cases = []

    def file(name, content, fragment=None, sets=()):
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        cases.append((name, p, list(sets), fragment or str(p)))

    # IDX
    file(
        "trunc-idx3-ubyte", _idx((10, 8, 8), n_bytes=200), "header says (10, 8, 8) = 640 bytes of data, file holds 184"
    )
    file("magic-idx3-ubyte", _idx((10, 8, 8), magic=b"\x01\x02\x08"), "bad magic number")
    file("type-idx3-ubyte", _idx((10, 8, 8), magic=b"\x00\x00\x0d"), "element type 0x0d")
    file("count-idx3-ubyte", _idx((10, 8, 8)) + b"\x00" * 64, "file holds 704")
    file("header-idx3-ubyte", b"\x00\x00\x08\x03\x00\x00", "truncated header")
    file("gz-idx3-ubyte.gz", gzip.compress(_idx((10, 8, 8)))[:30])
    # npz / npy
    file("trunc.npz", good_npz[: len(good_npz) // 2])
    file("garbage.npz", os.urandom(300))
    file("nokey.npz", _npz_bytes(images=x), "no data array; expected key 'x_train'")
    file("objects.npz", _npz_bytes(x=np.array([{"a": 1}, None], dtype=object)))
    file("trunc.npy", good_npy[:100])
    file("header.npy", b"\x93NUMPY\x01\x00\xff\xff" + b"{" * 40)
    file("text.npy", "just words")
    file(
        "strings.npy",
        (lambda b: (np.save(b, np.array([["a", "b"], ["c", "d"]])), b.getvalue())[1])(io.BytesIO()),
        "dtype <U1 is not numeric",
    )
    file("onedim.npy", (lambda b: (np.save(b, np.arange(10.0)), b.getvalue())[1])(io.BytesIO()), "data of shape (10,)")
    nan = x.astype(np.float32) / 255
    nan[37, 3, 3] = np.nan
    file("nan.npz", _npz_bytes(x=nan), "sample 37 holds NaN or Inf")
    inf = nan.copy()
    inf[37, 3, 3] = 0
    inf[12, 0, 1] = -np.inf
    file("inf.npz", _npz_bytes(x=inf), "sample 12 holds NaN or Inf")
    file("labels.npz", _npz_bytes(x=x, y=y[:50]), "50 labels for 60 examples")
    file("testshape.npz", _npz_bytes(x_train=x, y_train=y, x_test=x[:, :4], y_test=y), "test shape")
    # CSV
    file("ragged.csv", "1,2,3\n4,5\n6,7,8\n", "row 2: 2 columns, expected 3")
    file("words.csv", "1,2,3\n4,five,6\n", "row 2: non-numeric cell")
    file("empty.csv", "", "is empty")
    file("header_only.csv", "a,b,c\n", "has no data rows")
    file("binary.csv", bytes(range(256)) * 4)
    file("nan.csv", "1,2\n3,nan\n5,6\n", "sample 1 holds NaN or Inf")
    # images
    _png(d / "mixed_size" / "a.png")
    _png(d / "mixed_size" / "b.png", size=(9, 8))
    cases.append(("mixed sizes", d / "mixed_size", [], "has shape (8, 9)"))
    _png(d / "mixed_mode" / "a.png")
    _png(d / "mixed_mode" / "b.png", mode="RGB")
    cases.append(("mixed modes", d / "mixed_mode", [], "set data.image_size = [H, W] to resize (and data.grayscale"))
    (d / "empty_folder").mkdir()
    cases.append(("empty folder", d / "empty_folder", [], "holds no images"))
    _png(d / "corrupt_png" / "a.png")
    raw = (d / "corrupt_png" / "a.png").read_bytes()
    (d / "corrupt_png" / "b.png").write_bytes(raw[: len(raw) // 2])
    cases.append(("truncated png", d / "corrupt_png", [], str(d / "corrupt_png" / "b.png")))
    import struct
    import zlib

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    for side in (12000, 20000):  # a PNG header claiming 144M / 400M pixels: PIL's warning and error sizes
        bomb = (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b"")
        )
        (d / f"bomb{side}").mkdir(parents=True)
        (d / f"bomb{side}" / "a.png").write_bytes(bomb)
        cases.append((f"decompression bomb {side}", d / f"bomb{side}", [], "could be decompression bomb"))
    _png(d / "fake_png" / "a.png")
    (d / "fake_png" / "b.png").write_text("not an image")
    cases.append(("text named .png", d / "fake_png", [], str(d / "fake_png" / "b.png")))
    # values outside what the likelihood needs
    file(
        "signed.csv",
        "\n".join(f"{i - 30},{i}" for i in range(60)),
        "needs data in [0, 1], found [-1.69",
        sets=["data.scaling=standard", "model.likelihood=continuous_bernoulli"],
    )
    file("grey.npz", _npz_bytes(x=x), "bernoulli' on non-binary values", sets=["model.likelihood=bernoulli"])
    file(
        "float_for_logistic.npz",
        _npz_bytes(x=x.astype(np.float32) / 255),
        "not 8-bit",
        sets=["model.likelihood=discretized_logistic"],
    )
    # data whose values overflow float32 training arithmetic (it made training diverge at its first
    # step): refused when it is read, naming the first such sample
    file(
        "huge.csv",
        "\n".join(f"{1e30 * (i % 7)},{-2e30 * (i % 3)}" for i in range(60)),
        "sample 1 holds 2e+30; values beyond ±1.8e+19 overflow",
        sets=["data.scaling=none", "model.likelihood=gaussian"],
    )
    # config keys, types and sizes (with good data)
    good = d / "good.npz"
    good.write_bytes(good_npz)
    for sets, fragment in (
        (["train.epoch=3"], "unknown config key 'train.epoch'"),
        (["train.epochs=three"], "config key 'train.epochs': got 'three', expected an integer"),
        (["train.epochs=2.5"], "config key 'train.epochs': got 2.5"),
        (["train.batch_size=0"], "config key 'train.batch_size': got 0, must be > 0"),
        (["model.hidden=[32, -1]"], "config key 'model.hidden': got [32, -1], every size must be > 0"),
        (["model.latent_dim=-2"], "config key 'model.latent_dim': got -2, must be > 0"),
        (["train.lr=nan"], "config key 'train.lr': got nan, must be a finite number"),
        (["train.keep_checkpoints=0"], "config key 'train.keep_checkpoints'"),
        (["train.on_nan=ignore"], "config key 'train.on_nan': got 'ignore'"),
        (["data.image_size=[8]"], "expected [height, width]"),
        (["oops.key=1"], "section one of data, model, train"),
    ):
        cases.append((" ".join(sets), good, sets, fragment))
    return cases


def _assert_clean_failure(code, err, fragment, out_path):
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("vaekit: error: "), err
    assert "Traceback" not in err
    assert fragment in lines[0], lines[0]
    assert not out_path.exists(), f"left behind: {sorted(p.name for p in out_path.iterdir())}"


def test_broken_files_get_one_line_and_no_run_directory(tmp_path, capsys):
    cases = _corpus(tmp_path / "corpus")
    assert len(cases) >= 40
    for i, (_name, path, sets, fragment) in enumerate(cases):
        out = tmp_path / "runs" / f"r{i}"
        argv = ["train", "--set", f"data.name={path}", "--set", "train.epochs=1", "--quiet", "--out", str(out)]
        for s in sets:
            argv += ["--set", s]
        code = main(argv)
        _assert_clean_failure(code, capsys.readouterr().err, fragment, out)


@pytest.mark.parametrize(
    "name, mutate, fragment",
    [
        ("truncated", lambda b: b[:-100], "header says (60, 28, 28)"),
        ("bad magic", lambda b: b"\x08\x03" + b[2:], "bad magic number"),
        ("count mismatch", lambda b: b[:4] + (59).to_bytes(4, "big") + b[8:], "header says (59, 28, 28)"),
    ],
)
def test_broken_mnist_idx_files(tmp_path, capsys, name, mutate, fragment):
    from test_mnist import idx_bytes  # the same IDX writer the MNIST tests use

    d = tmp_path / "mnist"
    d.mkdir()
    files = {
        "train-images-idx3-ubyte": np.zeros((60, 28, 28), np.uint8),
        "train-labels-idx1-ubyte": np.zeros(60, np.uint8),
        "t10k-images-idx3-ubyte": np.zeros((10, 28, 28), np.uint8),
        "t10k-labels-idx1-ubyte": np.zeros(10, np.uint8),
    }
    for f, a in files.items():
        raw = idx_bytes(a)
        (d / f).write_bytes(mutate(raw) if f == "train-images-idx3-ubyte" else raw)
    out = tmp_path / "run"
    code = main(["train", "--set", f"data.data_dir={d}", "--out", str(out), "--quiet"])
    _assert_clean_failure(code, capsys.readouterr().err, fragment, out)


def test_unwritable_and_impossible_output_directories(tmp_path, images_npz, capsys):
    (tmp_path / "file").write_text("x")
    for out, fragment in ((tmp_path / "file" / "run", "is not a folder"), ("/proc/vaekit-test/run", "is not writable")):
        code = main(["train", "--set", f"data.name={images_npz}", "--out", str(out), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and fragment in err, err
    if os.geteuid() != 0:  # permission bits do not stop root
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            code = main(["train", "--set", f"data.name={images_npz}", "--out", str(ro / "run"), "--quiet"])
            _assert_clean_failure(code, capsys.readouterr().err, "is not writable", ro / "run")
        finally:
            ro.chmod(0o700)


def test_unreadable_data_file(tmp_path, images_npz, capsys, monkeypatch):
    images_npz.chmod(0)
    if os.geteuid() == 0:  # root reads files whatever their permission bits: have the read fail as it would
        real = np.load

        def denied(path, *a, **k):
            if str(path) == str(images_npz):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real(path, *a, **k)

        monkeypatch.setattr(np, "load", denied)
    out = tmp_path / "run"
    code = main(["train", "--set", f"data.name={images_npz}", "--out", str(out), "--quiet"])
    _assert_clean_failure(code, capsys.readouterr().err, str(images_npz), out)


def test_full_disk_before_the_first_checkpoint(tmp_path, images_npz, capsys, monkeypatch):
    """ENOSPC from the filesystem while the run starts: one line, and the run directory is gone."""
    import vaekit.training.checkpoints as C

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "run" / "config.json"))

    monkeypatch.setattr(C, "write_text_durable", full)
    out = tmp_path / "run"
    code = main(["train", "--set", f"data.name={images_npz}", "--set", "train.epochs=1", "--out", str(out), "--quiet"])
    _assert_clean_failure(code, capsys.readouterr().err, "No space left on device writing", out)


def test_full_disk_mid_run_keeps_the_last_checkpoint(tmp_path, images_npz, capsys, monkeypatch):
    import vaekit.training.checkpoints as C

    real, calls = C.save_tensors, {"n": 0}

    def fills_up(tensors, path):
        calls["n"] += 1
        if calls["n"] > 3:  # model/ and the first checkpoint fit; the disk is full after that
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(tensors, path)

    monkeypatch.setattr(C, "save_tensors", fills_up)
    out = tmp_path / "run"
    code = main(["train", "--set", f"data.name={images_npz}", "--set", "train.epochs=3", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len([ln for ln in err if ln.startswith("vaekit: error")]) == 1
    assert "No space left on device" in err[-1] and "--resume" in err[-1]
    assert [p.name for p in (out / "checkpoints").iterdir()] == [
        "step-000000003"
    ]  # epoch 1 (3 steps): intact, no temporary left
    monkeypatch.setattr(C, "save_tensors", real)
    assert main(["train", "--resume", str(out), "--quiet"]) == 0


def _model_dir(tmp_path):
    import torch

    from vaekit.config import ModelConfig
    from vaekit.models import build_model
    from vaekit.training.checkpoints import save_pretrained

    torch.manual_seed(0)
    d = tmp_path / "model"
    save_pretrained(build_model(ModelConfig(name="vae", latent_dim=2, hidden=[16]), (1, 8, 8)), d)
    return d


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda m: {**m, "config": {**m["config"], "hidden": [17]}}, "do not match its config"),
        (lambda m: {**m, "config": {**m["config"], "latent_dim": 0}}, "config key 'model.latent_dim': got 0"),
        (lambda m: {**m, "config": {**m["config"], "data_dir": "/etc"}}, "unknown config key 'model.data_dir'"),
        (lambda m: {**m, "format_version": 7}, "uses model format 7; this vaekit reads up to 1"),
        (lambda m: {**m, "model": "os.system"}, "key 'model' is 'os.system'"),
        (lambda m: {**m, "shape": [1, -8, 8]}, "key 'shape' is [1, -8, 8]"),
        (lambda m: {**m, "loader": "pickle"}, "unknown key 'loader'"),
        (lambda m: [m], "is not a vaekit model config"),
    ],
)
def test_model_directory_that_does_not_hold_together(tmp_path, capsys, edit, fragment):
    d = _model_dir(tmp_path)
    meta = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps(edit(meta)))
    out = tmp_path / "s.png"
    code = main(["sample", str(d), "--out", str(out)])
    _assert_clean_failure(code, capsys.readouterr().err, fragment, out)


@pytest.mark.parametrize(
    "damage, fragment",
    [
        (
            lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:-50]),
            "cannot read weights",
        ),
        (lambda d: (d / "model.safetensors").unlink(), "cannot read weights"),
        (lambda d: (d / "config.json").write_text("{not json"), "cannot read"),
        (lambda d: (d / "config.json").write_bytes(b"\xff\xfe\x00"), "cannot read"),
    ],
)
def test_damaged_model_directory(tmp_path, capsys, damage, fragment):
    d = _model_dir(tmp_path)
    damage(d)
    out = tmp_path / "s.png"
    code = main(["sample", str(d), "--out", str(out)])
    _assert_clean_failure(code, capsys.readouterr().err, fragment, out)
