"""Readers for event files: JODIE csv, TGN ``ml_<name>`` files, SNAP/KONECT edge lists, generic csv.

Every reader parses the whole file with the pandas C parser, then validates the columns with numpy. Only when
that fails is the text scanned line by line, to name the first offending line in a one-line ``DataError``
(``file:line: what is wrong``). gzip input is recognised by its magic bytes, whatever the file name.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import re
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dgl_tgnn.data.dataset import DataError, TemporalDataset, from_events

FORMATS = ("jodie", "tgn", "edgelist", "csv")
JODIE_HEADER = ("user_id", "item_id", "timestamp", "state_label")
TGN_COLUMNS = ("u", "i", "ts", "label", "idx")
GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
_TGN_NAME = re.compile(r"ml_(.+)\.csv")
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_INT64_RANGE = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class CsvColumns:
    """Column choice for the generic csv format.

    Columns are all header names (the first line is then a header) or all 0-based indices (no header).
    """

    src: int | str
    dst: int | str
    time: int | str
    features: tuple[int | str, ...] = ()
    delimiter: str = ","

    def __post_init__(self) -> None:
        keys = (self.src, self.dst, self.time, *self.features)
        if not (all(isinstance(k, str) for k in keys) or all(_is_index(k) for k in keys)):
            raise ValueError(
                "src_col, dst_col, time_col and feature_cols must be all column names (file with a header) "
                f"or all 0-based column indices (no header), got {keys!r}"
            )
        if len({self.src, self.dst, self.time}) != 3:
            raise ValueError(
                f"src_col, dst_col and time_col must differ, got {self.src!r}, {self.dst!r}, {self.time!r}"
            )
        if len(self.delimiter) != 1 or self.delimiter in '\r\n"':
            raise ValueError(
                f"delimiter must be one character (not a quote or newline), got {self.delimiter!r}"
            )

    @property
    def by_name(self) -> bool:
        return isinstance(self.src, str)


def _is_index(key: object) -> bool:
    return isinstance(key, int) and not isinstance(key, bool) and key >= 0


@dataclass(frozen=True)
class _Field:
    """One column to extract: its 0-based index, its name in messages, and how to parse it.

    kind: ``"id"`` integer text -> int64; ``"label"`` integral number -> int64;
    ``"float"`` finite number -> float64.
    """

    column: int
    what: str
    kind: str


def read_raw(path: Path) -> bytes:
    """The bytes of ``path`` as stored (possibly gzip-compressed)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a file") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read: {error.strerror}") from None


def read_text(path: Path) -> bytes:
    """The content of ``path``, gunzipped when it starts with the gzip magic bytes, less a UTF-8 BOM."""
    raw = read_raw(path)
    if raw[:2] != GZIP_MAGIC:
        return raw.removeprefix(UTF8_BOM)
    try:
        return gzip.decompress(raw).removeprefix(UTF8_BOM)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: damaged gzip data: {error}") from None


def peek_text(path: Path, size: int = 1 << 16) -> bytes:
    """The first ``size`` bytes of the (gunzipped) content of ``path``."""
    try:
        with open(path, "rb") as file:
            head = file.read(size)
            if head[:2] != GZIP_MAGIC:
                return head.removeprefix(UTF8_BOM)
        with gzip.open(path, "rb") as file:
            return file.read(size).removeprefix(UTF8_BOM)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a file") from None
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: cannot read: {error}") from None


def _data_lines(data: bytes, comments: bool) -> Iterator[tuple[int, str]]:
    """``(1-based line number, text)`` of each line holding data: not blank and, when ``comments``, with
    anything from a ``#`` or ``%`` on removed."""
    start = 0
    number = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        number += 1
        line = data[start:end].decode("utf-8", errors="replace").rstrip("\r")
        start = end + 1
        if comments:
            line = re.split(r"[#%]", line, maxsplit=1)[0]
        if line.strip():
            yield number, line


def _cells(line: str, sep: str | None) -> list[str]:
    """Fields of one line: split on runs of whitespace when ``sep`` is None, else csv-split on ``sep``."""
    return line.split() if sep is None else next(csv.reader([line], delimiter=sep))


