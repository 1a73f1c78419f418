"""Readers for event files: JODIE csv, TGN ``ml_<name>`` files, SNAP/KONECT edge lists, TGB edge lists,
generic delimited files.

Every reader parses the whole file with the pandas C parser, then validates the columns with numpy. Only when
that fails is the text scanned line by line, to name the first offending line in a one-line ``DataError``
(``file:line: what is wrong``). gzip input is recognised by its magic bytes, whatever the file name. What one
load may read is bounded (:func:`dgl_tgnn.data.dataset.max_load_bytes`); binary content is refused.

Generic files (``csv``): the delimiter is sniffed (``,`` ``;`` tab ``|`` or whitespace), a header line is
detected, and the source, destination and time columns are found by common names (``COLUMN_NAMES``) unless
given; times are numbers or ISO-8601 dates / datetimes (converted to seconds since 1970, UTC).
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import os
import re
import stat
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dgl_tgnn.data.dataset import (
    DataError,
    TemporalDataset,
    float32_features,
    format_bytes,
    from_events,
    max_load_bytes,
)
from dgl_tgnn.registry import FORMATS

JODIE_HEADER = ("user_id", "item_id", "timestamp", "state_label")
TGN_COLUMNS = ("u", "i", "ts", "label", "idx")
GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
_TGN_NAME = re.compile(r"ml_(.+)\.csv")
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_INT64_RANGE = (-(2**63), 2**63 - 1)
_TGB_NAME = re.compile(r"(tgbl-[\w-]+?)_edgelist(_v\d+)?\.csv(\.gz)?")
_ISO_DATE = re.compile(
    r"\s*\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)?\s*"
)
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_CHUNK = 1 << 16
# Column names recognised in a header (lower case, without anything but letters and digits), by role.
COLUMN_NAMES = {
    "src": (
        "src",
        "source",
        "from",
        "u",
        "user",
        "userid",
        "sender",
        "srcid",
        "sourceid",
        "fromid",
        "node1",
        "head",
        "sourcenode",
        "srcnode",
        "fromnode",
        "caller",
        "author",
        "uid",
        "usr",
        "start",
    ),
    "dst": (
        "dst",
        "destination",
        "target",
        "to",
        "v",
        "i",
        "item",
        "itemid",
        "receiver",
        "recipient",
        "dstid",
        "targetid",
        "toid",
        "destinationid",
        "node2",
        "tail",
        "targetnode",
        "dstnode",
        "tonode",
        "callee",
        "iid",
        "end",
    ),
    "time": (
        "t",
        "time",
        "timestamp",
        "ts",
        "date",
        "datetime",
        "unixtime",
        "unixtimestamp",
        "epoch",
        "created",
        "createdat",
        "when",
        "day",
        "timestamps",
        "seconds",
        "time_",
        "eventtime",
    ),
}
FLAGS = {"src": "--src-col", "dst": "--dst-col", "time": "--time-col"}


@dataclass(frozen=True)
class CsvColumns:
    """Column choice for the generic csv format; None means "find it".

    Columns are header names (the file then has a header) or 0-based indices. ``delimiter``: one character,
    ``" "`` for runs of whitespace, None to sniff it. ``header``: None to detect a header line.
    """

    src: int | str | None = None
    dst: int | str | None = None
    time: int | str | None = None
    features: tuple[int | str, ...] = ()
    delimiter: str | None = None
    header: bool | None = None

    def __post_init__(self) -> None:
        for role, key in (("src", self.src), ("dst", self.dst), ("time", self.time)):
            if key is not None and not (isinstance(key, str) or _is_index(key)):
                raise ValueError(f"{FLAGS[role]}: expected a column name or 0-based index, got {key!r}")
        for key in self.features:
            if not (isinstance(key, str) or _is_index(key)):
                raise ValueError(f"--feature-cols: expected column names or 0-based indices, got {key!r}")
        given = [key for key in (self.src, self.dst, self.time) if key is not None]
        if len(set(given)) != len(given):
            raise ValueError(
                "--src-col, --dst-col and --time-col must differ, "
                f"got {self.src!r}, {self.dst!r}, {self.time!r}"
            )
        if self.delimiter is not None and (len(self.delimiter) != 1 or self.delimiter in '\r\n"'):
            raise ValueError(
                f"--delimiter must be one character (not a quote or newline), got {self.delimiter!r}"
            )
        if self.header is False and any(isinstance(k, str) for k in (*given, *self.features)):
            raise ValueError("column names need a header line: give 0-based indices, or drop --no-header")

    @property
    def by_name(self) -> bool:
        return any(isinstance(k, str) for k in (self.src, self.dst, self.time, *self.features))


def _is_index(key: object) -> bool:
    return isinstance(key, int) and not isinstance(key, bool) and key >= 0


@dataclass(frozen=True)
class _Field:
    """One column to extract: its 0-based index, its name in messages, and how to parse it.

    kind: ``"id"`` node id: integers -> int64, other text -> str; ``"index"`` integer text -> int64;
    ``"label"`` integral number -> int64; ``"float"`` finite number -> float64; ``"time"`` finite number or
    ISO-8601 date(time) -> float64 seconds; ``"feature"`` number finite in float32 -> float64.
    hint: appended to error messages about this column (the flag that picks another column).
    """

    column: int
    what: str
    kind: str
    hint: str = ""


def _open_error(path: Path, error: OSError) -> DataError:
    if isinstance(error, FileNotFoundError):
        return DataError(f"{path}: no such file")
    if isinstance(error, IsADirectoryError):
        return DataError(f"{path}: is a directory, not a file")
    return DataError(f"{path}: cannot read: {error.strerror or error}")


def _too_big(path: Path, what: str) -> DataError:
    limit = max_load_bytes()
    return DataError(
        f"{path}: {what} more than the load limit of {format_bytes(limit)} (a quarter of this machine's "
        "memory; set DGL_TGNN_MAX_LOAD_BYTES to raise it)"
    )


def _binary(path: Path) -> DataError:
    return DataError(f"{path}: binary content (NUL bytes), not a text file of events")


def read_raw(path: Path, text: bool = True) -> bytes:
    """The bytes of ``path`` as stored (possibly gzip-compressed), at most the load limit. With ``text``,
    binary (non-gzip) content is refused at its first 64 KiB, so ``/dev/zero`` fails at once."""
    limit = max_load_bytes()
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if stat.S_ISREG(os.fstat(file.fileno()).st_mode) and size > limit:
                raise _too_big(path, f"holds {format_bytes(size)},")
            head = file.read(_CHUNK)
            if text and head[:2] != GZIP_MAGIC and b"\x00" in head:
                raise _binary(path)
            rest = file.read(limit + 1 - len(head))
    except OSError as error:
        raise _open_error(path, error) from None
    if len(head) + len(rest) > limit:
        raise _too_big(path, "gives")
    return head + rest


def _normalise(path: Path, data: bytes) -> bytes:
    """Less a UTF-8 BOM, with CRLF and bare CR line ends as LF; refuses NUL bytes."""
    data = data.removeprefix(UTF8_BOM)
    if b"\x00" in data:
        raise _binary(path)
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data


def read_text(path: Path) -> bytes:
    """The content of ``path``, gunzipped when it starts with the gzip magic bytes (at most the load limit),
    less a UTF-8 BOM, with LF line ends."""
    raw = read_raw(path)
    if raw[:2] != GZIP_MAGIC:
        return _normalise(path, raw)
    limit = max_load_bytes()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as file:
            data = file.read(limit + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: damaged gzip data: {error}") from None
    if len(data) > limit:
        raise _too_big(path, "decompresses to")
    return _normalise(path, data)


def peek_text(path: Path, size: int = _CHUNK) -> bytes:
    """The first ``size`` bytes of the (gunzipped) content of ``path``, normalised as by ``read_text``."""
    try:
        with open(path, "rb") as file:
            head = file.read(size)
            if head[:2] != GZIP_MAGIC:
                return _normalise(path, head)
        with gzip.open(path, "rb") as file:
            return _normalise(path, file.read(size))
    except (OSError, EOFError, zlib.error) as error:
        if isinstance(error, OSError) and not isinstance(error, (zlib.error, gzip.BadGzipFile)):
            raise _open_error(path, error) from None
        raise DataError(f"{path}: damaged gzip data: {error}") from None


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


def _cells(line: str, sep: str | None, where: str = "") -> list[str]:
    """Fields of one line: split on runs of whitespace when ``sep`` is None, else csv-split on ``sep``."""
    if sep is None:
        return line.split()
    try:
        return next(csv.reader([line], delimiter=sep), [])
    except csv.Error as error:
        raise DataError(f"{where}: cannot split the line: {error}") from None


def _first_lines(data: bytes, comments: bool, count: int) -> list[tuple[int, str]]:
    lines = []
    for item in _data_lines(data, comments):
        lines.append(item)
        if len(lines) == count:
            break
    return lines


def _is_number(cell: str) -> bool:
    try:
        return "_" not in cell and np.isfinite(float(cell))
    except ValueError:
        return False


def _is_time(cell: str) -> bool:
    return _is_number(cell) or _ISO_DATE.fullmatch(cell) is not None


def _dates_to_seconds(values: np.ndarray) -> np.ndarray | None:
    """ISO-8601 dates / datetimes (naive ones taken as UTC) as float64 seconds since 1970, or None."""
    text = pd.Series(values, dtype=object)
    if not text.map(lambda cell: isinstance(cell, str) and _ISO_DATE.fullmatch(cell) is not None).all():
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stamps = pd.to_datetime(text.str.strip(), format="ISO8601", utc=True)
    except (ValueError, TypeError, OverflowError):
        return None
    seconds = ((stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64)
    return seconds if np.isfinite(seconds).all() else None


def _convert(values: np.ndarray, kind: str, notes: dict) -> np.ndarray | None:
    """The column as ``kind`` says (see ``_Field``), or None if any value is invalid."""
    dtype_kind = values.dtype.kind
    if kind == "index":
        return values.astype(np.int64) if dtype_kind == "i" else None
    if kind == "id":
        if dtype_kind == "i":
            return values.astype(np.int64)
        if dtype_kind != "O":
            return None
        text = pd.Series(values, dtype=object)
        if not text.map(lambda cell: isinstance(cell, str)).all():
            return None
        text = text.str.strip()
        return None if (text == "").any() else text.to_numpy(dtype=str)
    if kind == "time" and dtype_kind == "O":
        seconds = _dates_to_seconds(values)
        if seconds is not None:
            notes["time_unit"] = "seconds since 1970-01-01 UTC, from ISO-8601 dates"
        return seconds
    if dtype_kind == "i":
        return values.astype(np.int64 if kind == "label" else np.float64)
    if dtype_kind != "f" or not np.isfinite(values).all():
        return None
    if kind == "label":
        return values.astype(np.int64) if np.array_equal(values, np.round(values)) else None
    if kind == "feature" and np.abs(values).max(initial=0.0) > _FLOAT32_MAX:
        return None
    return values.astype(np.float64)


def _cell_problem(cell: str, kind: str) -> str | None:
    """What is wrong with one text cell for ``kind``, or None."""
    if kind == "id":
        return "is empty" if not cell.strip() else None
    if kind == "index":
        if not _INTEGER.fullmatch(cell):
            return f"is not an integer node id: {cell.strip()!r}"
        if not _INT64_RANGE[0] <= int(cell) <= _INT64_RANGE[1]:
            return f"is out of the int64 range: {cell.strip()!r}"
        return None
    if kind == "time" and _ISO_DATE.fullmatch(cell):
        return None
    try:
        if "_" in cell:
            raise ValueError(cell)
        value = float(cell)
    except ValueError:
        if kind == "time":
            return f"is not a number or an ISO-8601 date: {cell.strip()!r}"
        return f"is not a number: {cell.strip()!r}"
    if not np.isfinite(value):
        return f"is not a finite number: {cell.strip()!r}"
    if kind == "label" and value != round(value):
        return f"is not an integer: {cell.strip()!r}"
    if kind == "feature" and abs(value) > _FLOAT32_MAX:
        return f"overflows float32 (|x| <= {_FLOAT32_MAX:.3g}): {cell.strip()!r}"
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
    notes: dict | None = None,
) -> list[np.ndarray]:
    """Parse every data line after the first ``skip_lines`` lines into ``n_columns`` columns and return the
    arrays of ``fields``; raise a ``DataError`` naming the first bad line when any line is wrong. ``notes``
    receives what was found out on the way (``time_unit``)."""
    notes = {} if notes is None else notes
    text = data.replace(b"%", b"#") if comments and b"%" in data else data
    reason = "unknown"
    id_columns = sorted({field.column for field in fields if field.kind == "id"})
    frame = None
    for as_text in (False, True):
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
                    skip_blank_lines=True,
                    dtype={column: str for column in id_columns} if as_text else None,
                    keep_default_na=not as_text,
                    na_filter=not as_text,
                )
        except (ValueError, OverflowError, MemoryError) as error:  # pandas ParserError, ... are ValueErrors
            frame, reason = None, str(error).strip().replace("\n", " ")
            break
        # ids that are not all integers are read again as text (no NaN for "NA", "null", ...)
        if as_text or all(frame[c].dtype.kind == "i" for c in id_columns if c < frame.shape[1]):
            break
    if frame is not None and frame.shape[1] == n_columns:
        arrays = [_convert(frame[field.column].to_numpy(), field.kind, notes) for field in fields]
        if all(array is not None for array in arrays):
            return arrays
    for number, line in _data_lines(data, comments):
        if number <= skip_lines:
            continue
        cells = _cells(line, sep, f"{path}:{number}")
        if len(cells) != n_columns:
            raise DataError(f"{path}:{number}: expected {n_columns} columns{width_note}, got {len(cells)}")
        for field in fields:
            problem = _cell_problem(cells[field.column], field.kind)
            if problem:
                raise DataError(f"{path}:{number}: {field.what} {problem}{field.hint}")
    raise DataError(f"{path}: cannot parse: {reason}")


def _no_events(path: Path, after_header: bool = False) -> DataError:
    return DataError(
        f"{path}: no events after the header" if after_header else f"{path}: empty file (no events)"
    )


def dataset_name(path: Path) -> str:
    """Name of the dataset in ``path``: its file name less ``.gz`` and one more suffix (and ``ml_``, or TGB's
    ``_edgelist_v2``)."""
    name = path.name.removesuffix(".gz")
    match = _TGN_NAME.fullmatch(name)
    if match:
        return match.group(1)
    match = _TGB_NAME.fullmatch(path.name)
    return match.group(1) if match else Path(name).stem


def guess_format(path: Path) -> str:
    """``tgn`` for ``ml_<name>.csv``, ``tgb`` for ``tgbl-<name>_edgelist*.csv``, ``jodie`` for a JODIE header,
    ``edgelist`` for whitespace-separated lines of 3 or 4 columns ending in numbers, else ``csv`` (a delimited
    file whose columns are found by their header names or positions)."""
    if _TGN_NAME.fullmatch(path.name):
        return "tgn"
    if _TGB_NAME.fullmatch(path.name):
        return "tgb"
    head = peek_text(path)
    first = _first_lines(head, comments=False, count=1)
    if first and tuple(c.strip() for c in first[0][1].split(",")[:4]) == JODIE_HEADER:
        return "jodie"
    first = _first_lines(head, comments=True, count=1)
    if first:
        cells = first[0][1].split()
        if len(cells) in (3, 4) and all(_is_number(cell) for cell in cells[2:]) and "," not in first[0][1]:
            return "edgelist"
    return "csv"


def tgn_files(path: Path) -> tuple[Path, Path, Path]:
    """``ml_<name>.csv`` and its siblings ``ml_<name>.npy`` (edge features), ``ml_<name>_node.npy``."""
    match = _TGN_NAME.fullmatch(path.name)
    if not match:
        raise DataError(f"{path}: the TGN format needs a file named ml_<name>.csv (or give another --format)")
    stem = f"ml_{match.group(1)}"
    return path, path.with_name(f"{stem}.npy"), path.with_name(f"{stem}_node.npy")


def read_edgelist(path: Path, keep_ids: bool = False, bipartite: bool | None = None) -> TemporalDataset:
    """SNAP/KONECT whitespace edge list: ``src dst time`` or ``src dst weight time`` a line; lines starting
    with ``%`` or ``#`` are comments. A weight becomes a 1-dim edge feature. ``bipartite``: None guesses
    it (``from_events``)."""
    data = read_text(path)
    first = _first_lines(data, comments=True, count=1)
    if not first:
        raise _no_events(path)
    number, line = first[0]
    width = len(line.split())
    if width not in (3, 4):
        raise DataError(
            f"{path}:{number}: expected 3 or 4 columns (src dst [weight] time), got {width} "
            "(other layouts: --format csv with --src-col, --dst-col, --time-col)"
        )
    fields = [_Field(0, "src", "id"), _Field(1, "dst", "id"), _Field(width - 1, "time", "float")]
    if width == 4:
        fields.append(_Field(2, "weight", "feature"))
    arrays = _read_columns(path, data, sep=None, comments=True, skip_lines=0, n_columns=width, fields=fields)
    edge_feat = arrays[3][:, None] if width == 4 else None
    columns = {"src": 0, "dst": 1, "time": width - 1, "features": [2] if width == 4 else []}
    source = _source(path, "edgelist", columns, delimiter="whitespace", header=False)
    return from_events(
        dataset_name(path),
        arrays[0],
        arrays[1],
        arrays[2],
        edge_feat=edge_feat,
        bipartite=bipartite,
        keep_ids=keep_ids,
        source=source,
    )


def _source(path: Path, fmt: str, columns: dict, **more: object) -> dict:
    info = {"path": str(path), "format": fmt, "columns": columns, "time_unit": "as in the file"}
    info.update(more)
    return info


def read_jodie(path: Path, keep_ids: bool = False, fmt: str = "jodie") -> TemporalDataset:
    """JODIE csv: header ``user_id,item_id,timestamp,state_label,...`` then ``user,item,time,label,f1..fd``.

    Bipartite: users and items have separate id spaces, items are placed after the users. (TGB's
    ``tgbl-wiki`` / ``subreddit`` / ``lastfm`` edge lists have this layout under other header names.)
    """
    data = read_text(path)
    lines = _first_lines(data, comments=False, count=2)
    if not lines:
        raise _no_events(path)
    header_line, header = lines[0]
    if fmt == "jodie" and tuple(cell.strip() for cell in header.split(",")[:4]) != JODIE_HEADER:
        raise DataError(
            f"{path}:{header_line}: expected the JODIE header {','.join(JODIE_HEADER)}, got {header!r} "
            "(other layouts: --format csv)"
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
    fields += [_Field(4 + j, f"feature {j + 1}", "feature") for j in range(width - 4)]
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
    names = [cell.strip() for cell in _cells(header, ",", f"{path}:{header_line}")]
    columns = {
        "src": names[0] if names else 0,
        "dst": names[1] if len(names) > 1 else 1,
        "time": names[2] if len(names) > 2 else 2,
        "label": names[3] if len(names) > 3 else 3,
        "features": list(range(4, width)),
    }
    return from_events(
        dataset_name(path),
        arrays[0],
        arrays[1],
        arrays[2],
        label=arrays[3],
        edge_feat=edge_feat,
        bipartite=True,
        keep_ids=keep_ids,
        source=_source(path, fmt, columns, delimiter=",", header=True),
    )


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _sniff_delimiter(lines: list[tuple[int, str]]) -> str | None:
    """The delimiter giving the most columns (at least 2) with the same number on at least 3/4 of the lines;
    None (runs of whitespace) when no delimiter does better."""
    best, best_width = None, 0
    for sep in ("\t", ",", ";", "|", None):
        try:
            widths = [len(_cells(line, sep)) for _, line in lines]
        except DataError:
            continue
        width = max(set(widths), key=widths.count)
        if width >= 2 and widths.count(width) >= 0.75 * len(widths) and width > best_width:
            best, best_width = sep, width
    return best


def _looks_like_header(first: list[str], rest: list[list[str]]) -> bool:
    """A header has a known column name, or a column whose later cells are all numbers or dates but whose
    first cell is neither."""
    names = {name for names in COLUMN_NAMES.values() for name in names}
    if any(_norm(cell) in names for cell in first):
        return True
    for j, cell in enumerate(first):
        later = [row[j] for row in rest if j < len(row)]
        if later and all(_is_time(c) for c in later) and not _is_time(cell):
            return True
    return False


def _column_index(path: Path, key: int | str, header: list[str] | None, width: int, flag: str) -> int:
    if isinstance(key, str):
        if header is None:
            raise DataError(f"{path}:1: {flag} {key!r} names a column, but the file has no header line")
        if key not in header:
            matches = [i for i, name in enumerate(header) if name.lower() == key.lower()]
            if len(matches) != 1:
                raise DataError(f"{path}:1: no column named {key!r} in the header {header} ({flag})")
            return matches[0]
        return header.index(key)
    if key >= width:
        raise DataError(f"{path}:1: column {key} is out of range: the line has {width} columns ({flag})")
    return key


def read_csv(
    path: Path,
    columns: CsvColumns,
    keep_ids: bool = False,
    fmt: str = "csv",
    bipartite: bool | None = None,
) -> TemporalDataset:
    """Generic delimited file: ``columns`` names the source, destination, time (and feature) columns; what it
    leaves None (columns, delimiter, header) is found from the first lines. ``bipartite``: None guesses
    it (``from_events``)."""
    data = read_text(path)
    lines = _first_lines(data, comments=False, count=21)
    if not lines:
        raise _no_events(path)
    notes: list[str] = []
    sep = columns.delimiter
    if sep is None:
        sep = _sniff_delimiter(lines[:-1] if len(lines) > 2 else lines)
        notes.append(f"delimiter {'whitespace' if sep is None else repr(sep)} (--delimiter)")
    elif sep == " ":
        sep = None
    rows = [[cell.strip() for cell in _cells(line, sep, f"{path}:{number}")] for number, line in lines]
    first_line = lines[0][0]
    has_header = columns.header
    if has_header is None:
        has_header = columns.by_name or _looks_like_header(rows[0], rows[1:])
        if has_header:
            notes.append("line 1 is a header (--no-header)")
    header = rows[0] if has_header else None
    width = len(rows[0])
    if has_header and len(lines) < 2:
        raise _no_events(path, after_header=True)
    keys: dict[str, int] = {}
    for role in ("src", "dst", "time"):
        key = getattr(columns, role)
        if key is not None:
            keys[role] = _column_index(path, key, header, width, FLAGS[role])
    taken = set(keys.values())
    missing = [role for role in ("src", "dst", "time") if role not in keys]
    if missing and header is not None:
        for role in missing:
            normed = [_norm(name) for name in header]
            found = next(
                (
                    normed.index(name)
                    for name in COLUMN_NAMES[role]
                    if name in normed and normed.index(name) not in taken
                ),
                None,
            )
            if found is None:
                raise DataError(
                    f"{path}:{first_line}: no {role} column recognised in the header {header}: "
                    f"name it with {FLAGS[role]}"
                )
            keys[role] = found
            taken.add(found)
        notes.append(
            "columns "
            + ", ".join(f"{role}={header[keys[role]]!r}" for role in missing)
            + " (by name; "
            + ", ".join(FLAGS[role] for role in missing)
            + ")"
        )
    elif missing:
        if width == 3 and not taken:
            keys.update(src=0, dst=1, time=2)
        elif width == 4 and not taken:
            keys.update(src=0, dst=1, time=3)
        else:
            raise DataError(
                f"{path}:{first_line}: cannot tell the {', '.join(missing)} columns of {width} without a "
                f"header: give {', '.join(FLAGS[role] for role in missing)} (0-based column indices)"
            )
        notes.append(
            f"columns src={keys['src']}, dst={keys['dst']}, time={keys['time']} (by position; "
            "--src-col, --dst-col, --time-col)"
        )
    if len(set(keys.values())) != 3:
        raise DataError(f"{path}: --src-col, --dst-col and --time-col name the same column: {keys}")
    features = [_column_index(path, key, header, width, "--feature-cols") for key in columns.features]

    def label(i: int) -> str:
        return repr(header[i]) if header is not None else f"column {i}"

    fields = [
        _Field(keys["src"], "src", "id", f" ({label(keys['src'])}; --src-col picks another column)"),
        _Field(keys["dst"], "dst", "id", f" ({label(keys['dst'])}; --dst-col picks another column)"),
        _Field(keys["time"], "time", "time", f" ({label(keys['time'])}; --time-col picks another column)"),
    ]
    fields += [_Field(i, f"feature {label(i)}", "feature", " (--feature-cols)") for i in features]
    found: dict = {}
    arrays = _read_columns(
        path,
        data,
        sep=sep,
        comments=False,
        skip_lines=first_line if has_header else 0,
        n_columns=width,
        fields=fields,
        notes=found,
    )
    edge_feat = np.stack(arrays[3:], axis=1) if features else None

    def name(i: int) -> int | str:
        return header[i] if header is not None else i

    used = {keys["src"], keys["dst"], keys["time"], *features}
    unused = [name(i) for i in range(width) if i not in used]
    source = _source(
        path,
        fmt,
        {
            "src": name(keys["src"]),
            "dst": name(keys["dst"]),
            "time": name(keys["time"]),
            "features": [name(i) for i in features],
        },
        delimiter="whitespace" if sep is None else sep,
        header=bool(has_header),
        notes=notes,
        unused_columns=unused,
    )
    source.update(found)
    return from_events(
        dataset_name(path),
        arrays[0],
        arrays[1],
        arrays[2],
        edge_feat=edge_feat,
        bipartite=bipartite,
        keep_ids=keep_ids,
        source=source,
    )


def read_tgb(path: Path, keep_ids: bool = False) -> TemporalDataset:
    """A TGB link-prediction edge list (``tgbl-<name>_edgelist_v2.csv``, as downloaded).

    Two layouts: ``tgbl-wiki`` / ``subreddit`` / ``lastfm`` are JODIE files (``src,dst,t,label,features...``,
    bipartite); the others start with the time (``ts,src,dst,weight...``, string ids such as addresses,
    one id space), and their numeric columns after the destination become edge features.
    """
    head = peek_text(path)
    lines = _first_lines(head, comments=False, count=2)
    if not lines:
        raise _no_events(path)
    header = [cell.strip() for cell in _cells(lines[0][1], ",", f"{path}:{lines[0][0]}")]
    if not header or _norm(header[0]) not in COLUMN_NAMES["time"]:
        return _tgb_node_features(path, read_jodie(path, keep_ids=keep_ids, fmt="tgb"))
    if len(header) < 3:
        raise DataError(f"{path}:{lines[0][0]}: expected ts,src,dst,... in a TGB edge list, got {header}")
    second = (
        [cell.strip() for cell in _cells(lines[1][1], ",", f"{path}:{lines[1][0]}")] if len(lines) > 1 else []
    )
    features = tuple(i for i in range(3, len(header)) if i < len(second) and _is_number(second[i]))
    columns = CsvColumns(src=1, dst=2, time=0, features=features, delimiter=",", header=True)
    return _tgb_node_features(path, read_csv(path, columns, keep_ids=keep_ids, fmt="tgb", bipartite=False))


def _tgb_node_features(path: Path, ds: TemporalDataset) -> TemporalDataset:
    """Node features from TGB's node feature file next to the edge list (``*node_feat*.csv``, e.g.
    ``airport_node_feat_v2.csv``): first column the node id, its numeric columns the features; nodes
    without a row get zeros."""
    files = sorted(path.parent.glob("*node_feat*.csv"))
    if not files or ds.bipartite:
        return ds
    if len(files) > 1:
        raise DataError(f"{path.parent}: several node feature files {[f.name for f in files]}: keep one")
    feat_path = files[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = pd.read_csv(io.BytesIO(read_text(feat_path)), dtype={0: str}, encoding_errors="replace")
    except (ValueError, OverflowError) as error:
        raise DataError(f"{feat_path}: cannot parse: {str(error).strip().splitlines()[0]}") from None
    numeric = [c for c in frame.columns[1:] if frame[c].dtype.kind in "iuf"]
    if frame.shape[1] < 2 or not numeric:
        raise DataError(f"{feat_path}: expected a node id column and numeric feature columns")
    ids = frame.iloc[:, 0].astype(str).str.strip()
    if not ids.is_unique:
        raise DataError(f"{feat_path}: node {ids[ids.duplicated()].iloc[0]!r} has several rows")
    table = frame[numeric].to_numpy(dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        bad = ~np.isfinite(table.astype(np.float32))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataError(
            f"{feat_path}:{row + 2}: {numeric[col]!r} is not a finite float32: {table[row, col]!r}"
        )
    position = pd.Index(ids).get_indexer(ds.node_ids.astype(str))
    node_feat = np.zeros((ds.num_nodes, len(numeric)), dtype=np.float32)
    node_feat[position >= 0] = table[position[position >= 0]]
    source = dict(ds.source)
    source["node_features"] = {"path": str(feat_path), "columns": numeric}
    missing = int(np.sum(position < 0))
    if missing:
        note = f"{missing:,} nodes without a row in {feat_path.name}: zeros"
        source["notes"] = [*source.get("notes", []), note]
    return dataclasses.replace(ds, node_feat=node_feat, source=source)


def _load_npy(path: Path, rows_needed: int) -> np.ndarray:
    """A 2-D float matrix from ``path`` with at least ``rows_needed`` rows (memory-mapped, not read)."""
    try:
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{path}: not a readable .npy file: {error}") from None
    if matrix.ndim != 2 or matrix.dtype.kind not in "iuf":
        raise DataError(f"{path}: expected a 2-D numeric array, got {matrix.dtype} of shape {matrix.shape}")
    if len(matrix) < rows_needed:
        raise DataError(f"{path}: has {len(matrix)} rows, the events need at least {rows_needed}")
    return matrix


def _npy_rows(path: Path, matrix: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``matrix[rows]`` as float32, refusing values not finite after the cast (naming file, row, column)."""
    nbytes = len(rows) * matrix.shape[1] * 4
    if nbytes > max_load_bytes():
        raise _too_big(path, f"needs {format_bytes(nbytes)},")
    try:
        return float32_features(np.asarray(matrix[rows]), str(path))
    except DataError as error:
        # name the row of the file, not of the selection
        message = str(error)
        match = re.match(rf"{re.escape(str(path))}: row (\d+)(.*)", message)
        if match:
            message = f"{path}: row {int(rows[int(match.group(1))])}{match.group(2)}"
        raise DataError(message) from None


