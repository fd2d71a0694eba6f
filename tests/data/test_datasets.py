"""Fashion-MNIST and CIFAR-10 by name, on small generated files in their real formats (gzipped IDX;
CIFAR's pickled 'python version' batches and its tar.gz): every route, the checksums, the safe
unpickler, and a model trained on each."""

import contextlib
import dataclasses
import functools
import gzip
import hashlib
import http.server
import io
import pickle
import tarfile
import threading

import numpy as np
import pytest

from test_mnist import idx_bytes
from vaekit.cli import main
from vaekit.data import named as datasets
from vaekit.errors import VaekitError

N_TRAIN, N_TEST = 50, 20


def _use_spec(monkeypatch, attr, **changes):
    """Point the dataset `attr` (FASHION, CIFAR10, CELEBA) at a spec with `changes`; return it."""
    spec = dataclasses.replace(getattr(datasets, attr), **changes)
    monkeypatch.setattr(datasets, attr, spec)
    monkeypatch.setitem(datasets.SPECS, spec.name, spec)
    return spec


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


@pytest.fixture
def fashion(monkeypatch):
    """Small Fashion-MNIST-format blobs, and the spec patched to their sizes and checksums."""
    rng = np.random.default_rng(1)
    arrays = {
        "x_train": rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, N_TRAIN).astype(np.uint8),
        "x_test": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, N_TEST).astype(np.uint8),
    }
    names = {
        "x_train": "train-images-idx3-ubyte.gz",
        "y_train": "train-labels-idx1-ubyte.gz",
        "x_test": "t10k-images-idx3-ubyte.gz",
        "y_test": "t10k-labels-idx1-ubyte.gz",
    }
    blobs = {names[k]: gzip.compress(idx_bytes(a)) for k, a in arrays.items()}
    _use_spec(
        monkeypatch,
        "FASHION",
        files={n: _md5(b) for n, b in blobs.items()},
        shapes={k: a.shape for k, a in arrays.items()},
    )
    return arrays, blobs


def _cifar_batch(rng, n, protocol=2):
    """A batch as CIFAR's files hold it: a protocol-2 pickle of a dict (the originals come from Python 2)."""
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, n)
    blob = pickle.dumps(
        {
            "batch_label": "fake",
            "data": x.reshape(n, 3072),
            "labels": [int(v) for v in y],
            "filenames": [f"{i}.png" for i in range(n)],
        },
        protocol=protocol,
    )
    return x.transpose(0, 2, 3, 1), y.astype(np.uint8), blob


@pytest.fixture
def cifar(monkeypatch):
    rng = np.random.default_rng(2)
    parts = {f"data_batch_{i}": _cifar_batch(rng, 10, protocol=2 if i % 2 else 4) for i in range(1, 6)}
    parts["test_batch"] = _cifar_batch(rng, N_TEST)
    _use_spec(
        monkeypatch,
        "CIFAR10",
        files={n: _md5(b) for n, (_, _, b) in parts.items()},
        shapes={"x_train": (50, 32, 32, 3), "y_train": (50,), "x_test": (N_TEST, 32, 32, 3), "y_test": (N_TEST,)},
    )
    arrays = {
        "x_train": np.concatenate([parts[f"data_batch_{i}"][0] for i in range(1, 6)]),
        "y_train": np.concatenate([parts[f"data_batch_{i}"][1] for i in range(1, 6)]),
        "x_test": parts["test_batch"][0],
        "y_test": parts["test_batch"][1],
    }
    blobs = {n: b for n, (_, _, b) in parts.items()}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for n, b in blobs.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{n}")
            info.size = len(b)
            tar.addfile(info, io.BytesIO(b))
        evil = tarfile.TarInfo("../escaped.txt")  # a member that would land outside: never extracted
        evil.size = 4
        tar.addfile(evil, io.BytesIO(b"evil"))
    archive = buf.getvalue()
    monkeypatch.setattr(datasets, "CIFAR10_ARCHIVE", ("cifar-10-python.tar.gz", _md5(archive)))
    return arrays, blobs, archive


