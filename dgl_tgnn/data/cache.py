"""On-disk cache of parsed datasets: one ``.npz`` per (input file contents, loader options).

The directory is ``$DGL_TGNN_CACHE``, or ``~/.cache/dgl_tgnn`` when that is unset. A changed input file has a
different content hash, so it is parsed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dgl_tgnn.data.dataset import TemporalDataset
from dgl_tgnn.data.formats import read_raw

# Bump when parsing changes what a file turns into, so that older cache entries are no longer used.
# 2: string ids, the source record, float32 features checked after the cast.
CACHE_VERSION = 2
_OPTIONAL = ("label", "edge_feat", "node_feat")


def cache_dir() -> Path:
    """``$DGL_TGNN_CACHE`` or ``~/.cache/dgl_tgnn``."""
    return Path(os.environ.get("DGL_TGNN_CACHE") or Path.home() / ".cache" / "dgl_tgnn")


def cache_key(files: Sequence[Path], options: dict) -> str:
    """sha256 hex digest of the cache version, the loader ``options`` (JSON-able) and the files' bytes."""
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, options], sort_keys=True).encode())
    for path in files:
        content = read_raw(path, text=path.suffix != ".npy")
        digest.update(len(content).to_bytes(8, "little"))
        digest.update(content)
    return digest.hexdigest()


def load_cached(key: str, name: str) -> TemporalDataset | None:
    """The dataset stored under ``key`` (renamed ``name``), or None when absent or unreadable."""
    path = cache_dir() / f"{key}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {field: stored[field] for field in stored.files}
        for field in ("edge_feat", "node_feat"):  # never hand out a copy that is not finite
            if field in arrays and not np.isfinite(arrays[field]).all():
                return None
        return TemporalDataset(
            name=name,
            src=arrays["src"],
            dst=arrays["dst"],
            t=arrays["t"],
            label=arrays.get("label"),
            edge_feat=arrays.get("edge_feat"),
            node_feat=arrays.get("node_feat"),
            node_ids=arrays["node_ids"],
            num_nodes=int(arrays["num_nodes"]),
            bipartite=bool(arrays["bipartite"]),
            dst_candidates=arrays["dst_candidates"],
            source=json.loads(str(arrays["source"])),
        )
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def store(key: str, ds: TemporalDataset) -> None:
    """Write ``ds`` under ``key`` (atomically); warn and go on when the cache directory is not writable."""
    arrays = {
        "src": ds.src,
        "dst": ds.dst,
        "t": ds.t,
        "node_ids": ds.node_ids,
        "num_nodes": np.int64(ds.num_nodes),
        "bipartite": np.bool_(ds.bipartite),
        "dst_candidates": ds.dst_candidates,
        "source": np.str_(json.dumps(ds.source)),
    }
    arrays.update({field: getattr(ds, field) for field in _OPTIONAL if getattr(ds, field) is not None})
    directory = cache_dir()
    partial = directory / f".{key}.{os.getpid()}.partial"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as file:
            np.savez(file, **arrays)
        os.replace(partial, directory / f"{key}.npz")
    except OSError as error:
        partial.unlink(missing_ok=True)
        warnings.warn(f"dgl_tgnn: cannot write the dataset cache in {directory}: {error}", stacklevel=3)
