"""The run directory ``runs/<time>-<dataset>-<model>-<neg>/``: resolved config, per-epoch metrics, curves,
checkpoints.

Files:
    config.yaml      the resolved run config (what ``--resume`` and ``dgl-tgnn evaluate`` rebuild from).
    metrics.jsonl    one JSON object per epoch (see ``Trainer``), then one ``{"final": ...}`` line.
    curves.png       training loss and validation metrics per epoch.
    checkpoint.pt    the state to resume from (written at each epoch end, every few minutes within
                     an epoch, and on Ctrl-C or SIGTERM).
    best.pt          the weights (and TGN memory after validation) of the best epoch.
    lock             held while a process trains in the directory (a second --resume refuses).
    node_ids.npy     the original id of each node row (int64 or str), when the loader re-indexed them.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from dgl_tgnn.config import CHOOSE_BIPARTITE, RunConfig, load_config

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
CURVES = "curves.png"
CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
LOCK = "lock"
NODE_IDS = "node_ids.npy"


def create_run_dir(runs_dir: str | Path, dataset: str, model: str, negatives: str) -> Path:
    """A new, empty ``runs_dir/<YYYYmmdd-HHMMSS>-<dataset>-<model>-<negatives>[-n]/``."""
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{dataset}-{model}-{negatives}"
    root = Path(runs_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for n in range(1000):
            path = root / (stem if n == 0 else f"{stem}-{n}")
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except OSError as err:
        raise ValueError(
            f"cannot create a run directory under {root} ({err.strerror or err}); "
            "choose another with --runs-dir"
        ) from None
    raise ValueError(
        f"cannot create a run directory under {root} (1000 exist); choose another with --runs-dir"
    )


def save_node_ids(run_dir: Path, node_ids: np.ndarray) -> None:
    """Writes ``node_ids`` (``TemporalDataset.node_ids``: the original id of each node row, int64 or
    str) to ``run_dir/node_ids.npy``, unless they are the rows ``0..N-1`` themselves (nothing was
    re-indexed)."""
    if node_ids.dtype.kind == "i" and np.array_equal(node_ids, np.arange(len(node_ids))):
        return
    np.save(run_dir / NODE_IDS, node_ids, allow_pickle=False)


def lock_run_dir(run_dir: Path) -> int:
    """Takes ``run_dir/lock`` (an advisory lock the system releases when the process ends, however
    it ends) and returns its file descriptor; a ValueError when another process holds it."""
    try:
        fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise ValueError(f"cannot lock the run directory {run_dir} ({err.strerror or err})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise ValueError(
            f"{run_dir} is in use by another dgl-tgnn process (pid {holder}): wait for it to end or stop it"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def unlock_run_dir(fd: int) -> None:
    """Releases a ``lock_run_dir`` lock."""
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    with open(run_dir / METRICS, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / METRICS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def rewrite_metrics(run_dir: Path, records: list[dict[str, Any]]) -> None:
    """Replace ``metrics.jsonl`` with ``records`` (on resume: drop lines written after the checkpoint)."""
    with open(run_dir / METRICS, "w") as f:
        f.writelines(json.dumps(record) + "\n" for record in records)


def plot_curves(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """``curves.png``: training loss (left) and validation metrics (right) per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [record["epoch"] for record in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [record["loss"] for record in history], marker="o")
    left.set(xlabel="epoch", ylabel="training loss", title="loss")
    for key in ("val_ap", "val_auc", "val_mrr", "val_new_ap"):
        validated = [record for record in history if key in record]  # (every --val-every epochs)
        if validated:
            right.plot(
                [record["epoch"] for record in validated],
                [record[key] for record in validated],
                marker="o",
                label=key.removeprefix("val_"),
            )
    right.set(xlabel="epoch", ylabel="metric", title="validation")
    if right.lines:  # (none before the first validation, with --val-every)
        right.legend()
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(run_dir / CURVES, dpi=100)
    plt.close(fig)


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The resolved config of a run directory (its ``config.yaml``). A run written before
    ``data.bipartite`` existed read its csv or edge list as one id space, and is read so again."""
    config = load_config(Path(run_dir) / CONFIG)
    data = config.data  # (newer runs record a file's bipartite as read: never None)
    if data.path is not None and data.bipartite is None and data.format in CHOOSE_BIPARTITE:
        data.bipartite = False
    return config