def read_tgn(path: Path, keep_ids: bool = False) -> TemporalDataset:
    """TGN-processed ``ml_<name>.csv`` (columns ``,u,i,ts,label,idx``, 1-based ids, items after users),
    ``ml_<name>.npy`` (edge features, row ``idx`` for each event) and ``ml_<name>_node.npy`` (node features,
    row = TGN node id)."""
    if keep_ids:
        raise ValueError("--keep-ids does not apply to --format tgn: its ids index the .npy feature tables")
    csv_path, edge_path, node_path = tgn_files(path)
    data = read_text(csv_path)
    lines = _first_lines(data, comments=False, count=2)
    if not lines:
        raise _no_events(path)
    header_line, header = lines[0]
    names = [cell.strip() for cell in header.split(",")]
    missing = [name for name in TGN_COLUMNS if name not in names]
    if missing:
        raise DataError(
            f"{path}:{header_line}: no column named {missing[0]!r} in the header {names} "
            "(not a TGN ml_ file? give --format csv)"
        )
    if len(lines) < 2:
        raise _no_events(path, after_header=True)
    kinds = {"u": "index", "i": "index", "ts": "float", "label": "label", "idx": "index"}
    fields = [_Field(names.index(name), name, kinds[name]) for name in TGN_COLUMNS]
    src, dst, t, label, idx = _read_columns(
        path, data, sep=",", comments=False, skip_lines=header_line, n_columns=len(names), fields=fields
    )
    if min(src.min(), dst.min(), idx.min()) < 0:
        raise DataError(f"{path}: negative node id or event index")
    edge_table = _load_npy(edge_path, int(idx.max()) + 1)
    node_table = _load_npy(node_path, int(max(src.max(), dst.max())) + 1)
    bipartite = bool(src.max() < dst.min())
    edge_feat = _npy_rows(edge_path, edge_table, idx) if edge_table.shape[1] else None
    columns = {"src": "u", "dst": "i", "time": "ts", "label": "label", "features": [edge_path.name]}
    ds = from_events(
        dataset_name(path),
        src,
        dst,
        t,
        label=label,
        edge_feat=edge_feat,
        bipartite=bipartite,
        source=_source(path, "tgn", columns, delimiter=",", header=True),
    )
    node_feat = _npy_rows(node_path, node_table, ds.node_ids) if node_table.shape[1] else None
    return dataclasses.replace(ds, node_feat=node_feat)