def _same(got, arrays):
    assert set(got) == set(arrays)
    for k in arrays:
        np.testing.assert_array_equal(got[k], arrays[k], err_msg=k)


@pytest.mark.parametrize("layout", [".", "FashionMNIST/raw", "unpacked"])
def test_fashion_from_user_files(tmp_path, fashion, layout):
    arrays, blobs = fashion
    folder = tmp_path / ("." if layout == "unpacked" else layout)
    folder.mkdir(parents=True, exist_ok=True)
    for n, b in blobs.items():
        if layout == "unpacked":
            (folder / n[:-3]).write_bytes(gzip.decompress(b))
        else:
            (folder / n).write_bytes(b)
    _same(datasets.load_dataset("fashion-mnist", tmp_path), arrays)
    _same(datasets.load_dataset("Fashion_MNIST"), arrays)  # and from the cache, by any spelling


def test_fashion_checksum_and_shape_refused(tmp_path, fashion):
    arrays, blobs = fashion
    for n, b in blobs.items():
        (tmp_path / n).write_bytes(b)
    name = "t10k-labels-idx1-ubyte.gz"
    (tmp_path / name).write_bytes(gzip.compress(idx_bytes(arrays["y_test"][:-1])))
    with pytest.raises(VaekitError, match=f"{name}': MD5 does not match the published fashion-mnist file"):
        datasets.load_dataset("fashion-mnist", tmp_path)
    (tmp_path / name).unlink()
    (tmp_path / name[:-3]).write_bytes(idx_bytes(arrays["y_test"][:-1]))  # unpacked: no checksum, but the shape
    with pytest.raises(VaekitError, match=r"'y_test' has shape \(19,\), fashion-mnist has \(20,\)"):
        datasets.load_dataset("fashion-mnist", tmp_path)


def test_keras_cache_route(tmp_path, fashion, monkeypatch):
    arrays, blobs = fashion
    home = tmp_path / "home"
    folder = home / ".keras" / "datasets" / "fashion-mnist"
    folder.mkdir(parents=True)
    for n, b in blobs.items():
        (folder / n).write_bytes(b)
    monkeypatch.setenv("HOME", str(home))
    _same(datasets.load_dataset("fashion-mnist", download=False), arrays)


