"""Data that vaekit refuses: broken IDX, NPZ, NPY, CSV and image files, folders and factor files,
files that are not files, absurd headers and unreachable mirrors. Each is one line on stderr, exit
code 2, no traceback and nothing left behind; the cases are generated here."""

from __future__ import annotations

import errno
import gzip
import io
import math
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import digit_like
from refusals import RNG, SMALL, X, assert_clean_failure, assert_one_line
from vaekit.cli import main


def _png(path, size=(8, 8), mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, 128).save(path)
    return path


def _idx_of_size(shape, n_bytes=None, magic=b"\x00\x00\x08"):
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
        "trunc-idx3-ubyte",
        _idx_of_size((10, 8, 8), n_bytes=200),
        "header says (10, 8, 8) = 640 bytes of data, file holds 184",
    )
    file("magic-idx3-ubyte", _idx_of_size((10, 8, 8), magic=b"\x01\x02\x08"), "bad magic number")
    file("type-idx3-ubyte", _idx_of_size((10, 8, 8), magic=b"\x00\x00\x0d"), "element type 0x0d")
    file("count-idx3-ubyte", _idx_of_size((10, 8, 8)) + b"\x00" * 64, "file holds 704")
    file("header-idx3-ubyte", b"\x00\x00\x08\x03\x00\x00", "truncated header")
    file("gz-idx3-ubyte.gz", gzip.compress(_idx_of_size((10, 8, 8)))[:30])
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


def test_broken_files_get_one_line_and_no_run_directory(tmp_path, capsys):
    cases = _corpus(tmp_path / "corpus")
    assert len(cases) >= 40
    for i, (_name, path, sets, fragment) in enumerate(cases):
        out = tmp_path / "runs" / f"r{i}"
        argv = ["train", "--set", f"data.name={path}", "--set", "train.epochs=1", "--quiet", "--out", str(out)]
        for s in sets:
            argv += ["--set", s]
        code = main(argv)
        assert_clean_failure(code, capsys.readouterr().err, fragment, out)


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
    assert_clean_failure(code, capsys.readouterr().err, fragment, out)


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
    assert_clean_failure(code, capsys.readouterr().err, str(images_npz), out)


def _idx(shape, payload=None, magic=b"\x00\x00\x08", ndim=None, gz=False):
    ndim = len(shape) if ndim is None else ndim
    body = magic + bytes([ndim]) + b"".join(struct.pack(">I", s) for s in shape)
    body += payload if payload is not None else bytes(math.prod(shape) if shape else 0)
    return gzip.compress(body) if gz else body


def _gzip_bomb(declared: int) -> bytes:
    """An IDX header declaring `declared` bytes, then 64 MiB of zeros that compress to 64 KiB: only
    what the header declares (plus one byte) may be inflated."""
    header = b"\x00\x00\x08\x01" + struct.pack(">I", declared)
    return gzip.compress(header + bytes(64 << 20), compresslevel=9)