def _first_lines(data: bytes, comments: bool, count: int) -> list[tuple[int, str]]:
    lines = []
    for item in _data_lines(data, comments):
        lines.append(item)
        if len(lines) == count:
            break
    return lines


def _convert(values: np.ndarray, kind: str) -> np.ndarray | None:
    """The column as int64 (``id``, ``label``) or float64 (``float``), or None if any value is invalid."""
    dtype_kind = values.dtype.kind
    if kind == "id":
        return values.astype(np.int64) if dtype_kind == "i" else None
    if dtype_kind == "i":
        return values.astype(np.int64 if kind == "label" else np.float64)
    if dtype_kind != "f" or not np.isfinite(values).all():
        return None
    if kind == "label":
        return values.astype(np.int64) if np.array_equal(values, np.round(values)) else None
    return values.astype(np.float64)


def _cell_problem(cell: str, kind: str) -> str | None:
    """What is wrong with one text cell for ``kind``, or None."""
    if kind == "id":
        if not _INTEGER.fullmatch(cell):
            return f"is not an integer node id: {cell.strip()!r}"
        if not _INT64_RANGE[0] <= int(cell) <= _INT64_RANGE[1]:
            return f"is out of the int64 range: {cell.strip()!r}"
        return None
    try:
        if "_" in cell:
            raise ValueError(cell)
        value = float(cell)
    except ValueError:
        return f"is not a number: {cell.strip()!r}"
    if not np.isfinite(value):
        return f"is not a finite number: {cell.strip()!r}"
    if kind == "label" and value != round(value):
        return f"is not an integer: {cell.strip()!r}"
    return None


def _read_columns(
    path: Path,
    data: bytes,
    *,
    sep: str | None,
    comments: bool,
    skip_lines: int,
    n_columns: int,
    fields: Sequence[_Field],
    width_note: str = "",
) -> list[np.ndarray]:
    """Parse every data line after the first ``skip_lines`` lines into ``n_columns`` columns and return the
    arrays of ``fields``; raise a ``DataError`` naming the first bad line when any line is wrong."""
    text = data.replace(b"%", b"#") if comments and b"%" in data else data
    reason = "unknown"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = pd.read_csv(
                io.BytesIO(text),
                sep=r"\s+" if sep is None else sep,
                header=None,
                skiprows=skip_lines,
                comment="#" if comments else None,
                engine="c",
                low_memory=False,
                encoding_errors="replace",
            )
    except ValueError as error:  # pandas ParserError, EmptyDataError, ... are ValueErrors
        frame, reason = None, str(error).strip().replace("\n", " ")
    if frame is not None and frame.shape[1] == n_columns:
        arrays = [_convert(frame[field.column].to_numpy(), field.kind) for field in fields]
        if all(array is not None for array in arrays):
            return arrays
    for number, line in _data_lines(data, comments):
        if number <= skip_lines:
            continue
        cells = _cells(line, sep)
        if len(cells) != n_columns:
            raise DataError(f"{path}:{number}: expected {n_columns} columns{width_note}, got {len(cells)}")
        for field in fields:
            problem = _cell_problem(cells[field.column], field.kind)
            if problem:
                raise DataError(f"{path}:{number}: {field.what} {problem}")
    raise DataError(f"{path}: cannot parse: {reason}")


def _no_events(path: Path, after_header: bool = False) -> DataError:
    return DataError(
        f"{path}: no events after the header" if after_header else f"{path}: empty file (no events)"
    )


def dataset_name(path: Path) -> str:
    """Name of the dataset in ``path``: its file name less ``.gz`` and one more suffix (and ``ml_``)."""
    name = path.name.removesuffix(".gz")
    match = _TGN_NAME.fullmatch(name)
    return match.group(1) if match else Path(name).stem


