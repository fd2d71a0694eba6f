"""Datasets by name beyond MNIST, acquired offline-first and verified like MNIST (see `mnist`).

- ``fashion-mnist``: Zalando's Fashion-MNIST, the MNIST layout (60k/10k 28x28 grey, labels 0-9),
  as four gzipped IDX files, each checked against its published MD5;
- ``cifar10``: CIFAR-10 (50k/10k 32x32 RGB, labels 0-9), the "python version": five training
  batches and a test batch, each checked against its published MD5 and read with an unpickler that
  admits numpy arrays, dicts, lists, strings and numbers only (nothing that can run code);
- ``celeba``: CelebA's 202,599 aligned photos (178x218) with the official train/validation/test
  partition, always streamed from disk (see `data.StreamData`), centre-cropped to 148x148 and
  resized to 64x64 unless data.crop / data.image_size say otherwise.

Routes, first success wins: the ``data_dir`` you pass (the files directly, torchvision's layout
``FashionMNIST/raw`` or ``cifar-10-batches-py``, or the archive ``cifar-10-python.tar.gz``); the
Keras cache (``~/.keras/datasets``); the public source, with a progress bar. The decoded uint8
arrays are cached as ``$VAEKIT_DATA/<name>.npz`` (no pickle). When nothing works the error says
where to put the files by hand.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import tempfile
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vaekit.data.downloads import ArraysOnlyUnpickler, cache_dir, read_idx, route_failed, routes, save_cache, tried
from vaekit.data.downloads import download as _download
from vaekit.data.downloads import log as _log
from vaekit.data.sources import DataSource, fetched_line
from vaekit.errors import VaekitError


@dataclass(frozen=True)
class Spec:
    name: str
    files: dict[str, str]  # file name -> MD5
    urls: tuple[str, ...]  # bases (IDX files) or archive URLs
    layouts: tuple[str, ...]  # sub-folders of a data_dir / cache where the files may sit
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # expected array shapes
    how: str = ""


FASHION = Spec(
    name="fashion-mnist",
    files={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    urls=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    layouts=(".", "FashionMNIST/raw", "fashion-mnist", "raw"),
    shapes={"x_train": (60000, 28, 28), "y_train": (60000,), "x_test": (10000, 28, 28), "y_test": (10000,)},
    how="the four files train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz",
)
CIFAR10 = Spec(
    name="cifar10",
    files={
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
    },
    urls=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    layouts=(".", "cifar-10-batches-py"),
    shapes={"x_train": (50000, 32, 32, 3), "y_train": (50000,), "x_test": (10000, 32, 32, 3), "y_test": (10000,)},
    how="cifar-10-python.tar.gz, or its folder cifar-10-batches-py (data_batch_1..5, test_batch)",
)
CIFAR10_ARCHIVE = ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")
_DRIVE = "https://drive.usercontent.google.com/download?export=download&confirm=t&id="
CELEBA = Spec(
    name="celeba",
    files={
        "img_align_celeba.zip": "00d2c5bc6d35e252742224ab0c1e8fcb",
        "list_eval_partition.txt": "d32c9cbf5e040fd4025c592c306e6668",
    },
    urls=(
        _DRIVE + "1zmsC4yvw-e089uHXj5EdP0BSZ0AlDQRR",
        _DRIVE + "1ih_VMokoI774ErNWrb26lDeWlanUBpnX",
    ),  # the zip, the partition
    layouts=(".", "celeba"),
    shapes={"images": (202599,)},
    how="img_align_celeba.zip (or its folder img_align_celeba/) and list_eval_partition.txt",
)
SPECS = {s.name: s for s in (FASHION, CIFAR10, CELEBA)}
ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar_10": "cifar10",
    "celeb-a": "celeba",
    "celeb_a": "celeba",
}


def canonical(name: str) -> str | None:
    """The dataset a name means, or None if it is not one of these."""
    n = name.lower()
    n = ALIASES.get(n, n)
    return n if n in SPECS else None


def is_named(name: str) -> bool:
    """Whether `name` is a registered dataset's name (`registry.DATASETS`), not a path."""
    from vaekit.data.sources import dataset_name

    return dataset_name(name) is not None


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _check_md5(path: Path, spec: Spec) -> None:
    expected = spec.files[path.name]
    if _md5(path) != expected:
        raise VaekitError(
            f"'{path}': MD5 does not match the published {spec.name} file ({expected}); the file is damaged or not the "
            f"original"
        )