def data_cases(root):
    """(name, file name, bytes or writer, extra --set options, fragment of the one-line error)."""

    def npz(**arrays):
        def write(path):
            np.savez(path, **arrays)

        return write

    def npy(a):
        def write(path):
            np.save(path, a)

        return write

    cases = [
        ("no examples", "empty.npy", npy(np.zeros((0, 784), np.uint8)), [], "holds no examples"),
        ("no values per example", "nodim.npy", npy(np.zeros((10, 0), np.float32)), [], "each example holds no values"),
        ("no values per image", "noimg.npy", npy(np.zeros((10, 0, 5), np.uint8)), [], "each example holds no values"),
        ("one example", "one.npy", npy(np.zeros((1, 5), np.float32)), [], "both need at least one"),
        ("empty test split", "empty_test.npz", npz(x_train=X, x_test=X[:0]), [], "(test): holds no examples"),
        ("scalar labels", "scalar_y.npz", npz(x=X, y=np.array(3)), [], "labels of shape ()"),
        ("2-D labels", "y2d.npz", npz(x=X, y=np.zeros((60, 2))), [], "labels of shape (60, 2)"),
        ("NaN labels", "nan_y.npz", npz(x=X, y=np.full(60, np.nan)), [], "labels must be whole numbers"),
        ("fractional labels", "frac_y.npz", npz(x=X, y=np.full(60, 0.5)), [], "labels must be whole numbers"),
        ("string labels", "str_y.npz", npz(x=X, y=np.array(["a"] * 60)), [], "are not numbers"),
        ("negative labels", "neg_y.npz", npz(x=X, y=-np.ones(60, int)), [], "labels must be class indices"),
        ("huge labels", "huge_y.npz", npz(x=X, y=np.full(60, 10**12)), [], "labels must be class indices"),
        (
            "test labels of another length",
            "ytest.npz",
            npz(x_train=X, y_train=np.zeros(60, int), x_test=X[:10], y_test=np.zeros(7, int)),
            [],
            "7 labels for 10 examples",
        ),
        ("too few labels", "short_y.npz", npz(x=X, y=np.zeros(59, int)), [], "59 labels for 60 examples"),
        ("float64 1e300", "big64.npy", npy(np.full((50, 4), 1e300)), [], "overflow the float32 arithmetic"),
        (
            "float32 3.3e38",
            "big32.npy",
            npy(np.full((50, 4), -3.3e38, np.float32)),
            [],
            "overflow the float32 arithmetic",
        ),
        (
            "float 1e20 in one sample",
            "one_big.npy",
            npy(np.vstack([X, np.full((1, 4), 1e20, np.float32)])),
            [],
            "sample 60 holds 1e+20",
        ),
        ("one-row CSV", "one_row.csv", b"1,2,3\n", [], "both need at least one"),
        ("header then ragged row", "ragged.csv", b"a,b,c\n1,2\n", [], "ragged.csv"),
        ("IDX with count 0", "zero-idx2-ubyte", _idx((0, 4)), [], "holds no examples"),
        ("IDX with 65 dimensions", "dims-idx1-ubyte", _idx((1,) * 65), [], "65 dimensions"),
        (
            "IDX whose size overflows",
            "huge-idx3-ubyte",
            _idx((2**32 - 1, 2**32 - 1, 2**32 - 1), payload=b""),
            [],
            "at most 17179869184",
        ),
        (
            "IDX gzip bomb, small header",
            "bomb-idx1-ubyte.gz",
            _gzip_bomb(10),
            [],
            "= 10 bytes of data, file holds more",
        ),
        ("IDX gzip bomb, big header", "bomb2-idx1-ubyte.gz", _gzip_bomb(4_000_000_000), [], "file holds 67108864"),
        (
            "IDX garbled gzip",
            "garbled-idx2-ubyte.gz",
            b"\x1f\x8b\x08\x00" + b"garbage" * 10,
            [],
            "cannot read IDX file",
        ),
        ("IDX truncated gzip", "trunc-idx2-ubyte.gz", _idx((10, 4), gz=True)[:30], [], "cannot read IDX file"),
        ("strings", "strings.npy", npy(np.array([["a", "b"]] * 5)), [], "is not numeric"),
        (
            "datetimes",
            "dates.npy",
            npy(np.array([["2020-01-01"] * 2] * 5, dtype="datetime64[D]")),
            [],
            "is not numeric",
        ),
        ("structured", "struct.npy", npy(np.zeros((5, 2), dtype=[("a", "f4"), ("b", "i4")])), [], "is not numeric"),
        ("complex", "complex.npy", npy(np.zeros((5, 2), dtype=np.complex64)), [], "is not numeric"),
    ]
    for i, bad in enumerate([0x00, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]):  # element types other than unsigned byte
        cases.append(
            (
                f"IDX element type {bad:#x}",
                f"type{i}-idx2-ubyte",
                _idx((5, 4), magic=b"\x00\x00" + bytes([bad])),
                [],
                "is not unsigned byte",
            )
        )
    for n in (1, 3, 7, 100):  # headers that promise more than they hold, gzipped and not
        for gz in (False, True):
            cases.append(
                (
                    f"IDX short by {n}{' gz' if gz else ''}",
                    f"short{n}{gz}-idx2-ubyte{'.gz' if gz else ''}",
                    _idx((50, 4), payload=bytes(200 - n), gz=gz),
                    [],
                    "bytes of data, file holds",
                )
            )
            cases.append(
                (
                    f"IDX long by {n}{' gz' if gz else ''}",
                    f"long{n}{gz}-idx2-ubyte{'.gz' if gz else ''}",
                    _idx((50, 4), payload=bytes(200 + n), gz=gz),
                    [],
                    "bytes of data, file holds",
                )
            )
    for i, (key, value) in enumerate(
        [("x", np.full((20, 3), np.inf)), ("x", np.full((20, 3), -np.inf)), ("x", np.full((20, 3), np.nan))]
    ):
        cases.append((f"non-finite {i}", f"nonfinite{i}.npz", npz(**{key: value}), [], "holds NaN or Inf"))
    return cases