def guess_format(path: Path) -> str:
    """``tgn`` for ``ml_<name>.csv``, ``jodie`` for a JODIE header, ``edgelist`` for whitespace-separated
    numeric lines of 3 or 4 columns."""
    if _TGN_NAME.fullmatch(path.name):
        return "tgn"
    head = peek_text(path)
    first = _first_lines(head, comments=False, count=1)
    if first and tuple(c.strip() for c in first[0][1].split(",")[:4]) == JODIE_HEADER:
        return "jodie"
    first = _first_lines(head, comments=True, count=1)
    if first:
        cells = first[0][1].split()
        if len(cells) in (3, 4) and not any(_cell_problem(cell, "float") for cell in cells):
            return "edgelist"
    raise DataError(
        f"{path}: cannot tell the format (not a JODIE csv, TGN ml_<name>.csv or whitespace edge list): "
        "name its source, destination and time columns to read it as a generic csv"
    )


def tgn_files(path: Path) -> tuple[Path, Path, Path]:
    """``ml_<name>.csv`` and its siblings ``ml_<name>.npy`` (edge features), ``ml_<name>_node.npy``."""
    match = _TGN_NAME.fullmatch(path.name)
    if not match:
        raise DataError(f"{path}: the TGN format needs a file named ml_<name>.csv")
    stem = f"ml_{match.group(1)}"
    return path, path.with_name(f"{stem}.npy"), path.with_name(f"{stem}_node.npy")


def read_edgelist(path: Path) -> TemporalDataset:
    """SNAP/KONECT whitespace edge list: ``src dst time`` or ``src dst weight time`` a line; lines starting
    with ``%`` or ``#`` are comments. A weight becomes a 1-dim edge feature."""
    data = read_text(path)
    first = _first_lines(data, comments=True, count=1)
    if not first:
        raise _no_events(path)
    number, line = first[0]
    width = len(line.split())
    if width not in (3, 4):
        raise DataError(f"{path}:{number}: expected 3 or 4 columns (src dst [weight] time), got {width}")
    fields = [_Field(0, "src", "id"), _Field(1, "dst", "id"), _Field(width - 1, "time", "float")]
    if width == 4:
        fields.append(_Field(2, "weight", "float"))
    arrays = _read_columns(path, data, sep=None, comments=True, skip_lines=0, n_columns=width, fields=fields)
    edge_feat = arrays[3][:, None] if width == 4 else None
    return from_events(dataset_name(path), arrays[0], arrays[1], arrays[2], edge_feat=edge_feat)


def read_jodie(path: Path) -> TemporalDataset:
    """JODIE csv: header ``user_id,item_id,timestamp,state_label,...`` then ``user,item,time,label,f1..fd``.

    Bipartite: users and items have separate id spaces, items are placed after the users.
    """
    data = read_text(path)
    lines = _first_lines(data, comments=False, count=2)
    if not lines:
        raise _no_events(path)
    header_line, header = lines[0]
    if tuple(cell.strip() for cell in header.split(",")[:4]) != JODIE_HEADER:
        raise DataError(
            f"{path}:{header_line}: expected the JODIE header {','.join(JODIE_HEADER)}, got {header!r}"
        )
    if len(lines) < 2:
        raise _no_events(path, after_header=True)
    first_line, first = lines[1]
    width = len(first.split(","))
    if width < 4:
        raise DataError(
            f"{path}:{first_line}: expected at least 4 columns ({','.join(JODIE_HEADER)}), got {width}"
        )
    fields = [
        _Field(i, name, kind)
        for i, (name, kind) in enumerate(zip(JODIE_HEADER, ("id", "id", "float", "label"), strict=True))
    ]
    fields += [_Field(4 + j, f"feature {j + 1}", "float") for j in range(width - 4)]
    note = f" (4 + {width - 4} features, as on line {first_line})"
    arrays = _read_columns(
        path,
        data,
        sep=",",
        comments=False,
        skip_lines=header_line,
        n_columns=width,
        fields=fields,
        width_note=note,
    )
    edge_feat = np.stack(arrays[4:], axis=1) if width > 4 else None
    return from_events(
        dataset_name(path),
        arrays[0],
        arrays[1],
        arrays[2],
        label=arrays[3],
        edge_feat=edge_feat,
        bipartite=True,
    )


