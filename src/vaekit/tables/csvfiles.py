"""Reading a table: a CSV or TSV file, or a pandas DataFrame, as named columns of text cells.

The standard library's `csv` module parses (quoted separators and quoted newlines included, a
UTF-8 byte-order mark removed); pandas is not needed to read a file. What a parser would guess
at is refused instead, in one line that names the file, the row or the column:

- an empty file, a header without rows, a header with an empty or repeated name;
- a row with more or fewer cells than the header, or a quote that is never closed;
- a file whose one column holds another separator (``;``, tab, ``|``): say ``separator``.

Missing cells (an empty cell, ``NA``, ``NaN``, ``null``, ... and the tokens the user names) become
None: the cell's kind is decided by the other cells, and it is never filled in silently.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaekit.errors import VaekitError, check_regular_file

MISSING_TOKENS = frozenset({"", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "None", "#N/A", "<NA>", "NaT"})
MAX_BYTES = 2 << 30  # a table read into memory as text: 2 GiB
OTHER_SEPARATORS = {";": "';'", "\t": "tab", "|": "'|'"}


@dataclass
class RawTable:
    """A table as text: `names` (F,) and `cells` (F columns of N cells, None where missing).
    `source` names the file (or 'the DataFrame') in messages."""

    names: list[str]
    cells: list[list[str | None]]
    source: str

    @property
    def n_rows(self) -> int:
        return len(self.cells[0]) if self.cells else 0

    def column(self, name: str) -> list[str | None]:
        return self.cells[self.names.index(name)]

    def take(self, rows: Any) -> RawTable:
        """The rows at indices `rows`, in that order."""
        return type(self)(list(self.names), [[col[i] for i in rows] for col in self.cells], self.source)


def separator_for(path: Path, separator: str | None) -> str:
    """The separator: the one asked for, else a tab for .tsv/.tab files and a comma otherwise."""
    if separator is not None:
        if len(separator) != 1 or separator in '"\r\n':
            raise VaekitError(f"separator {separator!r} must be one character other than a quote or a newline")
        return separator
    return "\t" if path.suffix.lower() in (".tsv", ".tab") else ","


def read_text(path: Path) -> str:
    """The file as text (UTF-8, a byte-order mark removed), refusing what is not a readable file."""
    check_regular_file(path, "table")
    if not path.exists():
        raise VaekitError(f"table '{path}' does not exist")
    if path.stat().st_size > MAX_BYTES:
        raise VaekitError(f"table '{path}' is {path.stat().st_size / 2**30:.1f} GiB; at most 2 GiB is read")
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise VaekitError(f"table '{path}' is not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8") from None
    except OSError as e:
        raise VaekitError(f"cannot read table '{path}': {e.strerror}") from None


def parse_rows(text: str, where: str, separator: str) -> list[list[str]]:
    """The rows of `text`, blank lines skipped; a quote never closed is refused with its line."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator, strict=True)
    rows = []
    try:
        for row in reader:
            if row and any(c.strip() for c in row) or len(row) > 1:
                rows.append(row)
    except csv.Error as e:
        raise VaekitError(f"table '{where}' line {reader.line_num}: {e} (a quote that is never closed?)") from None
    return rows


def check_header(names: list[str], where: str, separator: str) -> list[str]:
    names = [n.strip() for n in names]
    if len(names) == 1:
        for sep, label in OTHER_SEPARATORS.items():
            if sep != separator and sep in names[0]:
                raise VaekitError(
                    f"table '{where}' has one column whose name holds {label} ({names[0][:60]!r}); "
                    f"if {label} separates its columns, say so: [table] separator = {sep!r} (data info: --separator)"
                )
    for i, n in enumerate(names):
        if not n:
            raise VaekitError(f"table '{where}': column {i + 1} of the header has no name")
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in seen:
            raise VaekitError(f"table '{where}': columns {seen[n] + 1} and {i + 1} are both named {n!r}")
        seen[n] = i
    return names


SHIPPED = {"penguins": "penguins.csv"}  # tables in vaekit/assets, by name: Palmer penguins (CC0)


def resolve(name: str | Path) -> Path:
    """A table's path: `name` itself, or a shipped table's file when `name` is one's name and no such
    file exists here."""
    p = Path(name)
    if str(name) in SHIPPED and not p.exists():
        return Path(__file__).resolve().parent.parent / "assets" / SHIPPED[str(name)]
    return p


