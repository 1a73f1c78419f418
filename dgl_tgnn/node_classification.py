"""Dynamic node classification (TGN's second task, ``train_supervised.py`` of its code): a trained link
model's embedding of each event's source at the event's time, frozen, and an MLP trained on it against
the event's state label (JODIE's ``state_label``: the built-in wikipedia's banned users).

Two ways in: ``dgl-tgnn classify RUN_DIR`` (``classify_nodes``: a finished run's best weights) and
``dgl-tgnn train --task node`` (``classify_trained``: the same run, after its link training). Both run
``classify_stream``.

The embeddings are those the evaluation computes for sources (``ModelPredictor.embed_stream_sources``):
the stream in blocks of ``train.batch_size`` events from the first, each block embedded at its events'
own times with TGN's memory holding every earlier block, then fed to the memory. Neighbours are
strictly earlier than the event, so an event's embedding never sees itself or a later event. The
classifier trains on the events before the run's validation cut (``Split.val_time``; all of them, as
TGN does: no node is held out), stops early on validation AUC (patience 5) and reports the AUC of the
events after the test cut.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dgl_tgnn.config import RunConfig
from dgl_tgnn.data import Split, TemporalDataset
from dgl_tgnn.link import LinkModel
from dgl_tgnn.metrics import roc_auc
from dgl_tgnn.model_predictor import ModelPredictor
from dgl_tgnn.training.threads import BusyMachineThreads

RESULT = "node_classification.json"
PATIENCE = 5


class NodeClassifier(nn.Module):
    """TGN's node-classification decoder: ``d -> 80 -> 10 -> 1`` with ReLU and dropout.

    Forward: ``[B, d]`` float32 embeddings -> ``[B]`` logits.
    """

    def __init__(self, dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(dim, 80),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(80, 10),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(10, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z).squeeze(-1)


def require_labels(dataset: TemporalDataset, remedy: str = "") -> None:
    """A one-line ValueError when ``dataset`` has no event labels (``remedy``: appended to it)."""
    if dataset.label is None:
        raise ValueError(
            f"dataset {dataset.name!r} has no event labels; node classification needs JODIE's "
            f"state_label column{remedy}"
        )


def _auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    return roc_auc(scores[labels == 1], scores[labels == 0])


def train_classifier(
    z: torch.Tensor,
    labels: torch.Tensor,
    parts: dict[str, np.ndarray],
    *,
    epochs: int,
    lr: float,
    seed: int,
    batch_size: int = 200,
    dropout: float = 0.1,
    threads: BusyMachineThreads | None = None,
) -> dict[str, Any]:
    """An MLP (``NodeClassifier``) on ``z[parts["train"]]`` against ``labels`` (0/1) with BCE, early
    stopping on the AUC of ``parts["val"]``; the val and test AUC of its best epoch. ``threads``
    adapts torch's thread count to the machine's load after each step."""
    for name in ("train", "val", "test"):
        present = set(labels[parts[name]].tolist())
        if present != {0, 1}:
            raise ValueError(
                f"node classification: the {name} split needs events of both labels (0 and 1); "
                f"it has {sorted(present) or 'no events'}"
            )
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = NodeClassifier(z.shape[1], dropout)
    # fused: one kernel per step instead of a dozen small ops per parameter (the steps are tiny)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
    loss_fn = nn.BCEWithLogitsLoss()
    train = torch.from_numpy(parts["train"])
    val, test = torch.from_numpy(parts["val"]), torch.from_numpy(parts["test"])
    y = labels.float()

    def predict(rows: torch.Tensor) -> torch.Tensor:
        model.eval()
        with torch.no_grad():
            return model(z[rows])

    best_auc, best_epoch, best_state, waited = -1.0, 0, None, 0
    history = []
    with torch.random.fork_rng(devices=[]):  # dropout's draws: seeded, the caller's RNG untouched
        torch.manual_seed(seed)
        for epoch in range(1, epochs + 1):
            model.train()
            order = train[torch.randperm(len(train), generator=generator)]
            losses = []
            for lo in range(0, len(order), batch_size):
                rows = order[lo : lo + batch_size]
                loss = loss_fn(model(z[rows]), y[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
                if threads is not None:
                    threads.adapt()
            val_auc = _auc(predict(val), labels[val])
            history.append({"epoch": epoch, "loss": sum(losses) / len(losses), "val_auc": val_auc})
            if val_auc > best_auc:
                best_auc, best_epoch, waited = val_auc, epoch, 0
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            else:
                waited += 1
                if waited >= PATIENCE:
                    break
    assert best_state is not None
    model.load_state_dict(best_state)
    return {
        "val_auc": best_auc,
        "test_auc": _auc(predict(test), labels[test]),
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "history": history,
    }


def chronological_parts(t: np.ndarray, val_time: float, test_time: float) -> dict[str, np.ndarray]:
    """Event rows of the classifier's parts: ``train`` up to ``val_time`` (every event, as TGN: no node
    is held out), ``val`` up to ``test_time``, ``test`` after it."""
    return {
        "train": np.flatnonzero(t <= val_time),
        "val": np.flatnonzero((t > val_time) & (t <= test_time)),
        "test": np.flatnonzero(t > test_time),
    }


def classify_stream(
    predictor: ModelPredictor,
    dataset: TemporalDataset,
    parts: dict[str, np.ndarray],
    *,
    epochs: int,
    lr: float,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Node classification with the frozen model of ``predictor`` (whose stream is ``dataset``'s):
    the source embeddings of every event (``progress(done, total)`` while embedding), then
    ``train_classifier`` on the labels of ``parts`` (``chronological_parts``).

    Returns ``train_classifier``'s result with the sizes and positive counts of the parts and the
    settings. With the default thread count on a CPU, torch runs one thread while other processes
    keep a core busy (``BusyMachineThreads``: two threads beside a busy process made it 17x slower).
    """
    require_labels(dataset)
    labels = torch.from_numpy((dataset.label != 0).astype(np.int64))
    config = predictor.config
    threads = BusyMachineThreads(config.train.threads is None and predictor.device.type == "cpu")
    threads.adapt()

    def advance(done: int, total: int) -> None:
        threads.adapt()
        if progress is not None:
            progress(done, total)

    z = predictor.embed_stream_sources(advance)
    result = train_classifier(z, labels, parts, epochs=epochs, lr=lr, seed=seed, threads=threads)
    history = result.pop("history")
    result.update(
        {
            "dataset": dataset.name,
            "model": config.model.name,
            "epochs": epochs,
            "lr": lr,
            "seed": seed,
            **{f"{name}_events": int(len(rows)) for name, rows in parts.items()},
            **{f"{name}_positives": int(labels[rows].sum()) for name, rows in parts.items()},
            "history": history,
        }
    )
    return result


