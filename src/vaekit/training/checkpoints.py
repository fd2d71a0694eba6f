"""Plain-data checkpoints: a JSON config plus safetensors weights. Nothing is pickled.

``save_pretrained(model, dir)`` writes ``config.json`` and ``model.safetensors``; ``load(dir)``
rebuilds the model from them without any training code. Training checkpoints live in
``RUN/checkpoints/step-NNNNNNNNN/`` and add the optimiser, scheduler, EMA, RNG and trainer state
(``training.json`` + ``state.safetensors``); the last N and the best one are kept.

Every directory is written to a temporary sibling, each file is fsynced, and the directory is
renamed into place (then the parent is fsynced), so a kill or a full disk never leaves a torn
checkpoint where a complete one is expected. Replacing a directory takes two renames; a kill
between them leaves ``.NAME.old``, which `recover` (called by `load` and by resume) puts back.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from vaekit.errors import VaekitError, check_regular_file
from vaekit.registry import MODELS

FORMAT_VERSION = 1  # model directories (config.json + model.safetensors)
TRAINING_FORMAT_VERSION = 2  # training checkpoints (2: checkpoints/step-N/, mid-epoch state, history)
CHECKPOINTS = "checkpoints"
_STEP_DIR = re.compile(r"^step-(\d{9})$")


def fsync_path(path: str | Path) -> None:
    """Flush a file's or a directory's contents to disk (directories: their entries)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # e.g. directories cannot be opened on Windows
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _usual_mode(path: str | Path, directory: bool) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; give them the mode a plain open/mkdir would."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def open_no_follow(path: str | Path, flags: int, mode: int = 0o666) -> int:
    """os.open(path, flags) that refuses a symbolic link at `path` (one line naming it) instead of
    writing into whatever it points at."""
    path = Path(path)
    try:
        return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), mode)
    except OSError as e:
        why = (
            "is a symbolic link; vaekit writes nothing through links: remove it"
            if path.is_symlink()
            else f"cannot be opened ({e.strerror})"
        )
        raise VaekitError(f"'{path}' {why}") from None


def _owner_tag() -> str:
    """'PID-HOST' naming this process in its temporary files, so that a later writer can tell the
    litter of a killed process (pid gone on this host) from the live file of a running one."""
    import socket
    import zlib

    return f"{os.getpid()}-{zlib.crc32(socket.gethostname().encode()):08x}"


_TEMP_NAME = re.compile(r"^\.(?P<stem>.+)\.(?P<pid>\d+)-(?P<host>[0-9a-f]{8})\.[^.]+(?P<suffix>\.[^.]+)$")


