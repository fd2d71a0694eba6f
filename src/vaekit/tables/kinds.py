"""What kind each column of a table is, inferred from its text or set by the user.

Kinds: ``continuous`` (a real number), ``positive`` (a real number > 0, modelled on its log),
``count`` (an integer >= 0), ``categorical``, ``boolean``, ``ordinal`` (ordered levels), and
``datetime`` (a date or a time, modelled in seconds). The rules, in order, over a column's
observed cells:

1. every cell missing: refused (there is nothing to learn; drop the column);
2. one distinct value: categorical with one label (it is written back as it was);
3. two spellings of yes/no (true/false, yes/no, y/n, t/f, 0/1): boolean;
4. all numbers: the numbers 1..N in order, one per row, are a row identifier and dropped; integers
   with at most ``ORDINAL_MAX_LEVELS`` distinct values are ordinal (levels in numeric order: a
   year, a rating); integers >= 0 whose smallest value is within one standard deviation of 0 are
   counts (a negative binomial's variance is at least its mean, so integers far from 0 with a small
   spread, such as lengths in mm, are measurements); other numbers are positive if all > 0, else
   continuous;
5. all dates in one format (ISO 8601, or d/m/Y, m/d/Y, Y/m/d): datetime;
6. some numbers and some words: refused (a stray token: name it as missing, or set the kind);
7. otherwise categorical, unless every cell differs (an identifier: dropped) or there are more
   than ``max_categories`` labels (refused).

An ordinal column is only ever set by the user, as the list of its levels in order.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

import numpy as np

from vaekit.errors import VaekitError

KINDS = ("continuous", "positive", "count", "categorical", "boolean", "ordinal", "datetime")
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
INTEGER = re.compile(r"^[+-]?\d+$")
BOOLEAN_PAIRS = [("false", "true"), ("no", "yes"), ("n", "y"), ("f", "t"), ("0", "1")]
DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%d %H:%M:%S.%f",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%Y/%m/%d",
)
FLOAT_MAX = float(np.finfo(np.float32).max)
ORDINAL_MAX_LEVELS = 10
IDENTIFIER_MIN_ROWS = 20  # fewer rows than this: all-distinct text is more likely categories than ids


def parse_numbers(name: str, values: list[str], where: str) -> np.ndarray:
    """The cells as float64, refusing a cell that is not a plain decimal number or is beyond float32."""
    out = np.empty(len(values))
    for i, v in enumerate(values):
        if not NUMBER.match(v):
            raise VaekitError(f"table '{where}' column {name!r}: {v[:40]!r} is not a number")
        out[i] = float(v)
        if not abs(out[i]) <= FLOAT_MAX:
            raise VaekitError(f"table '{where}' column {name!r}: {v[:40]} is beyond float range (|x| <= 3.4e38)")
    return out


def date_format(values: list[str]) -> str | None:
    """The one format every cell parses with (the first that does), or None."""
    if not values or not any(ch in values[0] for ch in "-/"):
        return None
    for fmt in DATE_FORMATS:
        try:
            for v in values:
                datetime.strptime(v, fmt)
        except ValueError:
            continue
        return fmt
    return None


def seconds(values: list[str], fmt: str) -> np.ndarray:
    """Dates as seconds since 1970-01-01 (times without a zone read as UTC)."""
    return np.array([datetime.strptime(v, fmt).replace(tzinfo=timezone.utc).timestamp() for v in values])


def boolean_labels(values: list[str]) -> list[str] | None:
    """[the false spelling, the true spelling] when the cells are two spellings of no/yes, else None."""
    distinct = sorted(set(values))
    if len(distinct) != 2:
        return None
    low = [d.lower() for d in distinct]
    for no, yes in BOOLEAN_PAIRS:
        if sorted(low) == sorted([no, yes]):
            return [distinct[low.index(no)], distinct[low.index(yes)]]
    return None


def is_row_number(x: np.ndarray, n_rows: int) -> bool:
    """1..N (or 0..N-1) in order, one per row: a row identifier, not a quantity."""
    return len(x) == n_rows >= IDENTIFIER_MIN_ROWS and bool(np.all(np.diff(x) == 1))


def infer_kind(name: str, values: list[str], n_rows: int, max_categories: int, where: str) -> tuple[str, str]:
    """(kind, note) for a column with observed cells `values`; kind "drop" drops it with the note."""
    if not values:
        raise VaekitError(
            f"table '{where}' column {name!r}: every cell is missing; drop the column or set its kind to 'drop'"
        )
    distinct = set(values)
    if len(distinct) == 1:
        return "categorical", "one value"
    if boolean_labels(values) is not None:
        return "boolean", ""
    numeric = [bool(NUMBER.match(v)) for v in values]
    if all(numeric):
        x = parse_numbers(name, values, where)
        if all(INTEGER.match(v) for v in values):
            if is_row_number(x, n_rows):
                return "drop", "a row number (1..N in order)"
            if len(distinct) <= ORDINAL_MAX_LEVELS:
                return "ordinal", "few integer levels"
            if x.min() >= 0 and x.min() <= x.std():
                return "count", ""
        return ("positive" if x.min() > 0 else "continuous"), ""
    if date_format(values) is not None:
        return "datetime", ""
    if any(numeric):
        num = values[numeric.index(True)]
        word = values[numeric.index(False)]
        raise VaekitError(
            f"table '{where}' column {name!r} mixes numbers ({num[:20]!r}) and text ({word[:20]!r}); name a "
            f"missing-value token in missing = [...], or set the column's kind (e.g. 'categorical')"
        )
    if len(distinct) == len(values) and len(values) >= IDENTIFIER_MIN_ROWS:
        return "drop", "an identifier (every value differs)"
    if len(distinct) > max_categories:
        raise VaekitError(
            f"table '{where}' column {name!r} has {len(distinct):,} distinct values, more than "
            f"max_categories = {max_categories:,}; raise it, or set the column's kind to 'drop'"
        )
    return "categorical", ""