def read_table(path: str | Path, separator: str | None = None, missing: tuple[str, ...] = ()) -> RawTable:
    """A CSV/TSV file with a header row (or a shipped table by name: 'penguins') as a `RawTable`.
    `missing`: more tokens that mean an empty cell."""
    path = resolve(path)
    sep = separator_for(path, separator)
    rows = parse_rows(read_text(path), str(path), sep)
    if not rows:
        raise VaekitError(f"table '{path}' is empty")
    names = check_header(rows[0], str(path), sep)
    body = rows[1:]
    if not body:
        raise VaekitError(f"table '{path}' has a header but no rows")
    for i, row in enumerate(body):
        if len(row) != len(names):
            raise VaekitError(
                f"table '{path}' data row {i + 1}: {len(row)} cell{'s' * (len(row) != 1)}, the header has {len(names)} "
                "(a separator inside a cell must be quoted)"
            )
    tokens = MISSING_TOKENS | set(missing)
    cells = [[None if (c := row[j].strip()) in tokens else c for row in body] for j in range(len(names))]
    return RawTable(names, cells, str(path))


def from_dataframe(frame: Any, missing: tuple[str, ...] = ()) -> RawTable:
    """A pandas DataFrame as a `RawTable`: its cells as text (pandas' NA, NaN and NaT are missing;
    timestamps in ISO format), so a DataFrame and the CSV it came from are read the same way."""
    import math

    names = check_header([str(c) for c in frame.columns], "the DataFrame", ",")
    tokens = MISSING_TOKENS | set(missing)

    def text(v: Any) -> str | None:
        if v is None or (isinstance(v, float) and math.isnan(v)) or _pandas_missing(v):
            return None
        if hasattr(v, "isoformat"):
            s = v.isoformat()
        elif isinstance(v, bool) or type(v).__name__ == "bool_":
            s = "True" if v else "False"
        else:
            # a float column that holds whole numbers is pandas' integers-with-NaN: written as integers
            s = (str(int(v)) if float(v).is_integer() else repr(float(v))) if isinstance(v, float) else str(v)
        s = s.strip()
        return None if s in tokens else s

    cells = [[text(v) for v in frame[c].tolist()] for c in frame.columns]
    if not cells or not cells[0]:
        raise VaekitError("the DataFrame has no rows" if cells else "the DataFrame has no columns")
    return RawTable(names, cells, "the DataFrame")


def _pandas_missing(v: Any) -> bool:
    name = type(v).__name__
    return name in ("NAType", "NaTType")


def to_frame(table: RawTable):
    """A `RawTable` as a pandas DataFrame of text cells (None where missing); pandas is optional."""
    try:
        import pandas as pd
    except ImportError:
        raise VaekitError("DataFrames need pandas: pip install 'vaekit[tables]'") from None
    return pd.DataFrame({n: pd.Series(c, dtype=object) for n, c in zip(table.names, table.cells)})


def write_table(table: RawTable, path: str | Path, separator: str | None = None) -> Path:
    """Write a table as CSV (TSV for .tsv), a missing cell as an empty one; all or nothing."""
    from vaekit.training.checkpoints import atomic_file

    path = Path(path)
    sep = separator_for(path, separator)
    if path.parent and not path.parent.is_dir():
        raise VaekitError(f"cannot write '{path}': folder '{path.parent}' does not exist")
    if path.is_dir():
        raise VaekitError(f"cannot write '{path}': it is a folder")
    with atomic_file(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, delimiter=sep, lineterminator="\n")
            w.writerow(table.names)
            w.writerows(zip(*[["" if c is None else c for c in col] for col in table.cells]))
    return path


def as_raw(table: Any, separator: str | None = None, missing: tuple[str, ...] = ()) -> RawTable:
    """A path (CSV/TSV), a pandas DataFrame or a `RawTable`, as a `RawTable`."""
    if isinstance(table, RawTable):
        return table
    if isinstance(table, (str, Path)):
        return read_table(table, separator, missing)
    if hasattr(table, "columns") and hasattr(table, "to_dict"):
        return from_dataframe(table, missing)
    raise VaekitError(f"a table is a CSV/TSV path or a pandas DataFrame, not {type(table).__name__}")
