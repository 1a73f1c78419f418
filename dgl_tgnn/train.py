"""The training API in one place: ``Trainer``, ``evaluate_checkpoint``, ``fit_edgebank`` and the
helpers the command line and the scripts use. They live in ``dgl_tgnn.training``."""

from dgl_tgnn.training.build import check_device, load_events
from dgl_tgnn.training.checkpoints import (
    BEST_KEYS,
    CHECKPOINT_KEYS,
    CheckpointError,
    load_best,
    load_checkpoint,
    memory_from_plain,
    memory_to_plain,
    save_atomically,
)
from dgl_tgnn.training.evaluate import evaluate_checkpoint
from dgl_tgnn.training.loop import RunDirError, Trainer, TrainingDiverged
from dgl_tgnn.training.report import format_test, peak_memory_mb
from dgl_tgnn.training.tgb import edgebank_metrics, fit_edgebank, ranking_negatives

__all__ = [
    "BEST_KEYS",
    "CHECKPOINT_KEYS",
    "CheckpointError",
    "RunDirError",
    "Trainer",
    "TrainingDiverged",
    "check_device",
    "edgebank_metrics",
    "evaluate_checkpoint",
    "fit_edgebank",
    "format_test",
    "load_best",
    "load_checkpoint",
    "load_events",
    "memory_from_plain",
    "memory_to_plain",
    "peak_memory_mb",
    "ranking_negatives",
    "save_atomically",
]