def _write(root, name, content):
    path = root / name
    if callable(content):
        content(path)
    else:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize("case", data_cases(None), ids=lambda c: c[0])
def test_bad_data_is_refused_in_one_line(case, tmp_path, capsys):
    name, file, content, sets, fragment = case
    path = _write(tmp_path, file, content)
    out = tmp_path / "run"
    argv = ["train", "--set", f"data.name={path}", *SMALL, "--out", str(out)]
    for s in sets:
        argv += ["--set", s]
    assert_one_line(main(argv), capsys.readouterr().err, fragment)
    assert not out.exists()
    about_splits = ("both need at least one", "7 labels for 10 examples", "(test): holds no examples")
    if file.endswith((".npy", ".npz", "ubyte", ".gz")) and fragment not in about_splits:  # data info reads the same way
        assert_one_line(main(["data", "info", str(path)]), capsys.readouterr().err, "")


def test_a_one_image_folder_is_refused(tmp_path, capsys):
    from PIL import Image

    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "imgs" / "x.png")
    assert_one_line(
        main(["train", "--set", f"data.name={tmp_path / 'imgs'}", *SMALL, "--out", str(tmp_path / "r")]),
        capsys.readouterr().err,
        "both need at least one",
    )
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("kind", ["fifo", "fifo in a folder", "device", "link to a device"])
def test_files_that_are_not_files_are_refused_without_hanging(kind, tmp_path, capsys):
    if kind == "fifo":
        path = tmp_path / "x.npy"
        os.mkfifo(path)
    elif kind == "fifo in a folder":
        path = tmp_path / "imgs"
        path.mkdir()
        os.mkfifo(path / "a.png")
    elif kind == "device":
        path = "/dev/zero"
    else:
        path = tmp_path / "zero.npy"
        path.symlink_to("/dev/zero")
    for argv in (
        ["data", "info", str(path)],
        ["train", "--set", f"data.name={path}", *SMALL, "--out", str(tmp_path / "r")],
    ):
        assert_one_line(main(argv), capsys.readouterr().err, "is not a regular file")
    assert not (tmp_path / "r").exists()


# --- CSV and image-folder mutations ------------------------------------------------------------

_ROWS = "\n".join(",".join(str((i * j) % 7 / 7) for j in range(4)) for i in range(40))


CSVS = [
    ("empty", "", "is empty"),
    ("only newlines", "\n" * 100, "is empty"),
    ("only a header", "a,b,c\n", "has no data rows"),
    ("quoted numbers", '"0.1","0.2"\n' * 40, "non-numeric cell"),
    ("NaN text", _ROWS + "\nnan,0,0,0", "holds NaN or Inf"),
    ("inf text", _ROWS + "\ninf,0,0,0", "holds NaN or Inf"),
    ("1e39", _ROWS + "\n1e39,0,0,0", "does not fit in float32"),
    ("tab separated", _ROWS.replace(",", "\t"), "non-numeric cell"),
    ("semicolons", _ROWS.replace(",", ";"), "non-numeric cell"),
    ("NUL bytes", "\x00\x01\x02" * 50, "has no data rows"),
    ("trailing commas", _ROWS.replace("\n", ",\n") + ",", "non-numeric cell"),
    ("hex numbers", "0x1,0x2\n" * 40, "non-numeric cell"),
    ("empty cells", "0.1,,0.2\n" * 40, "non-numeric cell"),
    ("the header repeated", "a,b\n" * 40, "non-numeric cell"),
    ("letters", "é,0.1\n" * 40, "non-numeric cell"),
    ("ragged after 20 rows", _ROWS + "\n1,2", "2 columns, expected 4"),
]


