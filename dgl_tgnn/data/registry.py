"""``load_dataset``: built-in datasets by name, the synthetic ``zipf-1m`` workload, or any event file."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from dgl_tgnn.data.cache import cache_key, load_cached, store
from dgl_tgnn.data.dataset import DataError, TemporalDataset
from dgl_tgnn.data.formats import (
    FORMATS,
    CsvColumns,
    dataset_name,
    guess_format,
    read_csv,
    read_edgelist,
    read_jodie,
    read_tgn,
    tgn_files,
)
from dgl_tgnn.data.synthetic import zipf_events

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"

# name -> (file in BUILTIN_DIR, format, generic csv columns); provenance in builtin/PROVENANCE.md
_BUILTINS: dict[str, tuple[str, str, CsvColumns | None]] = {
    "wikipedia": ("wikipedia.csv.gz", "jodie", None),
    "uci": ("uci-collegemsg.txt.gz", "edgelist", None),
    "bitcoinotc": ("bitcoinotc.csv.gz", "csv", CsvColumns(src=0, dst=1, time=3, features=(2,))),
    "enron": ("enron.txt.gz", "edgelist", None),
    "mathoverflow": ("sx-mathoverflow.txt.gz", "edgelist", None),
}

_SYNTHETIC: dict[str, Callable[[], TemporalDataset]] = {
    # benchmark workload: 1M events over 100k nodes, Zipf(1.0) popularity, 30 days of integer seconds
    "zipf-1m": lambda: zipf_events(1_000_000, 100_000, alpha=1.0, span_seconds=30 * 86400, seed=0),
}


def builtin_names() -> list[str]:
    """Names ``load_dataset`` accepts besides file paths: the real datasets, then synthetic workloads."""
    return [*_BUILTINS, *_SYNTHETIC]


def builtin_format(name: str) -> str:
    """The file format of a built-in dataset (``"synthetic"`` for generated ones)."""
    return _BUILTINS[name][1] if name in _BUILTINS else "synthetic"


def load_dataset(
    name_or_path: str | Path,
    *,
    fmt: str | None = None,
    src_col: int | str | None = None,
    dst_col: int | str | None = None,
    time_col: int | str | None = None,
    feature_cols: Sequence[int | str] | None = None,
    delimiter: str | None = None,
    cache: bool = True,
) -> TemporalDataset:
    """Load a built-in dataset (see ``builtin_names()``) or an event file.

    Args:
        name_or_path: a built-in name (it takes precedence over a file of that name) or a file path.
        fmt: ``"jodie"``, ``"tgn"`` (path of ``ml_<name>.csv``), ``"edgelist"`` or ``"csv"``; None guesses it:
            ``csv`` when columns are given, else ``tgn`` by the ``ml_`` name, ``jodie`` by its header,
            ``edgelist`` by whitespace-separated numeric lines.
        src_col, dst_col, time_col, feature_cols: columns of a generic csv, all header names or all 0-based
            indices (no header then).
        delimiter: field delimiter of a generic csv (default ``","``).
        cache: reuse / store the parsed arrays under ``$DGL_TGNN_CACHE`` (default ``~/.cache/dgl_tgnn``),
            keyed by the files' content and these options.

    Raises:
        DataError: the file is missing or malformed (one-line message naming file and line).
        ValueError: inconsistent arguments.
    """
    options = {
        "src_col": src_col,
        "dst_col": dst_col,
        "time_col": time_col,
        "feature_cols": feature_cols,
        "delimiter": delimiter,
    }
    given = [option for option, value in options.items() if value is not None]
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
    name = str(name_or_path)
    if name in _BUILTINS or name in _SYNTHETIC:
        if fmt is not None or given:
            raise ValueError(f"fmt and column options are for files, not for the built-in dataset {name!r}")
        if name in _SYNTHETIC:
            return dataclasses.replace(_SYNTHETIC[name](), name=name)
        file, fmt, columns = _BUILTINS[name]
        path = BUILTIN_DIR / file
    else:
        path = Path(name_or_path)
        if not path.exists():
            raise DataError(f"{path}: no such file (built-in datasets: {', '.join(builtin_names())})")
        name = dataset_name(path)
        if fmt is None:
            fmt = "csv" if given else guess_format(path)
        columns = _csv_columns(fmt, src_col, dst_col, time_col, feature_cols, delimiter, given)
    if not cache:
        return _parse(path, fmt, columns)
    files = tgn_files(path) if fmt == "tgn" else (path,)
    key = cache_key(files, {"fmt": fmt, "columns": None if columns is None else dataclasses.asdict(columns)})
    ds = load_cached(key, name)
    if ds is None:
        ds = _parse(path, fmt, columns)
        store(key, ds)
    return dataclasses.replace(ds, name=name) if ds.name != name else ds


def _csv_columns(
    fmt: str,
    src_col: int | str | None,
    dst_col: int | str | None,
    time_col: int | str | None,
    feature_cols: Sequence[int | str] | None,
    delimiter: str | None,
    given: list[str],
) -> CsvColumns | None:
    if fmt != "csv":
        if given:
            raise ValueError(f"{', '.join(given)} apply to fmt='csv', not to fmt={fmt!r}")
        return None
    if src_col is None or dst_col is None or time_col is None:
        raise ValueError(
            f"fmt='csv' needs src_col, dst_col and time_col, got src_col={src_col!r}, dst_col={dst_col!r}, "
            f"time_col={time_col!r}"
        )
    if isinstance(feature_cols, (str, int)):
        raise ValueError(f"feature_cols must be a list of columns, got {feature_cols!r}")
    return CsvColumns(src_col, dst_col, time_col, tuple(feature_cols or ()), delimiter or ",")


def _parse(path: Path, fmt: str, columns: CsvColumns | None) -> TemporalDataset:
    if fmt == "csv":
        assert columns is not None
        return read_csv(path, columns)
    return {"jodie": read_jodie, "tgn": read_tgn, "edgelist": read_edgelist}[fmt](path)
