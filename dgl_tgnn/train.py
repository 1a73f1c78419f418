"""Trainer: chronological batches, negatives, evaluation, early stopping, checkpoints and resume.

One training batch (events ``[i, i + B)`` of the training stream):

1. negatives ``[B, n]`` from the configured sampler;
2. embeddings of sources, destinations and negatives at the events' times (neighbours from the
   training events only, strictly before each root, see ``Neighbourhoods`` for ``visible_batch``);
   with ``topk`` negatives the queries are the sources' embeddings, detached: on CPU those of this
   pass (sources and destinations are embedded first, the negatives they pick next), on a GPU
   those of a no-gradient pass before it (fewer kernel launches);
3. decoder logits, loss, backward, optimizer step; the embeddings feed the ``topk`` table;
4. TGN: the batch's events become the memory's pending messages.

After each epoch the validation split is evaluated (and the test split with
``eval.test_every_epoch``), with TGN's memory carried from training through validation into test
and the inductive sets evaluated from the memory TGN uses for them. The best epoch by validation
AP (or MRR) is kept in ``best.pt``; training stops after ``patience`` epochs without improvement;
the best weights are evaluated on the test split at the end.

Ctrl-C finishes the current batch, writes ``checkpoint.pt`` and returns; ``Trainer.resume``
continues from it to the same result as an uninterrupted run (bit for bit on CPU with the same
thread count): it restores the weights, the optimizer, the RNG states (torch, negatives, neighbour
sampler), TGN's memory and the epoch's partial sums.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import pickle
import re
import resource
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from dgl_tgnn import run_dir as rd
from dgl_tgnn.config import DataConfig, RunConfig, apply_overrides, config_from_dict, load_config, save_config
from dgl_tgnn.cuda_graph import GraphedStep
from dgl_tgnn.data import Split, TemporalDataset, load_dataset, split_events
from dgl_tgnn.devices import dedup_hops, features_on, to_device
from dgl_tgnn.edgebank import EdgeBank
from dgl_tgnn.evaluation import Evaluator
from dgl_tgnn.events import EventBatch, EventStream
from dgl_tgnn.graph import TemporalGraph
from dgl_tgnn.link import LinkModel
from dgl_tgnn.losses import link_loss
from dgl_tgnn.model_predictor import ModelPredictor
from dgl_tgnn.negatives import NegativeSampler, SamplerBuilder, SamplerInputs, TopKNegatives
from dgl_tgnn.neighbourhoods import Embedder, Neighbourhoods
from dgl_tgnn.nn.memory import MemoryState, RawMessages
from dgl_tgnn.pair_features import PairFeatures
from dgl_tgnn.ranking import NegativeSets, rank_stream
from dgl_tgnn.registry import NEGATIVES

# What a checkpoint holds at its top level (``checkpoint.pt``: Trainer.state; ``best.pt``: BEST_KEYS).
CHECKPOINT_KEYS = ("config", "epoch", "batch", "model", "optimizer")
BEST_KEYS = ("config", "epoch", "model")


class TrainingDiverged(ValueError):
    """A non-finite training loss: the run stops, and nothing of the diverged model is saved."""


class RunDirError(ValueError):
    """The run directory cannot be written (the run so far is saved elsewhere when possible)."""


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


def _column(value: str | None) -> int | str | None:
    """A column given on the command line: a 0-based index when all digits, else a header name."""
    return int(value) if value is not None and value.isdigit() else value


def load_events(config: DataConfig) -> TemporalDataset:
    """The dataset a data config names, cut to ``max_events`` and stripped of features when off."""
    if config.path is not None:
        ds = load_dataset(
            config.path,
            fmt=config.format,
            src_col=_column(config.src_col),
            dst_col=_column(config.dst_col),
            time_col=_column(config.time_col),
            feature_cols=None if config.feature_cols is None else [_column(c) for c in config.feature_cols],
            delimiter=config.delimiter,
            header=config.header,
            keep_ids=config.keep_ids,
        )
    else:
        assert config.dataset is not None
        ds = load_dataset(config.dataset)
    if config.max_events is not None and config.max_events < ds.num_events:
        n = config.max_events
        ds = dataclasses.replace(
            ds,
            src=ds.src[:n],
            dst=ds.dst[:n],
            t=ds.t[:n],
            label=None if ds.label is None else ds.label[:n],
            edge_feat=None if ds.edge_feat is None else ds.edge_feat[:n],
        )
    if not config.features:
        ds = dataclasses.replace(ds, edge_feat=None, node_feat=None)
    return ds


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
        metrics = rank_stream(
            bank, stream, sets[name], c.train.batch_size, c.eval.recall_ks, seed=c.eval.seed
        )
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


def check_device(name: str) -> torch.device:
    """The torch device ``name`` (``train.device``); a ValueError in one line when it is unknown or
    absent here (e.g. ``cuda`` without CUDA)."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device {name}: unknown device (use cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"--device {name}: CUDA is not available on this machine or torch build; use --device cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise ValueError(
                f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
            )
    elif device.type != "cpu":
        raise ValueError(f"--device {name}: not supported (use cpu, cuda or cuda:N)")
    return device


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: the device's allocated peak on CUDA, the process's resident peak on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Trainer:
    """Trains and evaluates one run of a config (see the module docstring).

    Args:
        config: the run config (validated here).
        run_dir: where config, metrics, curves and checkpoints go (None: nothing is written and
            Ctrl-C is not intercepted).
        dataset: the events, when already loaded (default: ``load_events(config.data)``).
        progress: show a tqdm bar per epoch.
        log: where one-line summaries go.
        cuda_graph: on a GPU, replay the training step of full batches from a CUDA graph when the
            neighbour sampler allows it (``Neighbourhoods.replayable``: no deduplication, the
            default on a GPU); same results as the step run op by op (tests/test_cuda_graph.py).
    """

    # Inside an epoch, checkpoint.pt is written after the first batch that ends this many seconds
    # after the last checkpoint: a killed run loses minutes, not its epoch.
    checkpoint_every_s: float = 300.0
    # Set by fit(): the signal that interrupted it (SIGINT or SIGTERM; the exit code is 128 + it).
    interrupted_by: int = int(signal.SIGINT)
    _lock: int | None = None  # the run directory's lock (rd.lock_run_dir), held while training
    _last_checkpoint: float = 0.0
    _data_hash: str | None = None
    _default_threads: int | None = None  # (_adapt_threads)
    _threads_mark: tuple[float, float, float] | None = None

    def __init__(
        self,
        config: RunConfig,
        run_dir: Path | None = None,
        *,
        dataset: TemporalDataset | None = None,
        progress: bool = True,
        log: Callable[[str], None] = print,
        cuda_graph: bool = True,
    ) -> None:
        self.config = config.validate()
        self.run_dir = run_dir
        self.progress = progress
        self.log = log
        c = self.config
        self.device = check_device(c.train.device)
        self.dedup = dedup_hops(c.model.dedup, self.device)
        if c.train.threads is not None:
            torch.set_num_threads(c.train.threads)
        ds = dataset if dataset is not None else load_events(c.data)
        self.dataset = ds
        # TGB's protocol holds no node out (its split is at the 0.70 / 0.85 time quantiles).
        self.tgb = c.eval.protocol == "tgb"
        new_node_ratio = 0.0 if self.tgb else c.data.new_node_ratio
        self.split = split_events(ds, c.data.val_ratio, c.data.test_ratio, new_node_ratio, seed=c.train.seed)
        if len(self.split.train) == 0 or len(self.split.val) == 0:
            raise ValueError(f"dataset {ds.name!r} ({ds.num_events} events) is too small to split")

        # Times count from the first event: TGN's memory starts at time 0, so a stream in unix seconds
        # would make every node's first message look 1e9 s old (beyond float32 time encodings).
        src, dst = torch.from_numpy(ds.src), torch.from_numpy(ds.dst)
        t = torch.from_numpy(ds.t - ds.t[0])
        train_ids = torch.from_numpy(self.split.train)
        self.streams = {
            name: EventStream(src, dst, t, torch.from_numpy(getattr(self.split, name)))
            for name in ("train", "val", "test", "val_new", "test_new")
        }
        self.node_feat = features_on(ds.node_feat, ds.num_nodes, self.device)
        self.edge_feat = features_on(ds.edge_feat, ds.num_events, self.device)
        self.train_edge_feat = self.edge_feat[train_ids.to(self.device)]
        self.full_graph = TemporalGraph(src, dst, t, num_nodes=ds.num_nodes)
        self.train_graph = TemporalGraph(src[train_ids], dst[train_ids], t[train_ids], num_nodes=ds.num_nodes)

        torch.manual_seed(c.train.seed)
        self.model = LinkModel(c.model, ds.num_nodes, self.node_feat.shape[1], self.edge_feat.shape[1])
        self.model.to(self.device)
        # capturable: the step counts live on the GPU, so the CUDA graph can hold the optimizer step.
        capturable = self.device.type == "cuda"
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=c.train.lr, fused=True, capturable=capturable
        )

        is_new = np.zeros(ds.num_nodes, dtype=bool)
        is_new[self.split.new_nodes] = True
        if c.data.candidates == "all":
            candidates = np.arange(ds.num_nodes, dtype=np.int64)
        else:
            candidates = ds.dst_candidates
        # Training negatives never touch the nodes held out for the inductive sets (as in TGN).
        self.train_candidates = torch.from_numpy(candidates[~is_new[candidates]])
        self.neighbourhoods = self._neighbourhoods(self.train_graph, seed=c.train.seed)
        self.pair_features = (
            PairFeatures(self.train_graph, c.model.pair_history, self.device)
            if c.model.pair_history
            else None
        )
        self.embedder = Embedder(self.model, self.neighbourhoods, self.node_feat, self.train_edge_feat)
        self.negatives = self._negative_sampler()
        # CUDA graphs: the training step, and with topk negatives the query pass and the table refresh.
        self.graphed: GraphedStep | None = None
        self.graphed_queries: GraphedStep | None = None
        self.graphed_refresh: GraphedStep | None = None
        # (Pair features find each batch's distinct candidates: a synchronisation, so no graph.)
        if (
            cuda_graph
            and self.device.type == "cuda"
            and self.neighbourhoods.replayable
            and not self.pair_features
        ):
            self.graphed = GraphedStep(self._graph_step)
            if isinstance(self.negatives, TopKNegatives):
                if not self.negatives.exclude_known:  # (its history is on the host)
                    generator = self.negatives.generator_on(self.device)
                    self.graphed_queries = GraphedStep(self._query_step, generators=(generator,))
                self.graphed_refresh = GraphedStep(self._refresh_step)
        self._pending_at: RawMessages | None = None
        self.ranking_negatives = ranking_negatives(c, ds, self.split, run_dir) if self.tgb else {}
        self.evaluator = Evaluator(
            self.model,
            self.full_graph,
            self.node_feat,
            self.edge_feat,
            torch.from_numpy(candidates),
            fanouts=c.model.fanouts,
            strategy=c.model.strategy,
            dedup=self.dedup,
            threads=c.train.threads,
            visible_batch=c.train.visible_batch,
            batch_size=c.train.batch_size,
            negatives=c.eval.negatives,
            recall_ks=c.eval.recall_ks,
            seed=c.eval.seed,
            device=self.device,
        )
        # Progress of the run (all of it goes into checkpoint.pt).
        self.epoch = 0  # the epoch being trained (0-based)
        self.batch = 0  # the next batch of that epoch
        self.partial = self._new_partial()
        self.history: list[dict[str, Any]] = []
        self.best_metric = float("-inf")
        self.best_epoch = -1
        self.bad_epochs = 0
        self._interrupted = False
        self._best_in_memory: tuple[dict[str, torch.Tensor], Any] | None = None

    # ----------------------------------------------------------------- setup
    @staticmethod
    def _new_partial() -> dict[str, Any]:
        """Sums over the batches of the current epoch (``losses``: one float per batch, in order)."""
        return {"losses": [], "train_seconds": 0.0, "sampler_seconds": 0.0}

    def _neighbourhoods(self, graph: TemporalGraph, seed: int) -> Neighbourhoods:
        c = self.config
        return Neighbourhoods(
            graph,
            c.model.fanouts,
            c.model.strategy,
            seed,
            c.train.threads,
            c.train.visible_batch,
            self.device,
            dedup=self.dedup,
        )

    def _negative_sampler(self) -> NegativeSampler:
        c = self.config
        inputs = SamplerInputs(
            self.train_candidates,
            self.streams["train"],
            self.dataset.num_nodes,
            c.negatives,
            c.train.seed,
            embed=self._embed_candidates,
            score=lambda queries, table: self.model.score(queries[:, None, :], table[None, :, :]),
        )
        build: SamplerBuilder = NEGATIVES[c.negatives.kind]
        return build(inputs)

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        """Within a training epoch: no gradient and no dropout, then back to training mode."""
        self.model.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.model.train()

    def _embed_candidates(self, nodes: torch.Tensor, time_s: float) -> torch.Tensor:
        """The topk table refresh: embeddings of ``nodes`` at ``time_s``; replayed from a CUDA graph
        for the whole pool within a graphed batch (TGN: pending messages in the graph's buffers)."""
        if self.graphed_refresh is not None and nodes is self.negatives.candidates and self._pending_kept():
            time_bits = torch.tensor([time_s], dtype=torch.float64).view(torch.int64).pin_memory()
            (table,) = self._replay(self.graphed_refresh, time_bits, nodes.shape[0])
            return table.clone()  # the graph's table is overwritten by the next replay
        with self._inference():
            return self.embedder.at(nodes, time_s)

    def _refresh_step(self, inputs: torch.Tensor) -> tuple[torch.Tensor]:
        """``_embed_candidates`` of the whole pool as a CUDA graph holds it: ``inputs`` ``[1]`` int64,
        the bits of the time (float64 seconds)."""
        assert isinstance(self.negatives, TopKNegatives)
        t = inputs.view(torch.float64)
        nodes = self.negatives.on_device("candidates", self.device)
        with self._inference():
            return (self.embedder(nodes, t.expand(nodes.shape[0]), t[0]),)

    def _query_step(self, events: torch.Tensor) -> tuple[torch.Tensor]:
        """The topk query pass and the draws as a CUDA graph holds them: ``events`` ``[4 * B]`` int64,
        ``src | dst | eids | t`` (``t`` as the bits of float64 seconds); returns the negatives
        ``[B, n]`` (``TopKNegatives.draw_on_device``)."""
        assert isinstance(self.negatives, TopKNegatives)
        size = events.shape[0] // 4
        src, dst, t = events[:size], events[size : 2 * size], events[3 * size :].view(torch.float64)
        with self._inference():
            queries = self.embedder(src, t, t[0])
        return (self.negatives.draw_on_device(dst, queries),)

    def _replay(self, graphed: GraphedStep, inputs: torch.Tensor, roots: int) -> tuple[torch.Tensor, ...]:
        """``graphed(inputs)``; a replay counts the sampler calls that embedding ``roots`` roots makes."""
        replay = graphed.captured
        outputs = graphed(inputs)
        if replay:  # the sampler was not called from Python
            self.neighbourhoods.count_replay(-(-roots // self.embedder.chunk))
        return outputs

    def _pending_kept(self) -> bool:
        """True without memory, or when TGN's pending messages are in the CUDA graphs' buffers."""
        if not self.model.has_memory:
            return True
        pending = self.model.encoder.memory.pending
        return pending is not None and pending is self._pending_at

    # ----------------------------------------------------------------- training
    def _train_batch(self, batch: EventBatch) -> torch.Tensor:
        if self.device.type == "cuda":
            return self._train_batch_cuda(batch)
        size, n = len(batch), self.negatives.num_negatives
        t0 = float(batch.t[0])
        # TGB's protocol: every root embedded at the batch's start, as the predictor scores a batch.
        times = torch.full_like(batch.t, t0) if self.tgb else batch.t
        if self.negatives.wants_queries:
            # The queries for the hard negatives are the sources' embeddings of this very pass
            # (detached): sources and destinations are embedded first, the negatives they pick next.
            with self.model.sharing_memory_update():
                z_pos = self.embedder(torch.cat([batch.src, batch.dst]), torch.cat([times, times]), t0)
                neg = self.negatives.sample(batch, z_pos[:size].detach())
                z = torch.cat([z_pos, self.embedder(neg.flatten(), times.repeat_interleave(n), t0)])
        else:
            neg = self.negatives.sample(batch)
            roots = torch.cat([batch.src, batch.dst, neg.flatten()])
            z = self.embedder(roots, torch.cat([times, times, times.repeat_interleave(n)]), t0)
        loss = self._optimize(z, size, n, self._pair_logits(batch.src, batch.t, batch.dst, neg))
        if isinstance(self.negatives, TopKNegatives):
            self.negatives.observe(torch.cat([batch.src, batch.dst, neg.flatten()]), z.detach())
        self.model.observe(batch, self.edge_feat)
        return loss.detach()

    def _pair_logits(
        self, src: torch.Tensor, t: torch.Tensor, dst: torch.Tensor, neg: torch.Tensor
    ) -> torch.Tensor | None:
        """``[B, 1 + n]`` pair logits of each event's destination and negatives ``neg [B, n]`` (from
        the training events before the batch's start), or None without pair features."""
        if self.pair_features is None:
            return None
        candidates = torch.cat([dst.to(neg.device)[:, None], neg.reshape(dst.shape[0], -1)], dim=1)
        return self.model.pair_score(self.pair_features(src, t, t[0], candidates))

    def _optimize(self, z: torch.Tensor, size: int, n: int, pair: torch.Tensor | None = None) -> torch.Tensor:
        """Loss of embeddings ``z`` ``[(2 + n) * size, d]`` (sources, destinations, then ``n``
        negatives per event) plus pair logits ``pair [size, 1 + n]`` when given, backward pass and
        optimizer step; returns the loss (a 0-dim tensor)."""
        z_src, z_dst, z_neg = z[:size], z[size : 2 * size], z[2 * size :]
        pos_logits = self.model.score(z_src, z_dst)
        neg_logits = self.model.score(z_src[:, None, :], z_neg.reshape(size, n, -1))
        if pair is not None:
            pos_logits, neg_logits = pos_logits + pair[:, 0], neg_logits + pair[:, 1:]
        loss = link_loss(self.config.train.loss, pos_logits, neg_logits, self.config.train.temperature)
        head = self.model.dot_head
        if head is not None:  # model.dot_head: the retrieval head learns from detached embeddings
            z_src, z_dst, z_neg = z_src.detach(), z_dst.detach(), z_neg.detach()
            pos, neg = head(z_src, z_dst), head(z_src[:, None, :], z_neg.reshape(size, n, -1))
            aux = link_loss(self.config.train.loss, pos, neg, self.config.train.temperature)
            loss = loss + self.config.model.dot_head * aux
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss

    def _train_batch_cuda(self, batch: EventBatch) -> torch.Tensor:
        """A training batch on a GPU: the negatives (topk ones drawn on the GPU, within the query
        pass's CUDA graph for full batches), then the device step (``_device_step``), replayed from
        a CUDA graph for full batches (see ``_graphable``)."""
        size, n = len(batch), self.negatives.num_negatives
        graphable = self._graphable(size)
        # topk: the queries are the sources' embeddings of a no-gradient pass, and the negatives
        # are drawn on the GPU (``_query_step``; a training pass split in two measured slower).
        # The table refresh, when due, comes first, graphed or not, so that the
        # sampler's calls come in one order and uniform neighbours are drawn alike.
        if self.negatives.wants_queries and not self.negatives.exclude_known:
            assert isinstance(self.negatives, TopKNegatives)
            if graphable:  # (TGN: the pending messages into the graphs' buffers, for the refresh too)
                self._keep_pending(size)
            self.negatives.begin_batch(batch)
            # src | dst | eids | the bits of t (float64), in one transfer, for both passes
            events = torch.cat([batch.src, batch.dst, batch.eids, batch.t.view(torch.int64)])
            events = to_device(events, self.device)
            if graphable:
                assert self.graphed_queries is not None
                (neg,) = self._replay(self.graphed_queries, events, size)
            else:
                (neg,) = self._query_step(events)
            inputs = torch.cat([events[: 3 * size], neg.flatten(), events[3 * size :]])
        else:
            queries = None
            if self.negatives.wants_queries:
                with self._inference():
                    queries = self.embedder(batch.src, batch.t, float(batch.t[0]))
            neg = self.negatives.sample(batch, queries)  # on the host
            host = torch.cat([batch.src, batch.dst, batch.eids, neg.flatten(), batch.t.view(torch.int64)])
            inputs = to_device(host, self.device)
        # inputs: the step's src | dst | eids | neg | the bits of t (float64)
        if graphable:
            assert self.graphed is not None
            self._keep_pending(size)
            loss, z = self._replay(self.graphed, inputs, (2 + n) * size)
            loss = loss.clone()  # the graph's loss is overwritten by the next replay
        else:
            loss, z = self._device_step(inputs, size)
        if isinstance(self.negatives, TopKNegatives):  # the batch's roots: src | dst | neg of inputs
            self.negatives.observe(torch.cat([inputs[: 2 * size], inputs[3 * size : (3 + n) * size]]), z)
        return loss

    def _device_step(self, inputs: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The training step of a batch of ``size`` events on the GPU, from ``inputs``
        ``[(4 + n) * size]`` int64 on the device (``src | dst | eids | neg | t``, ``neg`` row-major
        ``[size, n]``, ``t`` as the bits of float64 seconds): embeddings, loss, backward pass,
        optimizer step, TGN's memory update; no host synchronisation. Returns the loss (0-dim) and
        the embeddings ``[(2 + n) * size, d]``, both detached."""
        n = inputs.shape[0] // size - 4
        src, dst, eids = inputs[:size], inputs[size : 2 * size], inputs[2 * size : 3 * size]
        neg = inputs[3 * size : (3 + n) * size]
        t = inputs[(3 + n) * size :].view(torch.float64)
        roots = torch.cat([src, dst, neg])
        at = t[:1].expand(size) if self.tgb else t  # TGB's protocol: roots at the batch's start
        times = torch.cat([at, at, at[:, None].expand(size, n).flatten()])
        z = self.embedder(roots, times, t[0])
        loss = self._optimize(z, size, n, self._pair_logits(src, t, dst, neg.reshape(size, n)))
        self.model.observe_events(src, dst, t, eids, self.edge_feat)
        return loss.detach(), z.detach()

    def _graph_step(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``_device_step`` of a full batch as the CUDA graph holds it: TGN's next pending messages
        are written into the buffers the graph reads them from."""
        size = self.config.train.batch_size
        out = self._device_step(inputs, size)
        self._keep_pending(size)
        return out

    def _graphable(self, size: int) -> bool:
        """Whether this batch's step runs as the CUDA graph: a full batch, a sampler that may be
        replayed, and for TGN pending messages of a full batch in the per-message layout (not at an
        epoch's first batch)."""
        if self.graphed is None or size != self.config.train.batch_size:
            return False
        if not self.model.has_memory:
            return True
        pending = self.model.encoder.memory.pending
        return pending is not None and pending.row is not None and pending.node.shape[0] == 2 * size

    def _pending_buffers(self, size: int) -> RawMessages:
        """Where the CUDA graphs keep TGN's pending messages (``2 * size`` rows, made once from the
        current ones)."""
        if self._pending_at is None:
            pending = self.model.encoder.memory.pending
            assert pending is not None and pending.node.shape[0] == 2 * size
            self._pending_at = pending.clone()
        return self._pending_at

    def _keep_pending(self, size: int) -> None:
        """Before a graphed pass of a batch of ``size`` events: TGN's pending messages into the
        graphs' buffers (``Memory.keep_pending_in``)."""
        if self.model.has_memory:
            self.model.encoder.memory.keep_pending_in(self._pending_buffers(size))

    def train_epoch(self, stop_after: int | None = None) -> bool:
        """Trains the rest of epoch ``self.epoch``; False when interrupted (Ctrl-C, or after
        ``stop_after`` batches) before its end."""
        stream = self.streams["train"]
        batch_size = self.config.train.batch_size
        total = stream.num_batches(batch_size)
        if self.batch == 0:
            if self.model.has_memory:
                self.model.encoder.reset_memory()
            self.negatives.start_epoch(self.epoch)
        self.model.train()
        bar = tqdm(
            total=total,
            initial=self.batch,
            desc=f"epoch {self.epoch + 1}/{self.config.train.epochs}",
            unit="batch",
            disable=not self.progress,
            leave=False,
            dynamic_ncols=True,
        )
        sampler_before = self.neighbourhoods.seconds
        began = time.perf_counter()
        events = 0
        # Batch losses stay on the device and are read every 20 batches (no per-batch sync on a GPU).
        losses: list[torch.Tensor] = []

        checked = len(self.partial["losses"])  # losses before this one are finite

        def read_losses(check: bool = True) -> None:
            nonlocal checked
            if losses:
                self.partial["losses"] += torch.stack(losses).tolist()
                losses.clear()
            if check:
                self._check_finite(checked)
                checked = len(self.partial["losses"])

        try:
            for batch in stream.batches(batch_size, first=self.batch):
                losses.append(self._train_batch(batch))
                self.batch += 1
                events += len(batch)
                self._adapt_threads()
                if len(losses) == 20:
                    read_losses()
                    if self.progress:
                        rate = events / max(time.perf_counter() - began, 1e-9)
                        loss = self.partial["losses"][-1]
                        bar.set_postfix(loss=f"{loss:.4f}", events_per_s=f"{rate:,.0f}", refresh=False)
                bar.update(1)
                if stop_after is not None:
                    stop_after -= 1
                    if stop_after == 0 and self.batch < total:
                        self._interrupted = True
                if self._interrupted and self.batch < total:
                    read_losses()
                    return False
                due = time.monotonic() - self._last_checkpoint >= self.checkpoint_every_s
                if due and self.run_dir is not None and self.batch < total:
                    read_losses()  # (nothing diverged is saved)
                    with self._writing_run_dir():
                        self._save_checkpoint()
        finally:
            read_losses(check=False)
            bar.close()
            self.partial["train_seconds"] += time.perf_counter() - began
            self.partial["sampler_seconds"] += self.neighbourhoods.seconds - sampler_before
        self._check_finite(checked)
        return True

    # ----------------------------------------------------------------- TGB's protocol
    def predictor(self) -> ModelPredictor:
        """The model as a :class:`~dgl_tgnn.predictor.LinkPredictor` over the dataset's stream (times
        in the trainer's units, from the first event); its state is rebuilt from the stream."""
        c, ds = self.config, self.dataset
        return ModelPredictor(
            self.model,
            c,
            ds.src,
            ds.dst,
            ds.t - ds.t[0],
            self.node_feat,
            self.edge_feat,
            self.device,
            dedup=self.dedup,
        )

    def rank(self, split: str) -> dict[str, float]:
        """TGB's metrics of ``split`` (``"val"`` or ``"test"``): the model observes every earlier
        event of the stream (TGN's memory rebuilt through them), then ranks the split's positives
        through the predictor, observing each batch after scoring it."""
        predictor = self.predictor()
        earlier = self.split.train if split == "val" else np.concatenate([self.split.train, self.split.val])
        predictor.observe_stream(np.sort(earlier))
        e = self.config.eval
        return rank_stream(
            predictor,
            self.streams[split],
            self.ranking_negatives[split],
            self.config.train.batch_size,
            e.recall_ks,
            edge_feat=self.edge_feat,
            seed=e.seed,
            progress=self.progress,
        )

    def _adapt_threads(self) -> None:
        """With the default thread count on CPU (``train.threads`` unset): one torch thread while
        other processes keep about a core busy, the default again once they stop. A spinning OpenMP
        team waits at every parallel region for a worker the system has descheduled (a uci TGN
        epoch took many times longer beside one busy process; bench/busy_machine.py)."""
        if self.config.train.threads is not None or self.device.type != "cpu":
            return
        if self._threads_mark is not None and time.monotonic() - self._threads_mark[2] < 0.2:
            return  # (/proc/stat counts in 10 ms ticks: look at windows of 0.2 s or more)
        try:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return
        ticks = os.sysconf("SC_CLK_TCK")
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / ticks  # all but idle and iowait
        mark = (busy, time.process_time(), time.monotonic())
        if self._threads_mark is not None and self._default_threads is not None:
            others = (mark[0] - self._threads_mark[0]) - (mark[1] - self._threads_mark[1])
            cores = others / max(mark[2] - self._threads_mark[2], 1e-9)
            threads = 1 if cores > 0.5 else self._default_threads
            if threads != torch.get_num_threads():
                torch.set_num_threads(threads)
        if self._default_threads is None:
            self._default_threads = torch.get_num_threads()
        self._threads_mark = mark

    def _check_finite(self, start: int) -> None:
        """Raises ``TrainingDiverged`` naming the first batch from ``start`` on (of this epoch) whose
        loss is NaN or infinite: nothing of the diverged model is saved."""
        losses = self.partial["losses"]
        for index in range(start, len(losses)):
            if not np.isfinite(losses[index]):
                total = self.streams["train"].num_batches(self.config.train.batch_size)
                raise TrainingDiverged(
                    f"training diverged at epoch {self.epoch + 1}, batch {index + 1} of {total}: the loss "
                    f"is {losses[index]}; lower the learning rate (--lr, now {self.config.train.lr:g}) or "
                    "check the features for huge values (no checkpoint holds the diverged model)"
                )

    def _evaluate_epoch(self) -> tuple[dict[str, float], Any]:
        """Validation (and test) metrics after an epoch, and TGN's memory after validation."""
        if self.tgb:  # the test split is ranked once, with the best epoch's weights
            return {f"val_{k}": v for k, v in self.rank("val").items()}, None
        ranking = True
        evaluate = self.evaluator.evaluate
        memory = self.model.encoder if self.model.has_memory else None
        out: dict[str, float] = {}
        train_end = memory.backup_memory() if memory else None
        out |= {f"val_{k}": v for k, v in evaluate(self.streams["val"], ranking).items()}
        val_end = memory.backup_memory() if memory else None
        if memory:
            memory.restore_memory(train_end)
        out |= {f"val_new_{k}": v for k, v in evaluate(self.streams["val_new"], False).items()}
        if memory:
            memory.restore_memory(val_end)
        if self.config.eval.test_every_epoch:
            out |= self._evaluate_test(val_end)
        return out, val_end

    def _evaluate_test(self, val_end: Any) -> dict[str, float]:
        """Test metrics from the memory after validation (TGN); restores it after each stream."""
        memory = self.model.encoder if self.model.has_memory else None
        out = {f"test_{k}": v for k, v in self.evaluator.evaluate(self.streams["test"], True).items()}
        if memory:
            memory.restore_memory(val_end)
        out |= {
            f"test_new_{k}": v for k, v in self.evaluator.evaluate(self.streams["test_new"], False).items()
        }
        if memory:
            memory.restore_memory(val_end)
        return out

    def fit(self, stop_after_batches: int | None = None) -> dict[str, float] | None:
        """Trains to the end (or early stop) and returns the best checkpoint's test metrics.

        Returns None when interrupted (Ctrl-C, or after ``stop_after_batches`` training batches:
        a test hook), after writing ``checkpoint.pt``.
        """
        c = self.config
        self.check_splits()
        if self.run_dir is not None and not (self.run_dir / rd.CONFIG).exists():
            try:
                save_config(c, self.run_dir / rd.CONFIG)
            except OSError as err:
                raise RunDirError(
                    f"cannot write to the run directory {self.run_dir} ({err.strerror or err}); "
                    "choose another with --runs-dir"
                ) from None
        self.interrupted_by = int(signal.SIGINT)
        self._last_checkpoint = time.monotonic()
        previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
        if self.run_dir is not None:
            if self._lock is None:
                self._lock = rd.lock_run_dir(self.run_dir)
            for signum in previous:
                signal.signal(signum, self._on_sigint)
        try:
            while self.epoch < c.train.epochs and self.bad_epochs < c.train.patience:
                if not self.train_epoch(stop_after_batches):
                    with self._writing_run_dir():
                        self._save_checkpoint()
                    self.log(f"interrupted: resume with `dgl-tgnn train --resume {self.run_dir}`")
                    return None
                self._finish_epoch()
                if self._interrupted:
                    self.log(f"interrupted: resume with `dgl-tgnn train --resume {self.run_dir}`")
                    return None
            return self._final_test()
        finally:
            if self.run_dir is not None:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
            if self._lock is not None:
                rd.unlock_run_dir(self._lock)
                self._lock = None

    def data_hash(self) -> str:
        """A content hash of the events and features trained on (stored in checkpoints, so that
        ``evaluate`` notices a data file that changed since)."""
        if self._data_hash is None:
            ds, digest = self.dataset, hashlib.blake2b(digest_size=16)
            for array in (ds.src, ds.dst, ds.t, ds.edge_feat, ds.node_feat):
                if array is not None:
                    digest.update(f"{array.dtype}{array.shape}".encode())
                    digest.update(np.ascontiguousarray(array).data)
            self._data_hash = digest.hexdigest()
        return self._data_hash

    def check_splits(self) -> None:
        """A ValueError with the split sizes when the test split is empty (no metrics to report)."""
        if len(self.split.test) == 0:
            sizes = ", ".join(f"{name} {len(getattr(self.split, name))}" for name in ("train", "val", "test"))
            raise ValueError(
                f"dataset {self.dataset.name!r} ({self.dataset.num_events} events) leaves an empty test "
                f"split ({sizes} events): use more events (--max-events) or a larger data.test_ratio"
            )

    def _on_sigint(self, signum: int, frame: Any) -> None:
        """Ctrl-C or SIGTERM: finish the batch, save a checkpoint and return (a second one: stop at
        once, leaving the last checkpoint, which is never written partially)."""
        if self._interrupted:
            raise KeyboardInterrupt
        self._interrupted = True
        self.interrupted_by = signum
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        self.log(f"\n{name}: finishing the batch and saving a checkpoint (Ctrl-C again to abort)")

    def _finish_epoch(self) -> None:
        c = self.config
        eval_began = time.perf_counter()
        sampler_before = self.evaluator.sampler_seconds
        metrics, val_end = self._evaluate_epoch()
        eval_seconds = time.perf_counter() - eval_began
        refresh_seconds = getattr(self.negatives, "refresh_seconds", 0.0)
        record = {
            "epoch": self.epoch + 1,
            "loss": sum(self.partial["losses"]) / max(len(self.partial["losses"]), 1),
            **metrics,
            "train_seconds": self.partial["train_seconds"],
            "sampler_seconds": self.partial["sampler_seconds"],
            "refresh_seconds": refresh_seconds,
            "eval_seconds": eval_seconds,
            "eval_sampler_seconds": self.evaluator.sampler_seconds - sampler_before,
            "epoch_seconds": self.partial["train_seconds"] + eval_seconds,
            "peak_memory_mb": peak_memory_mb(self.device),
        }
        if isinstance(self.negatives, TopKNegatives):
            self.negatives.refresh_seconds = 0.0
        self.history.append(record)
        self.log(self._summary(record))
        best: dict[str, Any] | None = None
        score = metrics["val_mrr" if self.tgb else f"val_{c.eval.metric}"]
        if score > self.best_metric:
            self.best_metric, self.best_epoch, self.bad_epochs = score, self.epoch + 1, 0
            if self.run_dir is not None:  # written below, with the epoch's other files
                best = {
                    "config": c.to_dict(),
                    "data_hash": self.data_hash(),
                    "epoch": self.epoch + 1,
                    "model": self.model.state_dict(),
                    "val_memory": memory_to_plain(val_end),
                }
            else:
                weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                self._best_in_memory = (weights, val_end)
        else:
            self.bad_epochs += 1
        self.epoch += 1
        self.batch = 0
        self.partial = self._new_partial()
        if self.run_dir is not None:
            with self._writing_run_dir(best):
                if best is not None:
                    save_atomically(best, self.run_dir / rd.BEST)
                rd.append_metrics(self.run_dir, record)
                rd.plot_curves(self.run_dir, self.history)
                self._save_checkpoint()

    @contextlib.contextmanager
    def _writing_run_dir(self, best: dict[str, Any] | None = None) -> Iterator[None]:
        """Writes into the run directory. When one fails (read-only, removed, disk full), the run so
        far (``checkpoint.pt``, ``best`` when given, config and metrics) goes to a new directory
        under the system's temporary one, and a ``RunDirError`` says where and how to resume."""
        try:
            yield
        except OSError as err:
            assert self.run_dir is not None
            what = f"{err.strerror or err}" + (f": {err.filename}" if err.filename else "")
            where = (
                f"epoch {self.epoch + 1}, batch {self.batch}" if self.batch else f"end of epoch {self.epoch}"
            )
            try:
                rescue = Path(tempfile.mkdtemp(prefix=f"dgl-tgnn-rescue-{self.run_dir.name}-"))
                save_config(self.config, rescue / rd.CONFIG)
                rd.rewrite_metrics(rescue, self.history)
                if best is not None:
                    torch.save(best, rescue / rd.BEST)
                torch.save(self.state(), rescue / rd.CHECKPOINT)
            except OSError as again:
                raise RunDirError(
                    f"cannot write to the run directory {self.run_dir} ({what}), nor save the run "
                    f"elsewhere ({again.strerror or again}): the run is lost after {where}"
                ) from None
            raise RunDirError(
                f"cannot write to the run directory {self.run_dir} ({what}); the run so far ({where}) "
                f"is saved in {rescue}: copy its files into a writable run directory and continue "
                "with `dgl-tgnn train --resume` on it"
            ) from None

    @staticmethod
    def _summary(record: dict[str, Any]) -> str:
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

    def _final_test(self) -> dict[str, float]:
        """Loads the best epoch's weights (and memory) and evaluates the test split."""
        if self.run_dir is not None:
            best = load_checkpoint(self.run_dir / rd.BEST, BEST_KEYS)
            state, val_end = best["model"], memory_from_plain(best.get("val_memory"))
        else:
            assert self._best_in_memory is not None
            state, val_end = self._best_in_memory
        self.model.load_state_dict(state)
        if self.tgb:
            result = {f"test_{k}": v for k, v in self.rank("test").items()}
            bank = rank_edgebank(self.config, self.dataset, self.split, self.ranking_negatives, "unlimited")
            result["edgebank_test_mrr"] = bank["test_mrr"]
        else:
            if self.model.has_memory:
                self.model.encoder.restore_memory(val_end)
            result = self._evaluate_test(val_end)
        result["best_epoch"] = self.best_epoch
        self.log(format_test(result))
        if self.run_dir is not None:
            with self._writing_run_dir():
                rd.append_metrics(self.run_dir, {"final": result})
        return result

    # ----------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, Any]:
        """Everything ``resume`` needs to continue exactly where this run stands."""
        memory = self.model.encoder.backup_memory() if self.model.has_memory else None
        return {
            "config": self.config.to_dict(),
            "data_hash": self.data_hash(),
            "epoch": self.epoch,
            "batch": self.batch,
            "partial": dict(self.partial),
            "history": list(self.history),
            "best": (self.best_metric, self.best_epoch, self.bad_epochs),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "memory": memory_to_plain(memory),
            "negatives": self.negatives.state_dict(),
            "neighbour_sampler": self.neighbourhoods.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.epoch, self.batch = state["epoch"], state["batch"]
        self.partial = dict(state["partial"])
        self.history = list(state["history"])
        self.best_metric, self.best_epoch, self.bad_epochs = state["best"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state["memory"] is not None:
            self.model.encoder.restore_memory(memory_from_plain(state["memory"]))
        self.negatives.load_state_dict(state["negatives"])
        self.neighbourhoods.load_state_dict(state["neighbour_sampler"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    def _save_checkpoint(self) -> None:
        if self.run_dir is None:
            return
        save_atomically(self.state(), self.run_dir / rd.CHECKPOINT)
        self._last_checkpoint = time.monotonic()

    @classmethod
    def resume(
        cls, run_dir: str | Path, *, progress: bool = True, log: Callable[[str], None] = print
    ) -> Trainer:
        """The trainer of ``run_dir`` at its last checkpoint."""
        run_dir = Path(run_dir)
        if not (run_dir / rd.CHECKPOINT).exists():
            raise ValueError(f"--resume {run_dir}: no {rd.CHECKPOINT} in it")
        lock = rd.lock_run_dir(run_dir)
        try:
            trainer = cls._resumed(run_dir, progress, log)
        except BaseException:
            rd.unlock_run_dir(lock)
            raise
        trainer._lock = lock
        return trainer

    @classmethod
    def _resumed(cls, run_dir: Path, progress: bool, log: Callable[[str], None]) -> Trainer:
        config = load_config(run_dir / rd.CONFIG)
        state = load_checkpoint(run_dir / rd.CHECKPOINT, CHECKPOINT_KEYS)
        _check_same_config(state["config"], config.to_dict(), run_dir / rd.CONFIG, run_dir / rd.CHECKPOINT)
        trainer = cls(config, run_dir, progress=progress, log=log)
        try:
            trainer.load_state(state)
        except (KeyError, RuntimeError, ValueError, TypeError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise CheckpointError(
                f"{run_dir / rd.CHECKPOINT}: does not fit the model of {run_dir / rd.CONFIG} ({reason[:200]})"
            ) from None
        rd.rewrite_metrics(run_dir, trainer.history)
        return trainer


def load_best(run_dir: str | Path) -> dict[str, Any]:
    """The best checkpoint of a run directory (its ``best.pt``, read with ``weights_only=True``), on
    the CPU."""
    path = Path(run_dir) / rd.BEST
    if not path.exists():
        raise CheckpointError(f"{run_dir}: no {rd.BEST} in it (a run that finished at least one epoch)")
    return load_checkpoint(path, BEST_KEYS, map_location="cpu")


def _check_same_config(saved: Any, current: dict[str, Any], config_path: Path, checkpoint: Path) -> None:
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
    ]
    shown = " | ".join(f"{label} {result[key]:.4f}" for key, label in names if key in result)
    if "best_epoch" not in result:  # EdgeBank: nothing trained
        return f"test: {shown}"
    return f"test (best epoch {result['best_epoch']}): {shown}"


def evaluate_checkpoint(
    path: str | Path,
    *,
    split: str = "test",
    ranking: bool = True,
    overrides: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, float]:
    """Metrics of a saved model on ``split`` (``"test"`` or ``"val"``), transductive and inductive.

    Args:
        path: a run directory (its ``best.pt``) or a checkpoint file (``best.pt`` or ``checkpoint.pt``).
        ranking: also compute MRR and Recall@k.
        overrides: ``{"section.key": value}`` config changes (e.g. ``eval.negatives``, ``train.device``).

    TGN's memory for the test split is the one saved after validation in ``best.pt``; otherwise (and
    for the validation split) it is rebuilt by streaming the training events (and validation for test)
    through the saved model, as TGN's evaluation carries it.
    """
    path = Path(path)
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    if path.is_dir() and (path / rd.CONFIG).exists():
        config = apply_overrides(load_config(path / rd.CONFIG), overrides or {})
        if config.model.name == "edgebank":  # no weights: its memory is the stream
            result = edgebank_metrics(config, load_events(config.data), path)
            return {k: v for k, v in result.items() if k.startswith(f"{split}_")}
    file = path / rd.BEST if path.is_dir() else path
    if not file.exists():
        raise ValueError(f"{path}: no checkpoint ({rd.BEST}) found")
    saved = load_checkpoint(file, BEST_KEYS, map_location="cpu")
    config = apply_overrides(config_from_dict(saved["config"]), overrides or {})
    # TGB's protocol: the negative sets stored with the run, the split ranked through the predictor.
    run_dir = (path if path.is_dir() else path.parent) if config.eval.protocol == "tgb" else None
    trainer = Trainer(config, run_dir, progress=False, log=log)
    trainer.check_splits()
    if saved.get("data_hash", trainer.data_hash()) != trainer.data_hash():
        where = config.data.path or config.data.dataset
        raise ValueError(
            f"{file}: the data ({where}) changed since training (content hash {saved['data_hash'][:12]} "
            f"then, {trainer.data_hash()[:12]} now); evaluate on the data the model was trained on"
        )
    try:
        trainer.model.load_state_dict(saved["model"])
    except (RuntimeError, TypeError, AttributeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(
            f"{file}: its weights do not fit the model of its config ({reason[:200]})"
        ) from None
    trainer.model.eval()
    if trainer.tgb:
        return {f"{split}_{k}": v for k, v in trainer.rank(split).items()}
    evaluator, streams = trainer.evaluator, trainer.streams
    memory = trainer.model.encoder if trainer.model.has_memory else None
    start = memory_from_plain(saved.get("val_memory")) if split == "test" else None
    if memory is not None and start is None:
        memory.reset_memory()
        with torch.no_grad():
            for batch in streams["train"].batches(config.train.batch_size):
                trainer.model.observe(batch, trainer.edge_feat)
        if split == "test":
            evaluator.evaluate(streams["val"], ranking=False)
        start = memory.backup_memory()
    if memory is not None:
        memory.restore_memory(start)
    result = {f"{split}_{k}": v for k, v in evaluator.evaluate(streams[split], ranking).items()}
    if memory is not None:
        memory.restore_memory(start)
    new = evaluator.evaluate(streams[f"{split}_new"], ranking=False)
    result |= {f"{split}_new_{k}": v for k, v in new.items()}
    return result
