"""Checkpoint files: what they hold, reading them safely (tensors and plain containers only) and
writing them atomically.

``checkpoint.pt`` holds ``Trainer.state()`` (everything a resumed run needs); ``best.pt`` the best
epoch's config, weights and TGN's memory after validation (``BEST_KEYS`` at least).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
import signal
import threading
from pathlib import Path
from typing import Any

import torch

from dgl_tgnn import run_dir as rd
from dgl_tgnn.nn.memory import MemoryState, RawMessages

# What a checkpoint holds at its top level (``checkpoint.pt``: Trainer.state; ``best.pt``: BEST_KEYS).
CHECKPOINT_KEYS = ("config", "epoch", "batch", "model", "optimizer")
BEST_KEYS = ("config", "epoch", "model")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: unreadable, not a dgl-tgnn checkpoint, or holding
    anything but tensors and plain containers (never unpickled beyond those)."""


def memory_to_plain(memory: MemoryState | None) -> dict[str, Any] | None:
    """TGN's memory backup as plain containers of tensors (what ``torch.load(weights_only=True)`` reads)."""
    if memory is None:
        return None
    pending = memory.pending
    return {
        "state": memory.state,
        "last_update": memory.last_update,
        "pending": None
        if pending is None
        else {f.name: getattr(pending, f.name) for f in dataclasses.fields(pending)},
    }


def memory_from_plain(plain: dict[str, Any] | None) -> MemoryState | None:
    """The inverse of :func:`memory_to_plain`."""
    if plain is None:
        return None
    pending = plain["pending"]
    return MemoryState(
        plain["state"], plain["last_update"], None if pending is None else RawMessages(**pending)
    )


def load_checkpoint(
    path: Path, required: tuple[str, ...], map_location: str | torch.device | None = None
) -> dict[str, Any]:
    """The content of the checkpoint file ``path``, read with ``weights_only=True``: tensors and
    plain containers only, so that a crafted file cannot run code. Raises ``CheckpointError`` (one
    line) for a missing, empty, truncated, corrupted or foreign file, or one lacking ``required``."""
    try:
        size = path.stat().st_size
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({err.strerror})") from None
    if size == 0:
        raise CheckpointError(f"{path}: the checkpoint is empty (0 bytes)")
    try:
        saved = torch.load(path, weights_only=True, map_location=map_location)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        detail = f"it names {found.group(1)}" if found else "not loadable with weights_only=True"
        raise CheckpointError(
            f"{path}: refused: the checkpoint holds objects other than tensors and plain containers "
            f"({detail}); it may be crafted or from an older version"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(
            f"{path}: not a readable checkpoint (corrupted or truncated? {reason[:200]})"
        ) from None
    if not isinstance(saved, dict) or any(key not in saved for key in required):
        got = sorted(saved)[:8] if isinstance(saved, dict) else type(saved).__name__
        raise CheckpointError(
            f"{path}: not a dgl-tgnn checkpoint (expected the keys {', '.join(required)}; got {got})"
        )
    return saved


def save_atomically(obj: Any, path: Path) -> None:
    """``torch.save(obj, path)`` through ``path.tmp`` and a rename, with SIGINT and SIGTERM held
    back meanwhile (in the main thread; delivered to their handlers after the rename): an
    interruption leaves the old file or the new one, never a partial one, and never a ``.tmp``
    without the file."""
    tmp = path.with_suffix(".tmp")
    held: list[int] = []
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda signum, frame: held.append(signum))
    try:
        with open(tmp, "wb") as file:  # (an OSError when it fails: torch.save's own file raises RuntimeError)
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(held):
            signal.raise_signal(signum)


def load_best(run_dir: str | Path) -> dict[str, Any]:
    """The best checkpoint of a run directory (its ``best.pt``, read with ``weights_only=True``), on
    the CPU."""
    path = Path(run_dir) / rd.BEST
    if not path.exists():
        raise CheckpointError(f"{run_dir}: no {rd.BEST} in it (a run that finished at least one epoch)")
    return load_checkpoint(path, BEST_KEYS, map_location="cpu")


def check_same_config(saved: Any, current: dict[str, Any], config_path: Path, checkpoint: Path) -> None:
    """Raises ``CheckpointError`` naming the first setting where ``config_path`` no longer says what
    the checkpoint was trained with."""
    if not isinstance(saved, dict):
        raise CheckpointError(f"{checkpoint}: not a dgl-tgnn checkpoint (its config is not a mapping)")
    for section, values in current.items():
        saved_values = saved.get(section)
        for key, value in values.items():
            if not isinstance(saved_values, dict) or key not in saved_values:
                continue  # a setting newer than the checkpoint: its default
            was = saved_values[key]
            if was != value:
                raise CheckpointError(
                    f"{config_path} no longer matches {checkpoint.name}: {section}.{key} is {value!r}, "
                    f"the checkpoint was trained with {was!r}; restore it to resume"
                )
