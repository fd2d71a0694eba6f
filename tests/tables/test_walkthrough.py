"""docs/tables.md's penguins walkthrough, run command by command as the page gives it."""

from __future__ import annotations

import csv
import re
import shlex
from pathlib import Path

import pytest

from vaekit.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "tables.md"


def _commands() -> list[list[str]]:
    text = DOC.read_text().split("## Walkthrough", 1)[1]
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [shlex.split(line)[1:] for line in block.strip().splitlines()]


def _run_walkthrough(tmp_path, monkeypatch, capsys, quick: bool) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    outputs = {}
    for argv in _commands():
        if quick and argv[0] == "train":  # the same run, shorter: the default suite's budget
            argv = [*argv, "--set", "table.max_epochs=15", "--quiet"]
        if quick and argv[0] in ("impute", "score", "evaluate"):
            argv = [*argv, "--k", "50"]
        assert main(argv) == 0, argv
        outputs[" ".join(argv[:2])] = capsys.readouterr().out
    return outputs


def _rows(path: str) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _check(tmp_path, outputs):
    penguins = _rows(str(Path(__file__).resolve().parents[2] / "src/vaekit/assets/penguins.csv"))
    assert "species: categorical, 3 labels: Adelie, Chinstrap, Gentoo" in outputs["data info"]
    assert "trained on 275 rows (69 held out" in outputs["train --set"]
    synth = _rows("synth.csv")
    assert synth[0] == penguins[0] and len(synth) == 1001
    assert {r[0] for r in _rows("gentoo.csv")[1:]} == {"Gentoo"}
    filled = _rows("filled.csv")
    assert len(filled) == len(penguins) and all(c != "" for r in filled[1:] for c in r)
    assert len(_rows("five.csv")) == 1 + 5 * (len(penguins) - 1)
    assert _rows("scores.csv")[0][:3] == ["row", "log_px_nats", "se_nats"]
    assert "quality (SDMetrics)" in outputs["evaluate penguins-run"]


def test_the_penguins_walkthrough(tmp_path, monkeypatch, capsys):
    _check(tmp_path, _run_walkthrough(tmp_path, monkeypatch, capsys, quick=True))


@pytest.mark.slow
def test_the_penguins_walkthrough_as_written(tmp_path, monkeypatch, capsys):
    outputs = _run_walkthrough(tmp_path, monkeypatch, capsys, quick=False)
    _check(tmp_path, outputs)
    quality = re.search(r"quality \(SDMetrics\)\s+([\d.]+)\s+([\d.]+)", outputs["evaluate penguins-run"])
    assert float(quality.group(1)) > float(quality.group(2)) - 0.05  # near its floor