def read_csv(path: Path, columns: CsvColumns) -> TemporalDataset:
    """Generic delimited file; ``columns`` names the source, destination, time (and feature) columns."""
    data = read_text(path)
    lines = _first_lines(data, comments=False, count=2)
    if not lines:
        raise _no_events(path)
    first_line, first = lines[0]
    cells = [cell.strip() for cell in _cells(first, columns.delimiter)]
    keys = (columns.src, columns.dst, columns.time, *columns.features)
    if columns.by_name:
        missing = [key for key in keys if key not in cells]
        if missing:
            raise DataError(f"{path}:{first_line}: no column named {missing[0]!r} in the header {cells}")
        if len(lines) < 2:
            raise _no_events(path, after_header=True)
        index = [cells.index(key) for key in keys]
        skip_lines = first_line
    else:
        if max(keys) >= len(cells):
            raise DataError(
                f"{path}:{first_line}: column {max(keys)} is out of range: the line has {len(cells)} columns"
            )
        index = list(keys)
        skip_lines = 0
    fields = [_Field(index[0], "src", "id"), _Field(index[1], "dst", "id"), _Field(index[2], "time", "float")]
    fields += [
        _Field(i, f"feature column {key!r}", "float")
        for i, key in zip(index[3:], columns.features, strict=True)
    ]
    arrays = _read_columns(
        path,
        data,
        sep=columns.delimiter,
        comments=False,
        skip_lines=skip_lines,
        n_columns=len(cells),
        fields=fields,
    )
    edge_feat = np.stack(arrays[3:], axis=1) if columns.features else None
    return from_events(dataset_name(path), arrays[0], arrays[1], arrays[2], edge_feat=edge_feat)


def _load_npy(path: Path, rows_needed: int) -> np.ndarray:
    """A 2-D float matrix from ``path`` with at least ``rows_needed`` rows, as float32."""
    try:
        matrix = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{path}: not a readable .npy file: {error}") from None
    if matrix.ndim != 2 or matrix.dtype.kind not in "iuf":
        raise DataError(f"{path}: expected a 2-D numeric array, got {matrix.dtype} of shape {matrix.shape}")
    if len(matrix) < rows_needed:
        raise DataError(f"{path}: has {len(matrix)} rows, the events need at least {rows_needed}")
    if not np.isfinite(matrix).all():
        raise DataError(f"{path}: features must be finite numbers (found NaN or inf)")
    return matrix.astype(np.float32, copy=False)


def read_tgn(path: Path) -> TemporalDataset:
    """TGN-processed ``ml_<name>.csv`` (columns ``,u,i,ts,label,idx``, 1-based ids, items after users),
    ``ml_<name>.npy`` (edge features, row ``idx`` for each event) and ``ml_<name>_node.npy`` (node features,
    row = TGN node id)."""
    csv_path, edge_path, node_path = tgn_files(path)
    data = read_text(csv_path)
    lines = _first_lines(data, comments=False, count=2)
    if not lines:
        raise _no_events(path)
    header_line, header = lines[0]
    names = [cell.strip() for cell in header.split(",")]
    missing = [name for name in TGN_COLUMNS if name not in names]
    if missing:
        raise DataError(f"{path}:{header_line}: no column named {missing[0]!r} in the header {names}")
    if len(lines) < 2:
        raise _no_events(path, after_header=True)
    kinds = {"u": "id", "i": "id", "ts": "float", "label": "label", "idx": "id"}
    fields = [_Field(names.index(name), name, kinds[name]) for name in TGN_COLUMNS]
    src, dst, t, label, idx = _read_columns(
        path, data, sep=",", comments=False, skip_lines=header_line, n_columns=len(names), fields=fields
    )
    if min(src.min(), dst.min(), idx.min()) < 0:
        raise DataError(f"{path}: negative node id or event index")
    edge_table = _load_npy(edge_path, int(idx.max()) + 1)
    node_table = _load_npy(node_path, int(max(src.max(), dst.max())) + 1)
    bipartite = bool(src.max() < dst.min())
    edge_feat = edge_table[idx] if edge_table.shape[1] else None
    ds = from_events(dataset_name(path), src, dst, t, label=label, edge_feat=edge_feat, bipartite=bipartite)
    node_feat = node_table[ds.node_ids] if node_table.shape[1] else None
    return dataclasses.replace(ds, node_feat=node_feat)
