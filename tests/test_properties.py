"""Property-based tests (hypothesis) over the loaders, the config parser and the model-directory
reader: whatever the bytes or values, the answer is either a correct result or a VaekitError,
never another exception."""

import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaekit.config import DataConfig, RunConfig, from_dict
from vaekit.data.downloads import read_idx
from vaekit.data.prepared import prepare
from vaekit.data.readers import read_arrays_file, read_csv, read_image_folder
from vaekit.errors import VaekitError
from vaekit.registry import MODELS

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _idx(shape, payload_len=None):
    n = int(np.prod(shape))
    raw = b"\x00\x00\x08" + bytes([len(shape)]) + b"".join(int(s).to_bytes(4, "big") for s in shape)
    return raw + bytes(n if payload_len is None else payload_len)


@st.composite
def mutated(draw, good: bytes):
    """A valid file's bytes, truncated, with bytes overwritten, inserted or appended."""
    b = bytearray(good)
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["cut", "flip", "insert", "append"]))
        if op == "cut" and b:
            del b[draw(st.integers(0, len(b) - 1)) :]
        elif op == "flip" and b:
            b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
        elif op == "insert":
            i = draw(st.integers(0, len(b)))
            b[i:i] = draw(st.binary(max_size=16))
        else:
            b += draw(st.binary(max_size=64))
    return bytes(b)


def _write(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content)
    return p


@SETTINGS
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=3), data=st.data())
def test_idx_reader_returns_the_declared_shape_or_refuses(tmp_path, shape, data):
    raw = data.draw(st.one_of(mutated(_idx(shape)), st.binary(max_size=200)))
    p = _write(tmp_path, "f-idx3-ubyte", raw)
    try:
        a = read_idx(p)
    except VaekitError as e:
        assert str(p) in str(e)
        return
    # Accepted: the header is intact and the payload is exactly the declared size.
    dims = raw[3]
    declared = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    assert raw[:3] == b"\x00\x00\x08" and a.shape == declared and a.dtype == np.uint8
    assert a.tobytes() == raw[4 + 4 * dims :]


def _npz(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _npy(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


GOOD_NPZ = _npz(x=np.arange(48, dtype=np.uint8).reshape(3, 4, 4), y=np.arange(3))
GOOD_NPY = _npy(np.linspace(0, 1, 24, dtype=np.float32).reshape(4, 6))


@SETTINGS
@given(data=st.data(), kind=st.sampled_from(["npz", "npy"]))
def test_array_files_read_or_refused(tmp_path, data, kind):
    raw = data.draw(mutated(GOOD_NPZ if kind == "npz" else GOOD_NPY))
    p = _write(tmp_path, f"f.{kind}", raw)
    try:
        x, y, xt, yt = read_arrays_file(p)
        x = np.asarray(x)
    except VaekitError as e:
        assert str(p) in str(e)
        return
    assert isinstance(x, np.ndarray) and x.dtype != object


@SETTINGS
@given(
    text=st.one_of(
        st.text(alphabet=st.sampled_from(list("0123456789.,-e\n naif")), max_size=120),
        st.lists(
            st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=5),
            min_size=1,
            max_size=6,
        ).map(lambda rows: "\n".join(",".join(repr(v) for v in r) for r in rows)),
    )
)
def test_csv_reader_returns_a_rectangular_float_table_or_refuses(tmp_path, text):
    p = _write(tmp_path, "t.csv", text.encode())
    try:
        x, *_ = read_csv(p)
    except VaekitError as e:
        assert str(p) in str(e)
        return
    rows = [ln.split(",") for ln in text.splitlines() if ln.strip()]
    assert x.dtype == np.float32 and x.ndim == 2 and x.shape[0] >= 1
    assert x.shape[1] == len(rows[-1]) and x.shape[0] in (len(rows), len(rows) - 1)  # a header row is dropped


def _png_bytes(size, mode):
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size, 100).save(buf, format="PNG")
    return buf.getvalue()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), n=st.integers(1, 3))
