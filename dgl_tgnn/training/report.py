"""What a run reports: one line per epoch and of the final test metrics, and the peak memory."""

from __future__ import annotations

import resource
from typing import Any

import torch


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: the device's allocated peak on CUDA, the process's resident peak on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def epoch_summary(record: dict[str, Any]) -> str:
    """One line of an epoch's record: its loss, validation (and test) metrics and seconds."""
    parts = [f"epoch {record['epoch']}: loss {record['loss']:.4f}"]
    for prefix in ("val", "test"):
        keys = [k for k in ("ap", "auc", "mrr", "recall@1", "recall@10") if f"{prefix}_{k}" in record]
        if keys:
            values = " ".join(
                f"{k.upper() if '@' not in k else k} {record[f'{prefix}_{k}']:.4f}" for k in keys
            )
            parts.append(f"{prefix} {values}")
    parts.append(f"({record['train_seconds']:.1f} s train, {record['eval_seconds']:.1f} s eval)")
    return " | ".join(parts)


def format_test(result: dict[str, float]) -> str:
    """One line of the final test metrics."""
    names = [
        ("test_ap", "AP"),
        ("test_auc", "AUC"),
        ("test_mrr", "MRR"),
        ("test_recall@1", "Recall@1"),
        ("test_recall@10", "Recall@10"),
        ("test_new_ap", "inductive AP"),
        ("test_new_auc", "inductive AUC"),
        ("edgebank_test_mrr", "EdgeBank MRR"),
        ("node_val_auc", "node val AUC"),
        ("node_test_auc", "node test AUC"),
    ]
    shown = " | ".join(f"{label} {result[key]:.4f}" for key, label in names if key in result)
    if "best_epoch" not in result:  # EdgeBank: nothing trained
        return f"test: {shown}"
    return f"test (best epoch {result['best_epoch']}): {shown}"
