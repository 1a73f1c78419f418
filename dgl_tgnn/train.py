"""The training API in one place: ``Trainer``, ``evaluate_checkpoint``, ``fit_edgebank`` and the
helpers the command line, the scripts and the predictors use. They live in ``dgl_tgnn.training``."""

from dgl_tgnn.training.build import check_device, check_task, load_events
from dgl_tgnn.training.checkpoints import (
    BEST_KEYS,
    CheckpointError,
    load_best,
    load_checkpoint,
    save_atomically,
)
from dgl_tgnn.training.evaluate import evaluate_checkpoint
from dgl_tgnn.training.loop import RunDirError, Trainer, TrainingDiverged
from dgl_tgnn.training.report import peak_memory_mb
from dgl_tgnn.training.tgb import fit_edgebank

__all__ = [
    "BEST_KEYS",
    "CheckpointError",
    "RunDirError",
    "Trainer",
    "TrainingDiverged",
    "check_device",
    "check_task",
    "evaluate_checkpoint",
    "fit_edgebank",
    "load_best",
    "load_checkpoint",
    "load_events",
    "peak_memory_mb",
    "save_atomically",
]