def _check_shapes(arrays: dict[str, np.ndarray], spec: Spec, source: str) -> dict[str, np.ndarray]:
    for key, shape in spec.shapes.items():
        if arrays[key].shape != shape:
            raise VaekitError(f"{source}: '{key}' has shape {arrays[key].shape}, {spec.name} has {shape}")
    for key in ("y_train", "y_test"):
        if arrays[key].size and (arrays[key].min() < 0 or arrays[key].max() > 9):
            raise VaekitError(f"{source}: labels outside 0..9 in '{key}'")
    return arrays


# --- Fashion-MNIST -------------------------------------------------------------------------------


def _fashion_from(folder: Path, spec: Spec = FASHION) -> dict[str, np.ndarray] | None:
    keys = {
        "x_train": "train-images-idx3-ubyte",
        "y_train": "train-labels-idx1-ubyte",
        "x_test": "t10k-images-idx3-ubyte",
        "y_test": "t10k-labels-idx1-ubyte",
    }
    found = {}
    for key, stem in keys.items():
        if (folder / (stem + ".gz")).is_file():
            _check_md5(folder / (stem + ".gz"), spec)  # the published checksums are of the .gz files
            found[key] = read_idx(folder / (stem + ".gz"))
        elif (folder / stem).is_file():
            found[key] = read_idx(folder / stem)  # unpacked: shapes and labels are checked below
    if len(found) < 4:
        return None
    return _check_shapes(found, spec, f"{spec.name} files in '{folder}'")


def _fashion_download(tmp: Path, progress: bool, spec: Spec = FASHION) -> dict[str, np.ndarray] | None:
    for base in spec.urls:
        try:
            for name in spec.files:
                if not (tmp / name).exists():
                    _download(base + name, tmp / name, progress)
            return _fashion_from(tmp, spec)
        except (urllib.error.URLError, OSError, TimeoutError, VaekitError) as e:
            for name in spec.files:
                (tmp / name).unlink(missing_ok=True)
            route_failed(f"{spec.name}: {base} failed: {e}")
    return None


# --- CIFAR-10 ------------------------------------------------------------------------------------


