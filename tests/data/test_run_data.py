"""What a run directory may point at (issue 15): the data its own training read, checked against
the fingerprint in RUN/data.json, or data inside the run directory. Any other path in a run's
config.json (one edited by hand, or a run shared from another machine) is refused in one line
before anything under it is read, and data changed since training is not silently evaluated as
the same. Data the user names (--data, --set data.name=...) is theirs to choose."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import digit_like
from refusals import assert_one_line
from vaekit.cli import main
from vaekit.data import prepared as D
from vaekit.errors import VaekitError

SMALL = [
    "--set",
    "train.epochs=1",
    "--set",
    "train.eval_k=5",
    "--set",
    "model.hidden=[16]",
    "--set",
    "model.latent_dim=2",
    "--set",
    "data.val_size=0",
    "--quiet",
]


def _image_tree(root, n=24):
    x, y = digit_like(n)
    for i, (img, label) in enumerate(zip(x, y)):
        (root / f"c{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / f"c{label}" / f"{i}.png")
    return root


@pytest.fixture
def run(images_npz, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--set", f"data.name={images_npz}", *SMALL, "--out", str(out)]) == 0
    return out


def _point_at(run, path):
    cfg = json.loads((run / "config.json").read_text())
    cfg["data"]["name"] = str(path)
    (run / "config.json").write_text(json.dumps(cfg))


def test_a_run_records_the_fingerprint_of_its_data(run, images_npz):
    import hashlib

    record = json.loads((run / "data.json").read_text())
    assert record == {
        "path": str(images_npz.resolve()),
        "kind": "file",
        "bytes": images_npz.stat().st_size,
        "sha256": hashlib.sha256(images_npz.read_bytes()).hexdigest(),
    }


VERBS = {
    "evaluate": lambda run, out: ["evaluate", str(run)],
    "reconstruct": lambda run, out: ["reconstruct", str(run), "--out", str(out)],
    "interpolate": lambda run, out: ["interpolate", str(run), "--out", str(out)],
    "traverse": lambda run, out: ["traverse", str(run), "--out", str(out)],
    "explore": lambda run, out: ["explore", str(run), "--out", str(out)],
    "resume": lambda run, out: ["train", "--resume", str(run), "--set", "train.epochs=2"],
}


@pytest.mark.parametrize("verb", VERBS)
def test_a_run_pointed_at_other_files_reads_nothing_under_them(run, tmp_path, capsys, monkeypatch, verb):
    tree = _image_tree(tmp_path / "elsewhere")  # what a hand-edited config.json points at ('/usr/share', say)
    _point_at(run, tree)
    listed = []
    monkeypatch.setattr(D, "walk_images", lambda *a, **k: listed.append(a) or (_ for _ in ()).throw(AssertionError))
    argv = VERBS[verb](run, tmp_path / "o.png")
    capsys.readouterr()
    assert_one_line(main(argv), capsys.readouterr().err, f"records data '{run.parent / 'digits.npz'}'")
    assert listed == [] and not (tmp_path / "o.png").exists()


def test_data_changed_since_training_is_not_evaluated_as_the_same(run, images_npz, capsys):
    x, y = digit_like(seed=1)  # same size, other values
    np.savez(images_npz, x=x, y=y)
    capsys.readouterr()
    assert_one_line(
        main(["evaluate", str(run)]), capsys.readouterr().err, f"to read it anyway, pass --data {images_npz}"
    )
    assert main(["evaluate", str(run), "--data", str(images_npz), "--k", "5"]) == 0  # named by the user: read
    capsys.readouterr()
    assert_one_line(
        main(["train", "--resume", str(run), "--set", "train.epochs=2"]), capsys.readouterr().err, "--set data.name="
    )
    assert (
        main(["train", "--resume", str(run), "--set", "train.epochs=2", "--set", f"data.name={images_npz}", "--quiet"])
        == 0
    )
    assert main(["evaluate", str(run), "--k", "5"]) == 0  # the resumed run recorded the data it now read


@pytest.mark.parametrize("damage", ["missing", "not json", "a list", "no path", "another path", "forged folder"])
def test_a_missing_or_forged_record_is_refused(run, images_npz, tmp_path, capsys, damage):
    record = run / "data.json"
    saved = json.loads(record.read_text())
    if damage == "missing":
        record.unlink()
        fragment = "holds no record of it"
    elif damage == "not json":
        record.write_text("{")
        fragment = "is not a data record vaekit wrote"
    elif damage == "a list":
        record.write_text("[]")
        fragment = "is not a data record vaekit wrote"
    elif damage == "no path":
        record.write_text(json.dumps({k: v for k, v in saved.items() if k != "path"}))
        fragment = "is not a data record vaekit wrote"
    elif damage == "another path":
        record.write_text(json.dumps({**saved, "path": "/somewhere/else.npz"}))
        fragment = "records data '/somewhere/else.npz'"
    else:  # a record that claims a folder of a few entries: listing stops there
        tree = _image_tree(tmp_path / "big")
        _point_at(run, tree)
        record.write_text(
            json.dumps({"path": str(tree), "kind": "folder", "images": 1, "bytes": 1, "entries": 3, "sha256": "0" * 64})
        )
        fragment = "is not the data run"
    capsys.readouterr()
    assert_one_line(main(["evaluate", str(run)]), capsys.readouterr().err, fragment)


def test_image_folder_runs_are_read_again_until_the_folder_changes(tmp_path, capsys):
    tree = _image_tree(tmp_path / "imgs", n=40)
    out = tmp_path / "run"
    assert main(["train", "--set", f"data.name={tree}", *SMALL, "--out", str(out)]) == 0
    record = json.loads((out / "data.json").read_text())
    assert record["kind"] == "folder" and record["images"] == 40 and record["entries"] == 40 + len(list(tree.iterdir()))
    assert main(["evaluate", str(out), "--k", "5"]) == 0
    shutil.copy(next(tree.rglob("*.png")), tree / "c0" / "new.png")
    capsys.readouterr()
    assert_one_line(main(["evaluate", str(out)]), capsys.readouterr().err, "is not the data run")


def test_the_listing_of_a_folder_is_bounded_and_lists_what_rglob_lists(tmp_path):
    tree = _image_tree(tmp_path / "t", n=30)
    (tree / ".hidden").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tree / ".hidden" / "h.png")
    (tree / "notes.txt").write_text("x")
    os.symlink(tree / "c0", tree / "link")  # a link to a folder is not followed, as rglob does not
    files, seen = D.walk_images(tree)
    assert files == sorted(f for f in tree.rglob("*") if f.suffix.lower() in D.IMAGE_SUFFIXES)
    assert seen == sum(1 for _ in tree.rglob("*"))
    with pytest.raises(VaekitError, match=f"holds more than {seen - 1:,} files and folders"):
        D.walk_images(tree, budget=seen - 1)


def test_a_folder_left_by_a_kill_between_the_record_and_the_config_says_how_to_restart(images_npz, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "data.json").write_text("{}")
    (out / ".lock").write_text("")
    assert_one_line(
        main(["train", "--set", f"data.name={images_npz}", *SMALL, "--out", str(out)]),
        capsys.readouterr().err,
        "delete the folder to start again",
    )
    assert sorted(p.name for p in out.iterdir()) == [".lock", "data.json"]  # nothing of the user's overwritten


def test_named_datasets_and_data_inside_the_run_need_no_record(run, images_npz, capsys):
    (run / "data").mkdir()
    shutil.copy(images_npz, run / "data" / "d.npz")
    _point_at(run, "data/d.npz")
    (run / "data.json").unlink()
    assert main(["evaluate", str(run), "--k", "5"]) == 0
    assert D.fingerprint(D.DataConfig(name="mnist")) is None


def test_resume_reads_the_data_file_through_once_for_its_fingerprint(run, images_npz, monkeypatch):
    """The check on resume hashes the data; the record it checked is kept, not hashed again."""
    import vaekit.runs  # noqa: F401 -- _record_config imports fingerprint from vaekit.data.prepared at call time

    record = (run / D.DATA_RECORD).read_text()
    calls = []
    real = D.fingerprint
    monkeypatch.setattr(D, "fingerprint", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert main(["train", "--resume", str(run), "--set", "train.epochs=2", "--quiet"]) == 0
    assert len(calls) == 1 and (run / D.DATA_RECORD).read_text() == record
    calls.clear()  # data the user names is recorded afresh
    assert (
        main(["train", "--resume", str(run), "--set", "train.epochs=3", "--set", f"data.name={images_npz}", "--quiet"])
        == 0
    )
    assert len(calls) == 1