def classify_nodes(
    run_dir: str | Path,
    *,
    epochs: int = 50,
    lr: float = 3e-4,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Dynamic node classification on the frozen embeddings of the trained link model of ``run_dir``.

    Args:
        run_dir: a finished run directory (``config.yaml`` and ``best.pt``) of a model with
            embeddings (not EdgeBank) on a dataset with event labels.
        epochs, lr, seed: the classifier's training (TGN's defaults: 50 epochs, 3e-4).
        progress: ``progress(done, total)``: events embedded so far.

    Returns:
        ``val_auc``, ``test_auc`` (ROC AUC of the chronological val and test events), ``best_epoch``,
        ``epochs_run``, the sizes and positive counts of the parts, and the settings; also written to
        ``run_dir/node_classification.json``.

    Raises:
        ValueError: one-line errors: not a run directory, no best checkpoint, no event labels, a model
            without parameters (EdgeBank), a part with one label only.
    """
    from dgl_tgnn import run_dir as rd
    from dgl_tgnn.data import split_events
    from dgl_tgnn.registry import MODELS
    from dgl_tgnn.train import load_events

    run_dir = Path(run_dir)
    if not (run_dir / rd.CONFIG).exists():
        raise ValueError(f"{run_dir}: not a run directory (no {rd.CONFIG})")
    config = rd.load_run_config(run_dir)
    if MODELS[config.model.name].encoder is None:
        raise ValueError(
            f"{run_dir}: a {config.model.name} run has no embeddings; node classification needs a "
            "trained model with embeddings (tgat, tgn, graphmixer, ...)"
        )
    if not (run_dir / rd.BEST).exists():
        raise ValueError(f"{run_dir}: not a finished run (no {rd.BEST}: no epoch completed)")
    dataset = load_events(config.data)
    require_labels(dataset)
    if config.train.threads is not None:
        torch.set_num_threads(config.train.threads)
    # the run's time cuts (TGB's protocol holds no node out; the cuts do not depend on it)
    split = split_events(dataset, config.data.val_ratio, config.data.test_ratio, 0.0, seed=config.train.seed)
    parts = chronological_parts(dataset.t, split.val_time, split.test_time)
    predictor = ModelPredictor.from_run(run_dir, config, dataset, torch.device("cpu"))
    result = classify_stream(predictor, dataset, parts, epochs=epochs, lr=lr, seed=seed, progress=progress)
    (run_dir / RESULT).write_text(json.dumps(result, indent=1) + "\n")
    return result


def classify_trained(
    model: LinkModel,
    config: RunConfig,
    dataset: TemporalDataset,
    split: Split,
    device: torch.device,
    run_dir: Path | None,
    progress: bool,
) -> dict[str, float]:
    """``train --task node`` after the link training: ``classify_stream`` with the trained ``model``
    (its best weights; ``train.node_epochs``, ``train.node_lr``, ``train.seed``) on the run's time
    cuts. Writes the full result to ``run_dir/node_classification.json`` (with a run directory);
    returns ``node_val_auc`` and ``node_test_auc`` for the run's final metrics."""
    from tqdm import tqdm

    parts = chronological_parts(dataset.t, split.val_time, split.test_time)
    predictor = ModelPredictor.from_model(model, config, dataset, device)
    t = config.train
    with tqdm(total=dataset.num_events, desc="node classification: embedding", unit="event",
              disable=not progress, leave=False, dynamic_ncols=True) as bar:  # fmt: skip
        result = classify_stream(
            predictor,
            dataset,
            parts,
            epochs=t.node_epochs,
            lr=t.node_lr,
            seed=t.seed,
            progress=lambda done, total: bar.update(done - bar.n),
        )
    if run_dir is not None:
        (run_dir / RESULT).write_text(json.dumps(result, indent=1) + "\n")
    return {"node_val_auc": result["val_auc"], "node_test_auc": result["test_auc"]}