def _read_cifar_batch(path: Path, spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR 'python version' batch: a pickled dict with 'data' (N, 3072) uint8 and 'labels'.
    Returns images (N, 32, 32, 3) and labels (N,)."""
    import pickle

    _check_md5(path, spec)
    try:
        d = ArraysOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
        data, labels = np.asarray(d["data"], dtype=np.uint8), np.asarray(d["labels"], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, TypeError, ValueError, EOFError) as e:
        raise VaekitError(f"cannot read CIFAR batch '{path}': {e}") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise VaekitError(f"CIFAR batch '{path}': data {data.shape} and {len(labels)} labels; expected (N, 3072) and N")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels.astype(np.uint8)


def _cifar_from(folder: Path, spec: Spec = CIFAR10) -> dict[str, np.ndarray] | None:
    if not all((folder / f).is_file() for f in spec.files):
        return None
    train = [_read_cifar_batch(folder / f"data_batch_{i}", spec) for i in range(1, 6)]
    x_test, y_test = _read_cifar_batch(folder / "test_batch", spec)
    arrays = {
        "x_train": np.concatenate([x for x, _ in train]),
        "y_train": np.concatenate([y for _, y in train]),
        "x_test": x_test,
        "y_test": y_test,
    }
    return _check_shapes(arrays, spec, f"CIFAR-10 files in '{folder}'")


def _cifar_from_archive(
    archive: Path, tmp: Path, spec: Spec = CIFAR10, archive_md5: str | None = None
) -> dict[str, np.ndarray]:
    """Extract only the expected batch files (no path from the archive is trusted) and read them."""
    if _md5(archive) != (archive_md5 or CIFAR10_ARCHIVE[1]):
        raise VaekitError(f"'{archive}': MD5 does not match the published cifar-10-python.tar.gz")
    wanted = {f"cifar-10-batches-py/{f}": f for f in spec.files}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                if member.name in wanted and member.isfile():
                    with tar.extractfile(member) as src:
                        (tmp / wanted[member.name]).write_bytes(src.read())
    except (tarfile.TarError, OSError, EOFError) as e:
        raise VaekitError(f"cannot read archive '{archive}': {e}") from None
    arrays = _cifar_from(tmp, spec)
    if arrays is None:
        raise VaekitError(f"archive '{archive}' lacks some of {', '.join(spec.files)}")
    return arrays


def _cifar_download(tmp: Path, progress: bool, spec: Spec = CIFAR10) -> dict[str, np.ndarray] | None:
    for url in spec.urls:
        archive = tmp / CIFAR10_ARCHIVE[0]
        try:
            _download(url, archive, progress)
            return _cifar_from_archive(archive, tmp, spec)
        except (urllib.error.URLError, OSError, TimeoutError, VaekitError) as e:
            archive.unlink(missing_ok=True)
            route_failed(f"{spec.name}: {url} failed: {e}")
    return None


# --- CelebA (always streamed: 202,599 aligned 178x218 photos) ------------------------------------


def _celeba_partition(path: Path, spec: Spec) -> dict[str, int]:
    _check_md5(path, spec)
    split = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2") or not parts[0].endswith(".jpg") or "/" in parts[0]:
            raise VaekitError(f"'{path}' line {n}: expected '<name>.jpg 0|1|2', got {line[:80]!r}")
        split[parts[0]] = int(parts[1])
    if len(split) != spec.shapes["images"][0]:
        raise VaekitError(f"'{path}' lists {len(split)} images; CelebA has {spec.shapes['images'][0]}")
    return split


def _celeba_extract(archive: Path, dest: Path, spec: Spec) -> None:
    """Unpack the JPEGs of img_align_celeba.zip into dest/img_align_celeba (no other member, no path
    from the archive is trusted), through a temporary folder renamed into place."""
    import shutil
    import zipfile

    _check_md5(archive, spec)
    tmp = Path(tempfile.mkdtemp(prefix=".img_align_celeba.", dir=dest))
    try:
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                parts = info.filename.split("/")
                if (
                    len(parts) == 2
                    and parts[0] == "img_align_celeba"
                    and parts[1].endswith(".jpg")
                    and not info.is_dir()
                ):
                    (tmp / parts[1]).write_bytes(z.read(info))
        (tmp).rename(dest / "img_align_celeba")
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise VaekitError(f"cannot unpack '{archive}': {e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def celeba_files(
    data_dir: str | Path | None = None, download: bool = True, progress: bool = True
) -> tuple[list[Path], np.ndarray]:
    """The CelebA image files (sorted by name) and their official split (0 train, 1 validation,
    2 test). The zip is unpacked once into $VAEKIT_DATA/celeba; the partition file is checked by
    MD5 and every image it lists must be present."""
    spec = CELEBA
    store = cache_dir() / "celeba"
    places = ([Path(data_dir)] if data_dir is not None else []) + [store]
    if data_dir is not None and not Path(data_dir).is_dir():
        raise VaekitError(f"--data-dir '{data_dir}' is not a folder")
    for root in places:
        for layout in spec.layouts:
            folder = root / layout if layout != "." else root
            part = folder / "list_eval_partition.txt"
            if not part.is_file():
                continue
            images = folder / "img_align_celeba"
            if not images.is_dir() and (folder / "img_align_celeba.zip").is_file():
                store.mkdir(parents=True, exist_ok=True)
                if not (store / "img_align_celeba").is_dir():
                    _celeba_extract(folder / "img_align_celeba.zip", store, spec)
                if not (store / part.name).is_file():  # keep the partition beside the images, for next time
                    import shutil

                    shutil.copyfile(part, store / part.name)
                images = store / "img_align_celeba"
            if not images.is_dir():
                continue
            split = _celeba_partition(part, spec)
            names = sorted(split)
            missing = next((n for n in names if not (images / n).is_file()), None)
            if missing is not None:
                raise VaekitError(f"'{images}' lacks '{missing}', listed in '{part}'")
            return [images / n for n in names], np.array([split[n] for n in names], np.int64)
    if data_dir is not None:
        raise VaekitError(f"--data-dir '{data_dir}' does not hold celeba: expected {spec.how}")
    failure = ""
    if download:
        store.mkdir(parents=True, exist_ok=True)
        try:
            for url, name in zip(spec.urls, ("img_align_celeba.zip", "list_eval_partition.txt")):
                if not (store / name).is_file():
                    _download(url, store / name, progress)
                _check_md5(store / name, spec)
            return celeba_files(store, download=False)
        except (urllib.error.URLError, OSError, TimeoutError, VaekitError) as e:
            failure = tried([f"download failed: {' '.join(str(e).split())[:160]}"])
    raise VaekitError(
        f"could not acquire celeba: download {spec.how} by hand (Google Drive: "
        f"{', '.join(spec.urls)}) into a folder and pass --data-dir, or place them in '{store}'{failure}"
    )


# --- entry point ---------------------------------------------------------------------------------


def _from_folder(spec: Spec, root: Path) -> dict[str, np.ndarray] | None:
    for layout in spec.layouts:
        folder = (root / layout) if layout != "." else root
        if not folder.is_dir():
            continue
        arrays = _fashion_from(folder, spec) if spec is FASHION else _cifar_from(folder, spec)
        if arrays is not None:
            return arrays
    if spec is CIFAR10 and (root / CIFAR10_ARCHIVE[0]).is_file():
        with tempfile.TemporaryDirectory() as t:
            return _cifar_from_archive(root / CIFAR10_ARCHIVE[0], Path(t), spec)
    return None


def load_dataset(
    name: str, data_dir: str | Path | None = None, download: bool = True, progress: bool = True
) -> dict[str, np.ndarray]:
    """A named dataset as uint8 arrays: x_* (N, H, W) or (N, H, W, 3), y_* (N,). Cached after first use."""
    key = canonical(name)
    if key is None:
        raise VaekitError(f"unknown dataset '{name}'; by name: mnist, {', '.join(SPECS)}")
    if key == "celeba":
        raise VaekitError("celeba is streamed from its image files, not loaded into arrays; use data.name = 'celeba'")
    spec = SPECS[key]
    cache = cache_dir() / f"{spec.name}.npz"
    if cache.is_file() and data_dir is None:
        try:
            with np.load(cache, allow_pickle=False) as f:
                return _check_shapes({k: f[k] for k in f.files}, spec, f"cache '{cache}'")
        except (OSError, ValueError, KeyError, VaekitError) as e:
            _log(f"ignoring damaged cache '{cache}' ({e}); acquiring again")
    arrays = None
    if data_dir is not None:
        if not Path(data_dir).is_dir():
            raise VaekitError(f"--data-dir '{data_dir}' is not a folder")
        arrays = _from_folder(spec, Path(data_dir))
        if arrays is None:
            raise VaekitError(f"--data-dir '{data_dir}' does not hold {spec.name}: expected {spec.how}")
    for place in (cache_dir(), Path.home() / ".keras" / "datasets"):  # files put there by hand, the Keras cache
        if arrays is None and place.is_dir():
            arrays = _from_folder(spec, place)
    failures: list[str] = []
    if arrays is None and download:
        with tempfile.TemporaryDirectory() as t, routes() as failures:
            arrays = (_fashion_download if spec is FASHION else _cifar_download)(Path(t), progress, spec)
    if arrays is None:
        raise VaekitError(
            f"could not acquire {spec.name}: the source is unreachable; download {spec.how} by hand "
            f"(sources: {', '.join(spec.urls)}) into a folder and pass --data-dir, or place them in "
            f"'{cache_dir()}'{tried(failures)}"
        )
    save_cache(arrays, cache)
    return arrays


def prepare_celeba(cfg: Any, device: Any = "cpu") -> Any:
    """CelebA, always streamed, split by its official partition."""
    import dataclasses

    from vaekit.data.prepared import refuse_fixed_binarisation, stream_data
    from vaekit.data.readers import StreamImages

    refuse_fixed_binarisation(cfg)
    files, split = celeba_files(cfg.data_dir)
    # The usual 64x64 faces of VAE papers unless configured otherwise: centre 148x148, resized.
    cfg = dataclasses.replace(cfg, crop=cfg.crop or [148, 148], image_size=cfg.image_size or [64, 64])
    pick = lambda k, cap: np.flatnonzero(split == k)[:cap]
    return stream_data(
        cfg,
        StreamImages(files, None, cfg),
        None,
        pick(2, cfg.test_size),
        pick(1, cfg.val_size),
        pick(0, cfg.limit),
        device,
    )


class NamedSource(DataSource):
    """A dataset of `SPECS` by name: downloaded once, verified, cached as arrays."""

    def __init__(self, name: str):
        self.name = name

    def read(self, cfg: Any) -> tuple:
        m = load_dataset(self.name, cfg.data_dir)
        return m["x_train"], m["y_train"], m["x_test"], m["y_test"]

    def fetch(self, data_dir: str | None) -> str:
        return fetched_line(self.name, load_dataset(self.name, data_dir))


class CelebASource(NamedSource):
    """CelebA: always streamed from its image files, split by its official partition."""

    def prepare(self, cfg: Any, device: Any) -> Any:
        return prepare_celeba(cfg, device)

    def fetch(self, data_dir: str | None) -> str:
        files, split = celeba_files(data_dir)
        return (
            f"celeba: {int((split == 0).sum())} train, {int((split == 1).sum())} validation, "
            f"{int((split == 2).sum())} test images in {files[0].parent} (streamed when training)"
        )


FASHION_SOURCE = NamedSource("fashion-mnist")
CIFAR10_SOURCE = NamedSource("cifar10")
CELEBA_SOURCE = CelebASource("celeba")
