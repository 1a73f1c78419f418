"""TGB's protocol around training: the stored negative sets of the validation and test splits,
and EdgeBank, fitted and ranked against them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from dgl_tgnn import run_dir as rd
from dgl_tgnn.config import RunConfig, save_config
from dgl_tgnn.data import Split, TemporalDataset, split_events
from dgl_tgnn.edgebank import EdgeBank
from dgl_tgnn.events import EventStream
from dgl_tgnn.ranking import NegativeSets, rank_stream
from dgl_tgnn.training.build import load_events
from dgl_tgnn.training.report import format_test


def ranking_negatives(
    config: RunConfig, ds: TemporalDataset, split: Split, run_dir: Path | None
) -> dict[str, NegativeSets]:
    """TGB's negative sets of the validation and test positives (``dgl_tgnn/ranking.py``).

    The built-in wikipedia with ``eval.negatives == "all"``: every destination (TGB's set for
    tgbl-wiki-v2); otherwise ``eval.negatives`` (100 for ``"all"``) seeded ``hist_rnd`` negatives per
    positive, the historical half among the sources' training destinations. The pool is TGB's:
    destination ids from the smallest to the largest. Kept in ``run_dir/negatives_<split>.npz`` and
    read back from there, so a resumed run ranks against the same sets (they are deterministic)."""
    pool = np.arange(ds.dst.min(), ds.dst.max() + 1, dtype=np.int64)
    builtin_wiki = config.data.path is None and config.data.dataset == "wikipedia"
    negatives = config.eval.negatives
    count = 100 if negatives == "all" else int(negatives)
    sets = {}
    for name in ("val", "test"):
        path = None if run_dir is None else run_dir / f"negatives_{name}.npz"
        if path is not None and path.exists():
            sets[name] = NegativeSets.load(path)
            continue
        rows = getattr(split, name)
        src, dst, t = ds.src[rows], ds.dst[rows], ds.t[rows]
        if builtin_wiki and negatives == "all":
            sets[name] = NegativeSets.all_destinations(src, dst, t, pool)
        else:
            seed = config.eval.seed + (1 if name == "test" else 0)
            history_src, history_dst = ds.src[split.train], ds.dst[split.train]
            sets[name] = NegativeSets.sampled(src, dst, t, pool, history_src, history_dst, count, seed)
        if path is not None:
            sets[name].save(path)
    return sets


def rank_edgebank(
    config: RunConfig, ds: TemporalDataset, split: Split, sets: dict[str, NegativeSets], mode: str
) -> dict[str, float]:
    """``val_*`` and ``test_*`` metrics of EdgeBank (``mode``) filled with the training events, the
    validation and test splits ranked in turn against ``sets``."""
    c = config
    bank = EdgeBank(ds.src, ds.dst, ds.t, mode, c.model.window_ratio)
    bank.observe_stream(split.train)
    src, dst, t = (torch.from_numpy(a) for a in (ds.src, ds.dst, ds.t))
    result: dict[str, float] = {}
    for name in ("val", "test"):
        stream = EventStream(src, dst, t, torch.from_numpy(getattr(split, name)))
        metrics = rank_stream(bank, stream, sets[name], c.eval_batch_size, c.eval.recall_ks, seed=c.eval.seed)
        result |= {f"{name}_{k}": v for k, v in metrics.items()}
    return result


def edgebank_metrics(config: RunConfig, ds: TemporalDataset, run_dir: Path | None) -> dict[str, float]:
    """``val_*`` and ``test_*`` metrics of ``config``'s EdgeBank on ``ds``, TGB's split and negative
    sets (those of ``run_dir`` when it has them)."""
    split = split_events(ds, config.data.val_ratio, config.data.test_ratio, 0.0)
    sets = ranking_negatives(config, ds, split, run_dir)
    return rank_edgebank(config, ds, split, sets, config.model.edgebank_mode)


def fit_edgebank(
    config: RunConfig,
    run_dir: Path | None,
    *,
    dataset: TemporalDataset | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, float]:
    """EdgeBank under TGB's protocol: its memory filled with the training events ("training"), then
    the validation and test splits ranked in turn (each observed after it is scored). Returns the
    test metrics (and ``val_mrr``); writes ``config.yaml`` and ``metrics.jsonl`` to ``run_dir``."""
    c = config.validate()
    if run_dir is not None:
        save_config(c, run_dir / rd.CONFIG)
    result = edgebank_metrics(c, dataset if dataset is not None else load_events(c.data), run_dir)
    log(f"EdgeBank ({c.model.edgebank_mode}): val MRR {result['val_mrr']:.4f}")
    test = {k: v for k, v in result.items() if k.startswith("test_")}
    test["val_mrr"] = result["val_mrr"]
    if run_dir is not None:
        rd.append_metrics(run_dir, {"final": test})
    log(format_test(test))
    return test