def test_image_folders_read_or_refused(tmp_path_factory, data, n):
    d = tmp_path_factory.mktemp("imgs")
    for i in range(n):
        size = data.draw(st.sampled_from([(4, 4), (4, 5)]))
        mode = data.draw(st.sampled_from(["L", "RGB"]))
        raw = data.draw(st.one_of(st.just(_png_bytes(size, mode)), mutated(_png_bytes(size, mode))))
        (d / f"{i}.png").write_bytes(raw)
    try:
        x, *_ = read_image_folder(d, DataConfig(name=str(d)))
    except VaekitError as e:
        assert str(d) in str(e)
        return
    assert x.dtype == np.uint8 and len(x) == n and x.ndim in (3, 4)


@SETTINGS
@given(
    n=st.integers(2, 40),
    bad=st.lists(st.tuples(st.integers(0, 39), st.sampled_from([np.nan, np.inf, -np.inf])), max_size=4),
)
def test_nan_rejected_with_the_index_of_the_first_bad_sample(n, bad):
    x = np.random.default_rng(0).random((n, 3)).astype(np.float32)
    bad = [(i, v) for i, v in bad if i < n]
    for i, v in bad:
        x[i, i % 3] = v
    cfg = DataConfig(name="arrays", val_size=0)
    if not bad:
        assert prepare(cfg, raw=(x, None, None, None)).x_train.isfinite().all()
        return
    with pytest.raises(VaekitError, match=rf"sample {min(i for i, _ in bad)} holds NaN or Inf"):
        prepare(cfg, raw=(x, None, None, None))


# --- config ----------------------------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 2000),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.lists(st.integers(-2, 64), max_size=3),
)
KEYS = {
    s: [f.name for f in __import__("dataclasses").fields(c)]
    for s, c in (
        ("data", DataConfig),
        ("model", __import__("vaekit.config", fromlist=["ModelConfig"]).ModelConfig),
        ("train", __import__("vaekit.config", fromlist=["TrainConfig"]).TrainConfig),
    )
}


@st.composite
def raw_configs(draw):
    raw = {}
    for section in draw(st.lists(st.sampled_from(["data", "model", "train", "extra"]), unique=True, max_size=3)):
        keys = KEYS.get(section, ["x"]) + ["bogus"]
        raw[section] = {k: draw(SCALARS) for k in draw(st.lists(st.sampled_from(keys), unique=True, max_size=4))}
    if draw(st.booleans()):
        raw[draw(st.sampled_from(["data", "train"]))] = draw(SCALARS)  # a section that is not a table
    return raw


@settings(max_examples=400, deadline=None)
@given(raw=raw_configs())
def test_config_parser_accepts_valid_values_or_names_the_key(raw):
    try:
        cfg = from_dict(raw)
    except VaekitError as e:
        msg = str(e)
        assert "\n" not in msg
        assert "config" in msg or "section" in msg
        return
    assert isinstance(cfg, RunConfig)
    for section, values in raw.items():  # every given value is what the config holds (ints widen to floats)
        for k, v in values.items():
            held = getattr(getattr(cfg, section), k)
            if section == "model" and k in ("latent_dim", "hidden", "likelihood") and v in (None, "none", "null"):
                v = MODELS.defaults(cfg.model.name)[k]  # None: the model's default
            assert held == v or (v in ("none", "null") and held is None), (section, k, v, held)
    assert from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # round trip through the run's config.json


@SETTINGS
@given(
    edits=st.dictionaries(
        st.sampled_from(["model", "shape", "config", "format", "format_version", "latent_dim", "extra"]),
        st.one_of(
            SCALARS, st.dictionaries(st.sampled_from(["latent_dim", "hidden", "name", "bogus"]), SCALARS, max_size=3)
        ),
        max_size=3,
    )
)
def test_model_directory_reader_refuses_what_does_not_hold_together(tmp_path_factory, edits):
    import torch

    from vaekit.config import ModelConfig
    from vaekit.models import build_model
    from vaekit.training.checkpoints import load, save_pretrained

    d = tmp_path_factory.mktemp("m") / "model"
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="vae", latent_dim=2, hidden=[8]), (1, 4, 4))
    save_pretrained(model, d)
    meta = json.loads((d / "config.json").read_text())
    meta.update(edits)
    (d / "config.json").write_text(json.dumps(meta))
    try:
        loaded = load(d)
    except VaekitError as e:
        assert "\n" not in str(e)
        return
    # Accepted only if it is still the same model.
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