@contextlib.contextmanager
def _serving(root):
    """An HTTP server over `root` on loopback for the duration; yields its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()


def test_fashion_download_checks_each_file(tmp_path, fashion, monkeypatch):
    arrays, blobs = fashion
    (tmp_path / "good").mkdir()
    (tmp_path / "bad").mkdir()
    for n, b in blobs.items():
        (tmp_path / "good" / n).write_bytes(b)
        (tmp_path / "bad" / n).write_bytes(b[:-5])  # a mirror serving damaged files
    with _serving(tmp_path) as base:
        _use_spec(monkeypatch, "FASHION", urls=(base + "bad/", base + "good/"))
        _same(datasets.load_dataset("fashion-mnist", progress=False), arrays)


def test_unreachable_source_says_where_to_put_files(fashion, monkeypatch, capsys):
    _use_spec(monkeypatch, "FASHION", urls=("http://127.0.0.1:9/",))
    assert main(["data", "fetch", "fashion-mnist"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "could not acquire fashion-mnist" in err and "by hand" in err and "--data-dir" in err


@pytest.mark.parametrize("how", ["folder", "torchvision", "archive"])
def test_cifar_routes(tmp_path, cifar, how):
    arrays, blobs, archive = cifar
    if how == "archive":
        (tmp_path / "cifar-10-python.tar.gz").write_bytes(archive)
    else:
        folder = tmp_path / ("cifar-10-batches-py" if how == "torchvision" else ".")
        folder.mkdir(exist_ok=True)
        for n, b in blobs.items():
            (folder / n).write_bytes(b)
    _same(datasets.load_dataset("cifar10", tmp_path), arrays)
    assert not (tmp_path.parent / "escaped.txt").exists()


def test_cifar_download(tmp_path, cifar, monkeypatch):
    arrays, blobs, archive = cifar
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(archive)
    with _serving(tmp_path) as base:
        _use_spec(monkeypatch, "CIFAR10", urls=(base + "missing.tar.gz", base + "cifar-10-python.tar.gz"))
        _same(datasets.load_dataset("cifar-10", progress=False), arrays)


def test_crafted_cifar_batch_never_runs(tmp_path, cifar, monkeypatch):
    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "PWNED"), "w"))

    arrays, blobs, _ = cifar
    blob = pickle.dumps({"data": Payload(), "labels": [0]}, protocol=2)
    for n, b in blobs.items():
        (tmp_path / n).write_bytes(blob if n == "data_batch_3" else b)
    _use_spec(
        monkeypatch, "CIFAR10", files={**datasets.CIFAR10.files, "data_batch_3": _md5(blob)}
    )  # even if its checksum matched
    with pytest.raises(VaekitError, match="cannot read CIFAR batch .*data_batch_3.*only numpy arrays are allowed"):
        datasets.load_dataset("cifar10", tmp_path)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("name", ["fashion-mnist", "cifar10"])
def test_train_on_each_dataset_by_name(tmp_path, fashion, cifar, name, capsys):
    folder = tmp_path / "files"
    folder.mkdir()
    for n, b in (fashion[1] if name == "fashion-mnist" else cifar[1]).items():
        (folder / n).write_bytes(b)
    arch = "mlp" if name == "fashion-mnist" else "conv"
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--set",
            f"data.name={name}",
            "--set",
            f"data.data_dir={folder}",
            "--set",
            "data.val_size=10",
            "--set",
            f"model.arch={arch}",
            "--set",
            "model.channels=[8, 16]",
            "--set",
            "train.epochs=1",
            "--set",
            "train.batch_size=16",
            "--set",
            "train.eval_k=5",
            "--set",
            "data.dequantize=uniform",
            "--set",
            "model.likelihood=gaussian_shared",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    cfg = __import__("json").loads((out / "config.json").read_text())
    assert cfg["data"]["name"] == name  # a dataset name is recorded as a name, not a path
    shape = (1, 28, 28) if name == "fashion-mnist" else (3, 32, 32)
    assert __import__("json").loads((out / "model" / "config.json").read_text())["shape"] == list(shape)


def test_cifar10_bench_runs_on_present_data(tmp_path, cifar, capsys):
    """bench/cifar10.py end to end on the generated files, at a toy size (uniform random pixels: >= 8 bits/dim)."""
    import runpy
    import sys

    folder = tmp_path / "files"
    folder.mkdir()
    for n, b in cifar[1].items():
        (folder / n).write_bytes(b)
    bench = runpy.run_path(str(__import__("pathlib").Path(__file__).parents[2] / "bench" / "cifar10.py"))
    out = tmp_path / "bench"
    code = bench["main"](
        [
            "--minutes",
            "0.05",
            "--k",
            "3",
            "--data-dir",
            str(folder),
            "--out",
            str(out),
            "--threads",
            "1",
            "--set",
            "data.val_size=10",
            "--set",
            "model.channels=[8]",
            "--set",
            "model.depth=1",
            "--set",
            "model.latent_dim=4",
            "--set",
            "train.epochs=1",
            "--set",
            "train.batch_size=25",
        ]
    )
    text = capsys.readouterr().out
    assert code == 0 and "bits/dim" in text
    summary = __import__("json").loads((out / "bench.json").read_text())
    assert 7.5 < summary["bits_per_dim"] < 16 and summary["bits_per_dim"] <= summary["elbo_bits_per_dim"] + 0.5
    assert bench["main"](["--data-dir", str(tmp_path / "nothing_here")]) == 2  # absent data: a clear refusal
    sys.stdout.flush()


@pytest.fixture
def celeba(tmp_path, monkeypatch):
    """12 aligned-CelebA-format JPEGs (178x218), the partition file (8 train, 2 val, 2 test) and the zip."""
    import zipfile

    from PIL import Image

    rng = np.random.default_rng(3)
    src = tmp_path / "celeba_src"
    (src / "img_align_celeba").mkdir(parents=True)
    names = [f"{i:06d}.jpg" for i in range(1, 13)]
    for n in names:
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(
            src / "img_align_celeba" / n, quality=90
        )
    part = "".join(f"{n} {0 if i < 8 else (1 if i < 10 else 2)}\n" for i, n in enumerate(names))
    (src / "list_eval_partition.txt").write_text(part)
    with zipfile.ZipFile(tmp_path / "img_align_celeba.zip", "w") as z:
        for n in names:
            z.write(src / "img_align_celeba" / n, f"img_align_celeba/{n}")
        z.writestr("../evil.jpg", b"x")  # never extracted
    _use_spec(
        monkeypatch,
        "CELEBA",
        shapes={"images": (12,)},
        files={
            "img_align_celeba.zip": _md5((tmp_path / "img_align_celeba.zip").read_bytes()),
            "list_eval_partition.txt": _md5(part.encode()),
        },
    )
    return src, tmp_path / "img_align_celeba.zip"


def test_celeba_torchvision_layout_and_zip(tmp_path, celeba):
    import shutil

    src, archive = celeba
    tv = tmp_path / "tv"
    shutil.copytree(src, tv / "celeba")
    files, split = datasets.celeba_files(tv)
    assert [f.name for f in files][:2] == ["000001.jpg", "000002.jpg"] and split.tolist() == [0] * 8 + [1, 1, 2, 2]
    zipped = tmp_path / "zipped"
    zipped.mkdir()
    shutil.copy(archive, zipped)
    shutil.copy(src / "list_eval_partition.txt", zipped)
    files, split = datasets.celeba_files(zipped)  # unpacked once into $VAEKIT_DATA/celeba
    assert len(files) == 12 and files[0].parent == datasets.cache_dir() / "celeba" / "img_align_celeba"
    assert not (datasets.cache_dir() / "evil.jpg").exists() and not (datasets.cache_dir().parent / "evil.jpg").exists()
    assert len(datasets.celeba_files()[0]) == 12  # and found there next time, without --data-dir


def test_celeba_damage_is_named(tmp_path, celeba):
    import shutil

    src, _ = celeba
    d = tmp_path / "d"
    shutil.copytree(src, d)
    (d / "img_align_celeba" / "000005.jpg").unlink()
    with pytest.raises(VaekitError, match=r"lacks '000005.jpg', listed in"):
        datasets.celeba_files(d)
    (d / "list_eval_partition.txt").write_text("000001.jpg 7\n")
    with pytest.raises(VaekitError, match="MD5 does not match the published celeba file"):
        datasets.celeba_files(d)


def test_train_on_celeba_64x64(tmp_path, celeba, capsys):
    src, _ = celeba
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--set",
            "data.name=celeba",
            "--set",
            f"data.data_dir={src}",
            "--set",
            "data.workers=1",
            "--set",
            "model.arch=conv",
            "--set",
            "model.channels=[8, 16]",
            "--set",
            "model.latent_dim=4",
            "--set",
            "model.likelihood=discretized_logistic",
            "--set",
            "train.epochs=1",
            "--set",
            "train.batch_size=4",
            "--set",
            "train.eval_k=3",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    import json

    assert json.loads((out / "model" / "config.json").read_text())["shape"] == [3, 64, 64]
    assert "bits_per_dim" in json.loads((out / "eval.json").read_text())


def test_celeba_unreachable_says_where_to_put_files(celeba, monkeypatch, capsys):
    _use_spec(monkeypatch, "CELEBA", urls=("http://127.0.0.1:9/a", "http://127.0.0.1:9/b"))
    code = main(["train", "--set", "data.name=celeba", "--out", "never", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and "could not acquire celeba" in err and "list_eval_partition.txt" in err