@pytest.mark.parametrize("name, text, fragment", CSVS, ids=lambda v: str(v)[:20])
def test_bad_csv_files_are_refused(name, text, fragment, tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_text(text)
    assert_one_line(
        main(["train", "--set", f"data.name={path}", *SMALL, "--out", str(tmp_path / "r")]),
        capsys.readouterr().err,
        fragment,
    )
    assert not (tmp_path / "r").exists()


def _png_header(w, h):
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + struct.pack(">II", w, h) + b"\x08\x00\x00\x00\x00" + bytes(4)


def _image(mode, size=(8, 8), **save):
    def write(path):
        from PIL import Image

        Image.new(mode, size).save(path, **save)

    return write


IMAGE_FOLDERS = [
    ("zero-byte png", "z.png", b"", "cannot identify image file"),
    ("text as png", "t.png", b"hello", "cannot identify image file"),
    ("truncated png", "t.png", _png_header(8, 8)[:20], "cannot read image"),
    ("header claims 60000x60000", "h.png", _png_header(60000, 60000), "cannot read image"),
    ("jpeg garbage", "j.jpg", b"\xff\xd8\xff\xe0" + bytes(50), "cannot read image"),
    ("bmp garbage", "b.bmp", b"BM" + b"\xff" * 60, "cannot read image"),
    ("tiff garbage", "b.tif", b"II*\x00" + b"\xff" * 60, "cannot read image"),
    ("webp garbage", "b.webp", b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(20), "cannot read image"),
    ("upper-case suffix garbage", "B.PNG", b"nope", "cannot identify image file"),
    ("another size", "big.png", _image("L", (9, 9)), "has shape (9, 9)"),
    ("1x1 image", "tiny.png", _image("L", (1, 1)), "has shape (1, 1)"),
    ("an RGB image among grey ones", "rgb.png", _image("RGB"), "has shape (8, 8, 3)"),
    ("an RGBA image", "a.png", _image("RGBA"), "has shape (8, 8, 3)"),
    ("a palette image", "p.png", _image("P"), "has shape (8, 8, 3)"),
    ("an animated GIF", "a.gif", _image("P", save_all=True), "has shape (8, 8, 3)"),
    ("a folder named like an image", "x.png", "dir", "is not a regular file (a folder)"),
    ("a link to /dev/null", "n.png", "/dev/null", "is not a regular file"),
    ("a dangling link", "n.png", "/nonexistent-vaekit.png", "does not exist"),
]


@pytest.mark.parametrize("name, file, content, fragment", IMAGE_FOLDERS, ids=lambda v: str(v)[:24])
def test_bad_image_folders_are_refused(name, file, content, fragment, tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(12):
        Image.fromarray(RNG.integers(0, 255, (8, 8), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    if content == "dir":
        (folder / file).mkdir()
    elif isinstance(content, str):
        (folder / file).symlink_to(content)
    else:
        _write(folder, file, content)
    assert_one_line(
        main(["train", "--set", f"data.name={folder}", *SMALL, "--out", str(tmp_path / "r")]),
        capsys.readouterr().err,
        fragment,
    )
    assert not (tmp_path / "r").exists()


# --- the shapes grid and .npz files with factors -------------------------------------------

SHAPES_SETS = [
    (["data.shapes_grid=[3, 6, 40, 32]"], "expected 5 sizes"),
    (["data.shapes_grid=[4, 2, 2, 2, 2]"], "shapes (1-3)"),
    (["data.shapes_grid=[0, 2, 2, 2, 2]"], "every size must be > 0"),
    (["data.shapes_grid=[3, 2, 2, 2, -2]"], "every size must be > 0"),
    (["data.shapes_grid=[3, 100, 100, 100, 100]"], "at most 16,777,216 images"),
    (["data.shapes_grid=['a', 2, 2, 2, 2]"], "data.shapes_grid"),
    (["data.shapes_grid=3"], "data.shapes_grid"),
    (["data.image_size=[0, 16]"], "every size must be > 0"),
    (["data.image_size=[16]"], "expected [height, width]"),
    (["data.image_size=[16, 16, 16]"], "expected [height, width]"),
    (["data.image_size=[100000, 100000]"], "image_size"),
    (["data.image_size=[2, 2]"], "image_size"),
    (["data.binarize=fixed"], "need the data in memory"),
    (["data.dequantize=uniform"], "need the data in memory"),
    (["data.limit=0"], "must be > 0"),
    (["data.test_size=0"], "must be > 0"),
    (["data.val_size=-1"], "must be >= 0"),
    (["data.image_size=[300, 300]"], "each from 8 to 256"),
]


@pytest.mark.parametrize("sets, fragment", SHAPES_SETS, ids=lambda v: str(v)[:40])
def test_bad_shapes_settings_are_one_line(sets, fragment, tmp_path, capsys):
    argv = [
        "train",
        "--set",
        "data.name=shapes",
        "--set",
        "data.shapes_grid=[1, 2, 2, 4, 4]",
        "--set",
        "data.image_size=[16, 16]",
        "--set",
        "train.epochs=1",
        "--set",
        "model.hidden=[8]",
        "--quiet",
        "--out",
        str(tmp_path / "r"),
    ]
    for s in sets:
        argv += ["--set", s]
    assert_one_line(main(argv), capsys.readouterr().err, fragment)
    assert not (tmp_path / "r").exists()


def _factor_npz(**arrays):
    def write(path):
        np.savez(path, **arrays)

    return write


IMGS = (np.random.default_rng(0).random((40, 8, 8)) > 0.5).astype(np.uint8)


FACTORS = np.stack([np.arange(40) % 4, np.arange(40) // 4], 1)


FACTOR_FILES = [
    ("factors 1-D", _factor_npz(x=IMGS, factors=np.arange(40)), "expected an (N, F) array"),
    ("factors of another length", _factor_npz(x=IMGS, factors=FACTORS[:30]), "expected an (N, F) array for 40 images"),
    ("factors 3-D", _factor_npz(x=IMGS, factors=FACTORS[:, :, None]), "expected an (N, F) array"),
    ("factors with no columns", _factor_npz(x=IMGS, factors=np.zeros((40, 0))), "factor"),
    ("factors NaN", _factor_npz(x=IMGS, factors=np.full((40, 2), np.nan)), "factor"),
    ("factors as objects", _factor_npz(x=IMGS, factors=np.array([[{"a": 1}, 2]] * 40, dtype=object)), "cannot read"),
    ("factors, no images", _factor_npz(factors=FACTORS), "no data array"),
    ("images, 1-D", _factor_npz(x=np.zeros(40), factors=FACTORS), "shape"),
    ("images, 5-D", _factor_npz(x=np.zeros((40, 1, 1, 8, 8)), factors=FACTORS), "shape"),
    ("images float beyond [0, 1]", _factor_npz(x=IMGS * 3.0, factors=FACTORS), "must lie in [0, 1]"),
    ("images NaN", _factor_npz(x=np.full((40, 8, 8), np.nan), factors=FACTORS), "NaN"),
    ("images as strings", _factor_npz(x=np.full((40, 8, 8), "a"), factors=FACTORS), "not numeric"),
    ("no images", _factor_npz(x=IMGS[:0], factors=FACTORS[:0]), "0 examples"),
    ("one image", _factor_npz(x=IMGS[:1], factors=FACTORS[:1]), "at least one"),
    ("dSprites, latents 1-D", _factor_npz(imgs=IMGS, latents_classes=np.arange(40)), "latents_classes"),
    (
        "dSprites, latents of another length",
        _factor_npz(imgs=IMGS, latents_classes=np.zeros((7, 6), int)),
        "latents_classes",
    ),
    ("dSprites, images 2-D", _factor_npz(imgs=IMGS.reshape(40, 64), latents_classes=np.zeros((40, 6), int)), "imgs"),
    ("dSprites, one latent column", _factor_npz(imgs=IMGS, latents_classes=np.zeros((40, 1), int)), "latents_classes"),
]


@pytest.mark.parametrize("name, write, fragment", FACTOR_FILES, ids=lambda v: v if isinstance(v, str) else None)
@pytest.mark.parametrize("verb", ["train", "info"])
def test_bad_files_with_factors_are_one_line(name, write, fragment, verb, tmp_path, capsys):
    path = tmp_path / "factors.npz"
    write(path)
    out = tmp_path / "r"
    argv = (
        [
            "train",
            "--set",
            f"data.name={path}",
            "--set",
            "train.epochs=1",
            "--set",
            "model.hidden=[8]",
            "--set",
            "data.val_size=0",
            "--quiet",
            "--out",
            str(out),
        ]
        if verb == "train"
        else ["data", "info", str(path)]
    )
    assert_one_line(main(argv), capsys.readouterr().err, fragment)
    assert not out.exists()


def test_a_factor_file_payload_never_runs(tmp_path, capsys):
    """An object array whose unpickling would create a file: refused, and the file never appears."""

    class Plant:
        def __reduce__(self):
            return (open, (str(tmp_path / "planted"), "w"))

    np.savez(tmp_path / "f.npz", x=IMGS, factors=np.array([Plant()] * 2, dtype=object))
    assert_one_line(main(["data", "info", str(tmp_path / "f.npz")]), capsys.readouterr().err, "cannot read")
    assert not (tmp_path / "planted").exists()


def test_an_idx_in_a_factor_folder_is_not_confused(tmp_path, capsys):
    """A file named like IDX but holding an npz with factors: the IDX reader says what it is."""
    np.savez(tmp_path / "x.npz", x=IMGS, factors=FACTORS)
    (tmp_path / "x-idx3-ubyte").write_bytes((tmp_path / "x.npz").read_bytes())
    assert_one_line(main(["data", "info", str(tmp_path / "x-idx3-ubyte")]), capsys.readouterr().err, "bad magic number")


# 7. an IDX header that declares more than memory holds --------------------------------------


@pytest.fixture(scope="module")
def big_idx(tmp_path_factory):
    """An IDX file declaring and holding 1 GiB (zeros): 16 gzip members of 64 MiB, 1 MB on disk."""
    import gzip
    import struct

    f = tmp_path_factory.mktemp("idx") / "big-idx1-ubyte.gz"
    zeros = gzip.compress(bytes(1 << 26), compresslevel=9)  # members concatenate into one gzip stream
    with open(f, "wb") as out:
        out.write(gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 16 << 26)))
        for _ in range(16):
            out.write(zeros)
    return f


@pytest.mark.parametrize("argv", [["data", "info", "{f}"], ["train", "--set", "data.name={f}", "--out", "{tmp}/r"]])
def test_an_idx_larger_than_memory_is_one_line(big_idx, tmp_path, argv):
    """1 GiB declared and present under a 700 MB address-space limit (ulimit -v)."""
    script = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (700_000_000,) * 2); "
        "from vaekit.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    args = [a.format(f=big_idx, tmp=tmp_path) for a in argv]
    p = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120)
    assert_one_line(p.returncode, p.stderr, "big-idx1-ubyte.gz")
    assert "memory" in p.stderr and not (tmp_path / "r").exists()


def test_idx_reads_follow_the_file_not_its_header():
    import io

    from vaekit.data.downloads import _read_at_most

    assert _read_at_most(io.BytesIO(b"abc"), 10**12) == b"abc"  # a read(10**12) would allocate a terabyte first
    assert _read_at_most(io.BytesIO(bytes(100)), 40, chunk=16) == bytes(40)


def test_failed_mirrors_are_named_in_the_one_line(tmp_path, capsys, monkeypatch):
    import urllib.error

    import vaekit.data.named as datasets

    def unreachable(url, dest, progress):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(datasets, "_download", unreachable)
    monkeypatch.setenv("HOME", str(tmp_path))  # no Keras cache to find
    assert_one_line(
        main(["data", "fetch", "fashion-mnist"]), capsys.readouterr().err, "could not acquire fashion-mnist"
    )
    monkeypatch.setattr(datasets, "_download", unreachable)
    code = main(["data", "fetch", "cifar10"])
    err = capsys.readouterr().err
    assert_one_line(code, err, "(tried: cifar10: ")
    assert err.count("Name or service not known") == len(datasets.CIFAR10.urls)