Reader = Callable[[Path, CsvColumns | None, bool, bool | None], TemporalDataset]
"""``read(path, columns, keep_ids, bipartite)``: what ``FORMATS`` holds (``columns``: the generic csv's
only; ``bipartite``: None guesses it, for the formats in ``CHOOSE_BIPARTITE``; the others must get None)."""


def _read_csv(
    path: Path, columns: CsvColumns | None, keep_ids: bool, bipartite: bool | None
) -> TemporalDataset:
    assert columns is not None
    return read_csv(path, columns, keep_ids=keep_ids, bipartite=bipartite)


# In the order --help lists them; ``load_dataset`` guesses the format of a file when none is given.
FORMATS.register("jodie", "JODIE csv (user_id, item_id, timestamp, state_label, features)")(
    lambda path, columns, keep_ids, bipartite: read_jodie(path, keep_ids)
)
FORMATS.register("tgn", "TGN's ml_<name>.csv with its .npy features")(
    lambda path, columns, keep_ids, bipartite: read_tgn(path, keep_ids)
)
FORMATS.register("edgelist", "SNAP/KONECT whitespace edge list (src dst [weight] time)")(
    lambda path, columns, keep_ids, bipartite: read_edgelist(path, keep_ids, bipartite)
)
FORMATS.register(
    "csv", "generic delimited file (columns guessed, or given with --src-col, --dst-col, --time-col)"
)(_read_csv)
FORMATS.register("tgb", "TGB edge list (tgbl-<name>_edgelist_v2.csv)")(
    lambda path, columns, keep_ids, bipartite: read_tgb(path, keep_ids)
)
