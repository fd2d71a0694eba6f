"""Files are written only where the user meant: never through a symbolic link, nothing in a
directory that is refused, and every picture, array or report whole or not at all."""

import errno
import os

import pytest
import torch

from vaekit.cli import main


def _train(images_npz, *extra):
    return [
        "train",
        "--set",
        f"data.name={images_npz}",
        "--set",
        "data.val_size=40",
        "--set",
        "model.hidden=[16]",
        "--set",
        "model.latent_dim=2",
        "--set",
        "train.batch_size=64",
        "--set",
        "train.eval_k=5",
        "--quiet",
        *extra,
    ]


@pytest.fixture
def precious(tmp_path):
    p = tmp_path / "precious.txt"
    p.write_text("do not touch")
    return p


def test_a_refused_directory_gets_nothing_written_not_even_through_a_lock_link(images_npz, tmp_path, precious, capsys):
    run = tmp_path / "r"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    (run / ".lock").symlink_to(precious)
    assert main(_train(images_npz, "--out", str(run))) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert precious.read_text() == "do not touch" and sorted(p.name for p in run.iterdir()) == [".lock", "notes.txt"]
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("mine")
    assert main(_train(images_npz, "--out", str(plain))) == 2
    assert [p.name for p in plain.iterdir()] == ["notes.txt"]  # no .lock left behind


def test_a_lock_link_in_an_otherwise_empty_directory_is_refused(images_npz, tmp_path, precious, capsys):
    run = tmp_path / "r"
    run.mkdir()
    (run / ".lock").symlink_to(precious)
    assert main(_train(images_npz, "--out", str(run))) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and ".lock' is a symbolic link" in err
    assert precious.read_text() == "do not touch" and [p.name for p in run.iterdir()] == [".lock"]


def test_resume_replaces_links_in_the_run_instead_of_writing_through_them(images_npz, tmp_path, precious):
    run = tmp_path / "r"
    assert main(_train(images_npz, "--set", "train.epochs=1", "--out", str(run))) == 0
    for name in ("curves.png", "samples.png", "eval.json", "metrics.jsonl"):
        (run / name).unlink()
        (run / name).symlink_to(precious)
    assert main(["train", "--resume", str(run), "--set", "train.epochs=2", "--quiet"]) == 0
    assert precious.read_text() == "do not touch"
    for name in ("curves.png", "samples.png", "eval.json", "metrics.jsonl"):
        assert (run / name).is_file() and not (run / name).is_symlink(), name


def test_a_full_disk_leaves_no_partial_picture(tmp_path, monkeypatch):
    from PIL import Image

    from vaekit.explorer import pictures as viz

    def full(self, fp, *a, **k):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG")  # a few bytes, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    with pytest.raises(OSError):
        viz.image_grid(torch.rand(4, 1, 8, 8), tmp_path / "s.png")
    assert os.listdir(tmp_path) == []  # neither the picture nor its temporary


def test_cli_outputs_replace_a_link_at_the_destination(images_npz, tmp_path, precious):
    run = tmp_path / "r"
    assert main(_train(images_npz, "--set", "train.epochs=1", "--out", str(run))) == 0
    out = tmp_path / "s.png"
    out.symlink_to(precious)
    assert main(["sample", str(run), "--out", str(out), "--n", "4"]) == 0
    assert precious.read_text() == "do not touch" and out.is_file() and not out.is_symlink()
