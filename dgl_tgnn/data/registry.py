"""``load_dataset``: built-in datasets by name, the synthetic ``zipf-1m`` workload, or any event file."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from dgl_tgnn.config import CHOOSE_BIPARTITE
from dgl_tgnn.data.cache import cache_key, load_cached, store
from dgl_tgnn.data.dataset import DataError, TemporalDataset
from dgl_tgnn.data.formats import (
    CsvColumns,
    Reader,
    dataset_name,
    guess_format,
    tgn_files,
)
from dgl_tgnn.data.synthetic import zipf_events
from dgl_tgnn.registry import FORMATS

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"

# name -> (file in BUILTIN_DIR, format, generic csv columns); provenance in builtin/PROVENANCE.md
_BUILTINS: dict[str, tuple[str, str, CsvColumns | None]] = {
    "wikipedia": ("wikipedia.csv.gz", "jodie", None),
    "uci": ("uci-collegemsg.txt.gz", "edgelist", None),
    "bitcoinotc": (
        "bitcoinotc.csv.gz",
        "csv",
        CsvColumns(src=0, dst=1, time=3, features=(2,), delimiter=",", header=False),
    ),
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
    header: bool | None = None,
    keep_ids: bool = False,
    bipartite: bool | None = None,
    cache: bool = True,
) -> TemporalDataset:
    """Load a built-in dataset (see ``builtin_names()``) or an event file.

    Args:
        name_or_path: a built-in name (it takes precedence over a file of that name) or a file path.
        fmt: ``"jodie"``, ``"tgn"`` (path of ``ml_<name>.csv``), ``"edgelist"``, ``"tgb"``
            (``tgbl-<name>_edgelist_v2.csv``) or ``"csv"``; None guesses it: ``csv`` when columns are given,
            else ``tgn`` / ``tgb`` by the file name, ``jodie`` by its header, ``edgelist`` by
            whitespace-separated
            lines of 3 or 4 columns ending in numbers, else ``csv``.
        src_col, dst_col, time_col, feature_cols: columns of a generic csv, header names or 0-based indices;
            the source, destination and time columns are guessed when not given (by header name, else by
            position for 3 or 4 columns). Times may be numbers or ISO-8601 dates (then seconds since 1970).
        delimiter: field delimiter of a generic csv (``" "``: runs of whitespace); None sniffs it.
        header: whether the csv's first line is a header; None detects it.
        keep_ids: integer node ids are rows as they are (``num_nodes = max id + 1``) instead of re-indexed.
        bipartite: sources and destinations are two id spaces (users, then items; negatives and
            recommendations drawn from the items) or one; None guesses it: bipartite when no id is both
            a source and a destination (never with ``keep_ids``). For ``csv`` and ``edgelist`` files;
            ``jodie`` files are bipartite, ``tgn`` ones tell by their id ranges, ``tgb`` ones by layout.
        cache: reuse / store the parsed arrays under ``$DGL_TGNN_CACHE`` (default ``~/.cache/dgl_tgnn``),
            keyed by the files' content and these options.

    Raises:
        DataError: the file is missing or malformed (one-line message naming file and line, and the
            command-line flag that picks another column or format).
        ValueError: inconsistent arguments, or data beyond the load limit.
    """
    options = {
        "src_col": src_col,
        "dst_col": dst_col,
        "time_col": time_col,
        "feature_cols": feature_cols,
        "delimiter": delimiter,
        "header": header,
    }
    given = [option for option, value in options.items() if value is not None]
    if fmt is not None:
        FORMATS.check(fmt)
    name = str(name_or_path)
    guessed = False
    if name in _BUILTINS or name in _SYNTHETIC:
        if fmt is not None or given or keep_ids or bipartite is not None:
            raise ValueError(
                f"--format, --keep-ids, --bipartite and column options are for files (--data), not for the "
                f"built-in dataset {name!r}"
            )
        if name in _SYNTHETIC:
            ds = _SYNTHETIC[name]()
            source = {"path": None, "format": "synthetic", "ids": "integer", "time_unit": "seconds"}
            return dataclasses.replace(ds, name=name, source=source)
        file, fmt, columns = _BUILTINS[name]
        path = BUILTIN_DIR / file
        bipartite = False if fmt in CHOOSE_BIPARTITE else None  # (known: no guess to report)
    else:
        path = Path(name_or_path)
        if not path.exists():
            raise DataError(f"{path}: no such file (built-in datasets: {', '.join(builtin_names())})")
        name = dataset_name(path)
        guessed = fmt is None
        if fmt is None:
            fmt = "csv" if given else guess_format(path)
        columns = _csv_columns(fmt, src_col, dst_col, time_col, feature_cols, delimiter, header, given)
        if bipartite is not None and fmt not in CHOOSE_BIPARTITE:
            flag = "--bipartite" if bipartite else "--no-bipartite"
            raise ValueError(f"{flag} applies to --format csv and edgelist, not to --format {fmt}")
    if not cache:
        ds = _parse(path, fmt, columns, keep_ids, bipartite)
    else:
        files = tgn_files(path) if fmt == "tgn" else (path,)
        key = cache_key(
            files,
            {
                "fmt": fmt,
                "columns": None if columns is None else dataclasses.asdict(columns),
                "keep_ids": keep_ids,
                "bipartite": bipartite,
            },
        )
        ds = load_cached(key, name)
        if ds is None:
            ds = _parse(path, fmt, columns, keep_ids, bipartite)
            store(key, ds)
    source = dict(ds.source)
    source["path"] = str(path)
    if str(name_or_path) in _BUILTINS:
        source["dataset"] = name
    elif guessed:
        source.setdefault("notes", [])
        source["notes"] = [f"format {fmt} (--format)", *source["notes"]]
    return dataclasses.replace(ds, name=name, source=source)


def _csv_columns(
    fmt: str,
    src_col: int | str | None,
    dst_col: int | str | None,
    time_col: int | str | None,
    feature_cols: Sequence[int | str] | None,
    delimiter: str | None,
    header: bool | None,
    given: list[str],
) -> CsvColumns | None:
    if fmt != "csv":
        if given:
            flags = [f"--{option.replace('_', '-')}" for option in given]
            raise ValueError(f"{', '.join(flags)} apply to --format csv, not to --format {fmt}")
        return None
    if isinstance(feature_cols, (str, int)):
        raise ValueError(f"--feature-cols must be a list of columns, got {feature_cols!r}")
    return CsvColumns(src_col, dst_col, time_col, tuple(feature_cols or ()), delimiter, header)


def _parse(
    path: Path, fmt: str, columns: CsvColumns | None, keep_ids: bool, bipartite: bool | None
) -> TemporalDataset:
    read: Reader = FORMATS[fmt]
    return read(path, columns, keep_ids, bipartite)
