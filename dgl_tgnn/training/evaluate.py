"""Evaluation of a run: after each epoch, the final test of the best weights, and a saved model's
metrics from its run directory or checkpoint file (no Trainer built).

TGN's memory is carried from training through validation into test, and the inductive sets are
evaluated from the memory TGN uses for them. Under TGB's protocol a split is ranked through the
model's ``LinkPredictor`` against the run's stored negative sets.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dgl_tgnn import run_dir as rd
from dgl_tgnn.config import RunConfig, apply_overrides, config_from_dict
from dgl_tgnn.distributed.group import Parallel
from dgl_tgnn.evaluation import Evaluator
from dgl_tgnn.link import LinkModel
from dgl_tgnn.model_predictor import ModelPredictor
from dgl_tgnn.nn.memory import MemoryState
from dgl_tgnn.precision import precision
from dgl_tgnn.ranking import rank_stream
from dgl_tgnn.training.build import (
    RunData,
    build_data,
    build_evaluator,
    build_model,
    load_events,
    setup_device,
)
from dgl_tgnn.training.checkpoints import BEST_KEYS, CheckpointError, load_checkpoint, memory_from_plain
from dgl_tgnn.training.parallel import ParallelEvaluator, ParallelPredictor, window_config
from dgl_tgnn.training.tgb import edgebank_metrics, ranking_negatives


class RunEvaluation:
    """The evaluation of one run's model: its ``Evaluator`` and, under TGB's protocol, the stored
    negative sets of the validation and test splits.

    Args:
        config: the run config (validated).
        data: the run's events and features.
        model: the model evaluated, on ``device``.
        device, dedup: the run's device and its hop-dedup rule.
        run_dir: where TGB's negative sets are kept (None: computed, not kept).
        progress: show a progress bar while ranking (TGB's protocol).
        parallel: this process's place in a data-parallel run, or None for one process. Every
            split is then evaluated at batch ``G x B`` (``config`` becomes ``window_config``'s),
            each process scoring its share of each batch and the scores gathered
            (``ParallelEvaluator``, ``ParallelPredictor``): the metrics of one process. Every
            process calls the same methods in the same order (collectives).
    """

    def __init__(
        self,
        config: RunConfig,
        data: RunData,
        model: LinkModel,
        device: torch.device,
        dedup: bool,
        run_dir: Path | None,
        *,
        progress: bool,
        parallel: Parallel | None = None,
    ) -> None:
        if parallel is not None:
            config = window_config(config, parallel.world)
        self.config, self.data, self.model = config, data, model
        self.device, self.dedup, self.progress = device, dedup, progress
        self.parallel = parallel
        self.ranking_negatives = (
            ranking_negatives(config, data.dataset, data.split, run_dir) if data.tgb else {}
        )
        make = Evaluator if parallel is None else functools.partial(ParallelEvaluator, parallel)
        self.evaluator = build_evaluator(config, data, model, device, dedup, make)

    def predictor(self) -> ModelPredictor:
        """The model as a :class:`~dgl_tgnn.predictor.LinkPredictor` over the dataset's stream (times
        in the trainer's units, from the first event); its state is rebuilt from the stream."""
        c, ds = self.config, self.data.dataset
        make: Callable[..., ModelPredictor] = ModelPredictor
        if self.parallel is not None:
            make = functools.partial(ParallelPredictor, self.parallel)
        return make(
            self.model,
            c,
            ds.src,
            ds.dst,
            ds.t - ds.t[0],
            self.data.node_feat,
            self.data.edge_feat,
            self.device,
            dedup=self.dedup,
        )

    def rank(self, split: str) -> dict[str, float]:
        """TGB's metrics of ``split`` (``"val"`` or ``"test"``): the model observes every earlier
        event of the stream (TGN's memory rebuilt through them), then ranks the split's positives
        through the predictor, observing each batch after scoring it."""
        predictor = self.predictor()
        train, val = self.data.split.train, self.data.split.val
        earlier = train if split == "val" else np.concatenate([train, val])
        predictor.observe_stream(np.sort(earlier))
        e = self.config.eval
        return rank_stream(
            predictor,
            self.data.streams[split],
            self.ranking_negatives[split],
            self.config.eval_batch_size,
            e.recall_ks,
            edge_feat=self.data.edge_feat,
            seed=e.seed,
            progress=self.progress,
        )

    def epoch(self) -> tuple[dict[str, float], MemoryState | None]:
        """Validation (and test) metrics after an epoch, and TGN's memory after validation."""
        if self.data.tgb:  # the test split is ranked once, with the best epoch's weights
            return {f"val_{k}": v for k, v in self.rank("val").items()}, None
        ranking = True
        evaluate = self.evaluator.evaluate
        out: dict[str, float] = {}
        train_end = self.model.backup_memory()
        out |= {f"val_{k}": v for k, v in evaluate(self.data.streams["val"], ranking).items()}
        val_end = self.model.backup_memory()
        self.model.restore_memory(train_end)
        out |= {f"val_new_{k}": v for k, v in evaluate(self.data.streams["val_new"], False).items()}
        self.model.restore_memory(val_end)
        if self.config.eval.test_every_epoch:
            out |= self.test(val_end)
        return out, val_end

    def test(self, val_end: MemoryState | None) -> dict[str, float]:
        """Test metrics from the memory after validation (TGN); restores it after each stream."""
        out = {f"test_{k}": v for k, v in self.evaluator.evaluate(self.data.streams["test"], True).items()}
        self.model.restore_memory(val_end)
        new = self.evaluator.evaluate(self.data.streams["test_new"], False)
        out |= {f"test_new_{k}": v for k, v in new.items()}
        self.model.restore_memory(val_end)
        return out


def evaluate_checkpoint(
    path: str | Path,
    *,
    split: str = "test",
    ranking: bool = True,
    overrides: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Metrics of a saved model on ``split`` (``"test"`` or ``"val"``), transductive and inductive.

    Args:
        path: a run directory (its ``best.pt``) or a checkpoint file (``best.pt`` or ``checkpoint.pt``).
        ranking: also compute MRR and Recall@k.
        overrides: ``{"section.key": value}`` config changes (e.g. ``eval.negatives``, ``train.device``).

    A run trained on G processes is evaluated at batch ``G x B``, as the run itself evaluated (the
    same metrics, on one process).

    TGN's memory for the test split is the one saved after validation in ``best.pt``; otherwise (and
    for the validation split) it is rebuilt by streaming the training events (and validation for test)
    through the saved model, as TGN's evaluation carries it.
    """
    path = Path(path)
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    if path.is_dir() and (path / rd.CONFIG).exists():
        config = apply_overrides(rd.load_run_config(path), overrides or {}).validate()
        if config.model.name == "edgebank":  # no weights: its memory is the stream
            result = edgebank_metrics(config, load_events(config.data), path)
            return {k: v for k, v in result.items() if k.startswith(f"{split}_")}
    file = path / rd.BEST if path.is_dir() else path
    if not file.exists():
        raise ValueError(f"{path}: no checkpoint ({rd.BEST}) found")
    saved = load_checkpoint(file, BEST_KEYS, map_location="cpu")
    config = apply_overrides(config_from_dict(saved["config"]), overrides or {})
    # a run on G processes evaluated at batch G x B: so does one process (the same metrics)
    config = window_config(config, int(saved.get("processes", 1)))
    # TGB's protocol: the negative sets stored with the run, the split ranked through the predictor.
    run_dir = (path if path.is_dir() else path.parent) if config.eval.protocol == "tgb" else None
    config.validate()
    device, dedup = setup_device(config)
    data = build_data(config, None, device)
    model = build_model(config, data, device)
    evaluation = RunEvaluation(config, data, model, device, dedup, run_dir, progress=False)
    data.check_splits()
    if saved.get("data_hash", data.data_hash) != data.data_hash:
        where = config.data.path or config.data.dataset
        raise ValueError(
            f"{file}: the data ({where}) changed since training (content hash {saved['data_hash'][:12]} "
            f"then, {data.data_hash[:12]} now); evaluate on the data the model was trained on"
        )
    try:
        model.load_state_dict(saved["model"])
    except (RuntimeError, TypeError, AttributeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(
            f"{file}: its weights do not fit the model of its config ({reason[:200]})"
        ) from None
    model.eval()
    with precision(config.train.precision, device):
        if data.tgb:
            return {f"{split}_{k}": v for k, v in evaluation.rank(split).items()}
        evaluator, streams = evaluation.evaluator, data.streams
        start = memory_from_plain(saved.get("val_memory")) if split == "test" else None
        if model.has_memory and start is None:  # rebuilt through the earlier splits
            model.reset_memory()
            with torch.no_grad():
                for batch in streams["train"].batches(config.train.batch_size):
                    model.observe(batch, data.edge_feat)
            if split == "test":
                evaluator.evaluate(streams["val"], ranking=False)
            start = model.backup_memory()
        model.restore_memory(start)
        result = {f"{split}_{k}": v for k, v in evaluator.evaluate(streams[split], ranking).items()}
        model.restore_memory(start)
        new = evaluator.evaluate(streams[f"{split}_new"], ranking=False)
        result |= {f"{split}_new_{k}": v for k, v in new.items()}
        return result