def sweep_stale_temps(parent: Path, stem: str, suffix: str) -> None:
    """Remove temporary files and folders that vaekit's atomic writers made for `stem` in `parent`
    and a kill -9 left behind: named by this host and a process that no longer exists."""
    host = _owner_tag().split("-", 1)[1]
    try:
        entries = list(parent.glob(f".{glob.escape(stem)}.*"))
    except OSError:
        return
    for entry in entries:
        m = _TEMP_NAME.match(entry.name)
        if m is None or m["stem"] != stem or m["suffix"] != suffix or m["host"] != host or _alive(int(m["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process, or not a pid we can ask about: leave its files alone
    return True


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (with its suffix, so writers that go by the suffix pick
    the format) that replaces `path` only if the block finishes. The file appears whole or not at
    all (no 0-byte picture on a full disk), and a symbolic link at `path` is replaced, never
    written through. Temporary files that a killed writer left for `path` are removed first."""
    path = Path(path)
    suffix = path.suffix or ".part"
    sweep_stale_temps(path.parent, path.stem, suffix)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.{_owner_tag()}.", suffix=suffix)
    os.close(fd)
    try:
        _usual_mode(tmp, directory=False)
        yield Path(tmp)
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def write_text_durable(path: str | Path, text: str) -> None:
    """Write `text` to `path` via a temporary sibling, fsync and rename: all or nothing."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def recover(target: str | Path) -> None:
    """Finish a directory replacement that a kill interrupted between its two renames."""
    target = Path(target)
    old = target.with_name(f".{target.name}.old")
    if not target.exists() and old.is_dir():
        os.replace(old, target)


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces `target` only if the block finishes.

    Files written into it are fsynced before the rename, and the parent after it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    sweep_stale_temps(target.parent, target.name, ".tmp")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{_owner_tag()}.", suffix=".tmp", dir=target.parent))
    try:
        _usual_mode(tmp, directory=True)
        yield tmp
        for f in tmp.iterdir():
            fsync_path(f)
        fsync_path(tmp)
        old = target.with_name(f".{target.name}.old")
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(tmp, target)
        fsync_path(target.parent)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_out_folder(out: str | Path, flag: str = "--out") -> Path:
    """A folder that outputs go into, refused in one line unless it is a folder or can become one:
    not a file, not a dangling symbolic link (a link to a folder is used as it is)."""
    out = Path(out)
    if out.is_symlink() and not out.exists():
        raise VaekitError(f"{flag} '{out}' is a symbolic link to '{os.readlink(out)}', which does not exist")
    if out.exists() and not out.is_dir():
        raise VaekitError(f"{flag} '{out}' exists and is not a folder")
    for parent in out.parents:  # mkdir(parents=True) would fail on a file or a dangling link above
        if (parent.is_symlink() and not parent.exists()) or (parent.exists() and not parent.is_dir()):
            raise VaekitError(f"{flag} '{out}': '{parent}' is not a folder")
        if parent.is_dir():
            break
    return out


class Damaged(VaekitError):
    """A file that cannot be read back whole: unreadable, truncated, or its checksum does not match.
    Resume skips a damaged checkpoint and falls back to the newest intact one."""


DIGEST_KEY = "vaekit_sha256"  # safetensors metadata: SHA-256 of the tensors' names, dtypes, shapes and bytes


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors in name order: each name, dtype, shape and raw bytes."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    blob = save(tensors, metadata={DIGEST_KEY: tensor_digest(tensors)})
    # Written by Python rather than safetensors' save_file: a full disk or a file-size limit is then
    # an OSError with its errno (reported in one line), and the file gets the umask's mode (save_file made 0600).
    with open(path, "wb") as f:
        f.write(blob)


def load_tensors(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, checked against the digest recorded when vaekit saved it
    (files written before digests were recorded carry none and are read as they are)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    check_regular_file(path, "weights", Damaged)
    try:
        with safe_open(str(path), framework="pt") as f:
            expected = (f.metadata() or {}).get(DIGEST_KEY)
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise Damaged(f"cannot read weights '{path}': {e}") from None
    if expected is not None and tensor_digest(tensors) != expected:
        raise Damaged(
            f"weights '{path}' are damaged: their SHA-256 does not match the one recorded when they were saved"
        )
    return tensors


def read_json(path: Path) -> dict[str, Any]:
    check_regular_file(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise VaekitError(f"'{path}' is missing") from None
    except (OSError, ValueError, RecursionError) as e:  # ValueError: bad JSON, bad UTF-8, a 5000-digit integer
        raise VaekitError(f"cannot read '{path}': {str(e)[:200]}") from None


def unwrap(model: Any) -> Any:
    """The bare model under DDP or torch.compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model


def save_pretrained(model: Any, directory: str | Path) -> Path:
    """Write `model` as config.json (its `describe()`) + model.safetensors into `directory` (atomically)."""
    from vaekit import __version__

    model = unwrap(model)
    meta = {**model.describe(), "format": "vaekit", "format_version": FORMAT_VERSION, "vaekit_version": __version__}
    with atomic_dir(directory) as tmp:
        (tmp / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
        save_tensors(model.state_dict(), tmp / "model.safetensors")
    return Path(directory)


_META_KEYS = {
    "format",
    "format_version",
    "vaekit_version",
    "model",
    "shape",
    "n_components",
    "whiten",  # pca
    "config",
    "latent_dim",
    "likelihood",
    "sigma",
    "variational",
    "components",
    "num_classes",
    "prior",
    "prior_components",
}


def _check_meta(meta: Any, where: Path) -> dict[str, Any]:
    """Validate a model directory's config.json as untrusted plain data before anything is built.

    The only strings that can reach the model are the enumerated choices of ModelConfig; nothing in
    it is a path, a module or a class name."""
    if not isinstance(meta, dict) or meta.get("format") != "vaekit":
        raise VaekitError(f"'{where}' is not a vaekit model config")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise VaekitError(f"'{where}': key 'format_version' is {version!r}, expected a positive integer")
    if version > FORMAT_VERSION:
        raise VaekitError(
            f"'{where.parent}' uses model format {version}; this vaekit reads up to {FORMAT_VERSION}: upgrade vaekit"
        )
    unknown = sorted(set(meta) - _META_KEYS)
    if unknown:
        raise VaekitError(f"'{where}': unknown key '{unknown[0]}'; allowed: {', '.join(sorted(_META_KEYS))}")
    if not isinstance(meta.get("vaekit_version", ""), str):
        raise VaekitError(f"'{where}': key 'vaekit_version' is {meta['vaekit_version']!r}, expected a version string")
    known = (*MODELS.names(), "custom")
    if meta.get("model") not in known:
        raise VaekitError(f"'{where}': key 'model' is {meta.get('model')!r}, expected one of {', '.join(known)}")
    shape = meta.get("shape")
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 1 << 20 for v in shape)
    ):
        raise VaekitError(f"'{where}': key 'shape' is {shape!r}, expected 1 to 3 positive sizes")
    if meta["model"] not in ("pca", "custom") and not isinstance(meta.get("config"), dict):
        raise VaekitError(f"'{where}': key 'config' is {meta.get('config')!r}, expected a table of model settings")
    return meta


def load(
    directory: str | Path,
    device: str | torch.device = "cpu",
    encoder: torch.nn.Module | None = None,
    decoder: torch.nn.Module | None = None,
) -> Any:
    """Rebuild a model saved by `save_pretrained`. Custom nets must be passed as encoder/decoder.

    Reads only config.json (validated as untrusted data) and model.safetensors; never unpickles."""
    from vaekit.models import from_description

    d = Path(directory)
    old = d.with_name(f".{d.name}.old")
    if not d.is_dir() and old.is_dir():  # caught between the two renames of a replacement: read the
        d = old  # previous version (a reader never renames: the writer may be live)
    if not d.is_dir():
        raise VaekitError(f"model directory '{d}' does not exist")
    meta = _check_meta(read_json(d / "config.json"), d / "config.json")
    state = load_tensors(d / "model.safetensors", device)
    bad = next((k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:  # it would evaluate to NaN and sample garbage
        raise VaekitError(
            f"weights '{d / 'model.safetensors'}': tensor '{bad}' holds NaN or Inf; the model cannot be used"
        )
    try:
        model = from_description(meta, state, encoder, decoder, where=str(d))
    except VaekitError as e:
        raise VaekitError(f"'{d / 'config.json'}': {e}") from None
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as e:
        first = str(e).strip().splitlines() or [type(e).__name__]
        raise VaekitError(f"weights in '{d}' do not match its config: {' '.join(first[:2])}") from None
    _check_dtypes(model, state, d / "model.safetensors")
    _check_description(meta, model.describe(), d / "config.json")
    return model.to(device).eval()


def _check_dtypes(model: Any, state: dict[str, torch.Tensor], where: Path) -> None:
    """Refuse integer or boolean tensors where the model holds floating-point ones (load_state_dict
    would cast them silently). Floating dtypes may differ: half-precision weights load as float32."""
    own = model.state_dict()
    for name, t in state.items():
        if name in own and own[name].is_floating_point() and not t.is_floating_point():
            raise VaekitError(
                f"weights '{where}': tensor '{name}' is {str(t.dtype).removeprefix('torch.')}, expected floating point"
            )


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values: 1 and 1.0 are, true and 1 are not (Python says True == 1)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _check_description(meta: dict[str, Any], described: dict[str, Any], where: Path) -> None:
    """Refuse a config.json whose keys disagree with the model they rebuilt: a key the model was not
    built from (e.g. the top-level 'likelihood' beside 'config') edited by hand would otherwise be
    believed by whoever reads the file. Keys left out are allowed (an older file)."""
    described = json.loads(json.dumps(described))  # tuples as lists, as the file holds them
    for key, value in meta.items():
        if key in ("format", "format_version", "vaekit_version"):  # the file's, checked by _check_meta
            continue
        if key == "config" and isinstance(value, dict) and isinstance(described.get(key), dict):
            wrong = [
                (f"config.{k}", v, described[key].get(k))
                for k, v in value.items()
                if not _same(described[key].get(k), v)
            ]
        else:
            wrong = [(key, value, described.get(key))] if not _same(described.get(key), value) else []
        if wrong:
            k, got, built = wrong[0]
            raise VaekitError(f"'{where}': key '{k}' is {got!r}, but the model this file describes has {built!r}")


# -- training checkpoints ------------------------------------------------------------------------


def _split_state(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace tensors in nested plain data by {'__tensor__': key}, collecting them in `tensors`."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {"__keys__": [[k, _split_state(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_split_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    return obj


def _join_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict) and "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if isinstance(obj, dict) and "__keys__" in obj:
        return {k: _join_state(v, tensors) for k, v in obj["__keys__"]}
    if isinstance(obj, list):
        return [_join_state(v, tensors) for v in obj]
    return obj


def checkpoint_dirs(run_dir: str | Path) -> list[Path]:
    """The complete training checkpoints of a run, oldest first (by optimiser step)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    for name in os.listdir(root):
        if _STEP_DIR.match(name):
            recover(root / name)
    found = [root / n for n in os.listdir(root) if _STEP_DIR.match(n) and (root / n).is_dir()]
    return sorted(found, key=lambda p: p.name)


def save_checkpoint(
    run_dir: str | Path, model: Any, state: dict[str, Any], step: int, keep: int, protect: int | None = None
) -> Path:
    """Write a training checkpoint for optimiser step `step` atomically, then delete all but the
    newest `keep` and the one at step `protect` (the best epoch's). Returns its directory."""
    tensors: dict[str, torch.Tensor] = {}
    plain = _split_state(state, "s", tensors)
    target = Path(run_dir) / CHECKPOINTS / f"step-{step:09d}"
    with atomic_dir(target) as tmp:
        save_tensors(unwrap(model).state_dict(), tmp / "model.safetensors")
        save_tensors(tensors, tmp / "state.safetensors")
        # training.json last: a directory without it was never complete (it cannot be renamed into place anyway).
        (tmp / "training.json").write_text(
            json.dumps(
                {"format": "vaekit-training", "format_version": TRAINING_FORMAT_VERSION, "step": step, "state": plain}
            )
            + "\n"
        )
    dirs = checkpoint_dirs(run_dir)
    keep_names = {p.name for p in dirs[-keep:]} | ({f"step-{protect:09d}"} if protect is not None else set())
    for p in dirs:
        if p.name not in keep_names:  # renamed away first: a kill mid-delete leaves no half checkpoint behind
            trash = p.with_name(f".{p.name}.del")
            if trash.exists():  # left by an earlier kill
                shutil.rmtree(trash, ignore_errors=True)
            os.replace(p, trash)
            shutil.rmtree(trash, ignore_errors=True)
    return target


def clean_partial_writes(run_dir: str | Path) -> None:
    """Remove the temporary directories of checkpoint writes, and the half-deleted checkpoints of
    pruning, that a kill interrupted."""
    for parent in (Path(run_dir), Path(run_dir) / CHECKPOINTS):
        if parent.is_dir():
            for p in parent.iterdir():
                if p.name.startswith(".") and p.name.endswith((".tmp", ".del")) and p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)


def newest_intact(run_dir: str | Path, model: Any, check: Any = None) -> tuple[Path, dict[str, Any], list[str]]:
    """Load the newest training checkpoint that reads back whole into `model`: (its directory, its
    state, the newer ones skipped as damaged, each with the reason). A checkpoint of another format
    or one whose weights do not fit `model` is refused, not skipped: an older one would not do either.
    `check(state)` may refuse a state's contents with ValueError, which counts as damage."""
    run_dir = Path(run_dir)
    saved, skipped = checkpoint_dirs(run_dir), []
    for d in reversed(saved):
        try:
            state = load_checkpoint(d, model)
            if check is not None:
                try:
                    check(state)
                except (ValueError, TypeError, KeyError) as e:
                    raise Damaged(f"checkpoint '{d}' is damaged: {e}") from None
            return d, state, skipped
        except Damaged as e:
            skipped.append(f"{d.name}: {e}")
    if not saved:
        raise VaekitError(f"cannot resume: no checkpoint in '{run_dir}'")
    raise VaekitError(f"cannot resume: no intact checkpoint in '{run_dir}' ({'; '.join(skipped)})")


def load_checkpoint(directory: str | Path, model: Any) -> dict[str, Any]:
    """Load a training checkpoint's weights into `model`; return the trainer's state saved beside them.

    A newer format, a damaged file or weights that do not fit `model` are refused with one line."""
    d = Path(directory)
    try:
        meta = read_json(d / "training.json")
    except VaekitError as e:
        raise Damaged(str(e)) from None
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != "vaekit-training" or not isinstance(version, int):
        raise Damaged(f"checkpoint '{d}' is damaged or not a vaekit training checkpoint (training.json)")
    if version > TRAINING_FORMAT_VERSION:
        raise VaekitError(
            f"checkpoint '{d}' has format {version}; this vaekit reads up to {TRAINING_FORMAT_VERSION}: upgrade vaekit"
        )
    if version < TRAINING_FORMAT_VERSION:
        raise VaekitError(
            f"checkpoint '{d}' has the older format {version}; this vaekit resumes format {TRAINING_FORMAT_VERSION} "
            f"only"
        )
    weights = load_tensors(d / "model.safetensors")
    tensors = load_tensors(d / "state.safetensors")
    try:
        state = _join_state(meta["state"], tensors)
    except (KeyError, TypeError, ValueError) as e:
        raise Damaged(f"checkpoint '{d}' is damaged: its state refers to a missing entry {e}") from None
    if not isinstance(state, dict) or not isinstance(state.get("trainer"), dict):
        raise Damaged(f"checkpoint '{d}' is damaged: no trainer state in training.json")
    if meta.get("step") != state["trainer"].get("step"):
        raise Damaged(
            f"checkpoint '{d}' is damaged: training.json says step {meta.get('step')!r}, "
            f"its trainer state {state['trainer'].get('step')!r}"
        )
    try:
        unwrap(model).load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise VaekitError(f"checkpoint '{d}' does not match the run's model config: {' '.join(first[:2])}") from None
    return state
