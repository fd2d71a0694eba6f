"""Hostile tables: each is refused in one line with exit code 2 and nothing written, by
`vaekit data info` and by `vaekit train` of a [table] run alike; legal CSV that looks odd (a
byte-order mark, a quoted newline, a quoted separator) is read as it is meant."""

from __future__ import annotations

import pytest

from refusals import assert_one_line
from vaekit.cli import main
from vaekit.tables.columns import infer_schema
from vaekit.tables.csvfiles import read_table


def _many_labels(n_labels: int = 1500) -> str:
    return "a,b\n" + "".join(f"{i % 7},label{i % n_labels}\n" for i in range(2 * n_labels))


HOSTILE = [
    ("empty file", b"", "is empty"),
    ("blank lines only", b"\n\n \n", "is empty"),
    ("header only", b"a,b\n", "has a header but no rows"),
    ("ragged row", b"a,b\n1,2\n3\n", "data row 2: 1 cell, the header has 2"),
    ("long row", b"a,b\n1,2\n3,4,5\n", "data row 2: 3 cells, the header has 2"),
    ("quote never closed", b'a,b\n1,"x\n2,y\n', "a quote that is never closed"),
    ("stray quote", b'a,b\n1,"x"y\n', "',' expected after '\"'"),
    ("duplicated header", b"a,b,a\n1,2,3\n4,5,6\n", "columns 1 and 3 are both named 'a'"),
    ("unnamed column", b"a,,c\n1,2,3\n", "column 2 of the header has no name"),
    ("semicolons", b"a;b\n1;2\n3;4\n", "[table] separator = ';'"),
    ("tabs in a .csv", b"a\tb\n1\t2\n", "separator = '\\t'"),
    ("mixed types", b"a,b\n1,x\n2,y\nthree,z\n4,x\n", "column 'a' mixes numbers ('1') and text ('three')"),
    ("all missing", b"a,b\n1,\n2,NA\n3,\n", "column 'b': every cell is missing"),
    ("beyond float range", b"a,b\n1,x\n1e400,y\n2,x\n", "1e400 is beyond float range"),
    ("beyond float32", b"a,b\n1,x\n-5e38,y\n2,x\n", "-5e38 is beyond float range"),
    ("infinity", b"a,b\n1.5,x\ninf,y\n2.5,x\n", "mixes numbers"),
    ("not UTF-8", b"a,b\n1,caf\xe9\n", "is not UTF-8 text"),
    ("too many labels", _many_labels().encode(), "has 1,500 distinct values, more than max_categories = 1,000"),
    ("nothing left", b"id\n" + b"".join(f"x{i}\n".encode() for i in range(30)), "no column is left to model"),
]


@pytest.mark.parametrize("name, content, fragment", HOSTILE, ids=[h[0] for h in HOSTILE])
@pytest.mark.parametrize("verb", ["info", "train"])
def test_hostile_tables_are_one_line(name, content, fragment, verb, tmp_path, capsys):
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    out = tmp_path / "run"
    if verb == "info":
        argv = ["data", "info", str(path), "--separator", ","]
    else:
        argv = ["train", "--set", f"table.data={path}", "--set", "table.max_epochs=1", "--out", str(out), "--quiet"]
    assert_one_line(main(argv), capsys.readouterr().err, fragment)
    assert not out.exists()


def test_a_table_path_that_is_not_a_file(tmp_path, capsys):
    (tmp_path / "d.csv").mkdir()
    argv = ["train", "--set", f"table.data={tmp_path / 'd.csv'}", "--out", str(tmp_path / "r")]
    assert_one_line(main(argv), capsys.readouterr().err, "is not a regular file")
    assert_one_line(
        main(argv[:2] + [f"table.data={tmp_path / 'no.csv'}", *argv[3:]]), capsys.readouterr().err, "does not exist"
    )
    assert not (tmp_path / "r").exists()


def test_odd_but_legal_csv_is_read_as_meant(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b'\xef\xbb\xbfname,note,n\r\nx,"two\nlines",1\r\ny,"a, b",2\r\nx,plain,3\r\n')
    raw = read_table(path)
    assert raw.names == ["name", "note", "n"]  # the byte-order mark is not part of the first name
    assert raw.column("note") == ["two\nlines", "a, b", "plain"]
    assert raw.column("n") == ["1", "2", "3"]
    semi = tmp_path / "s.csv"
    semi.write_text("a;b\n1,5;x\n2,5;y\n")
    assert read_table(semi, separator=";").column("a") == ["1,5", "2,5"]
    tsv = tmp_path / "t.tsv"
    tsv.write_text("a\tb\n1\tx\n2\ty\n")
    assert infer_schema(read_table(tsv)).names == ["a", "b"]


@pytest.mark.slow
def test_a_million_distinct_labels_are_refused(tmp_path, capsys):
    """The issue's 'a column with a million distinct categories', at full size (8 s)."""
    path = tmp_path / "big.csv"
    path.write_text("a,b\n" + "".join(f"{i % 3},c{i % 1_000_000}\n" for i in range(1_000_001)))
    assert_one_line(main(["data", "info", str(path)]), capsys.readouterr().err, "1,000,000 distinct values")
