"""Building a run from its config: the events and their split (``RunData``), the model, the
optimizer, the neighbour sampler and the evaluator."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from dgl_tgnn.config import DataConfig, RunConfig
from dgl_tgnn.data import Split, TemporalDataset, load_dataset, split_events
from dgl_tgnn.devices import dedup_hops, features_on
from dgl_tgnn.evaluation import Evaluator
from dgl_tgnn.events import EventStream
from dgl_tgnn.graph import TemporalGraph
from dgl_tgnn.link import LinkModel
from dgl_tgnn.neighbourhoods import Neighbourhoods
from dgl_tgnn.node_classification import require_labels


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


def setup_device(config: RunConfig) -> tuple[torch.device, bool]:
    """The run's device (``check_device``) and whether its deeper hops are deduplicated; sets
    torch's thread count when ``train.threads`` is set."""
    device = check_device(config.train.device)
    dedup = dedup_hops(config.model.dedup, device)
    if config.train.threads is not None:
        torch.set_num_threads(config.train.threads)
    return device, dedup


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
            bipartite=config.bipartite,
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


def check_task(config: RunConfig, dataset: TemporalDataset) -> None:
    """A one-line ValueError when ``train.task`` is ``node`` and ``dataset`` has no event labels."""
    if config.train.task == "node":
        require_labels(dataset, " (--task link trains link prediction only)")


@dataclass
class RunData:
    """The events of a run, split as its config says, with their features on the run's device.

    Times count from the first event: TGN's memory starts at time 0, so a stream in unix seconds
    would make every node's first message look 1e9 s old (beyond float32 time encodings).

    Attributes:
        dataset: the events as loaded (times as in the data).
        split: the row indices of each split.
        tgb: TGB's protocol (``eval.protocol == "tgb"``): no node is held out.
        streams: ``train``, ``val``, ``test``, ``val_new`` and ``test_new`` event streams.
        node_feat, edge_feat: ``[N, node_dim]`` and ``[E, edge_dim]`` float32 on the device.
        train_edge_feat: ``[E_train, edge_dim]``, the rows of the training events.
        full_graph, train_graph: all events, and the training events only.
        candidates: ``[N_c]`` int64 destination pool of the evaluation negatives.
        train_candidates: the pool of the training negatives, without the held-out nodes.
    """

    dataset: TemporalDataset
    split: Split
    tgb: bool
    streams: dict[str, EventStream]
    node_feat: torch.Tensor
    edge_feat: torch.Tensor
    train_edge_feat: torch.Tensor
    full_graph: TemporalGraph
    train_graph: TemporalGraph
    candidates: torch.Tensor
    train_candidates: torch.Tensor

    @functools.cached_property
    def data_hash(self) -> str:
        """A content hash of the events and features trained on (stored in checkpoints, so that
        ``evaluate`` notices a data file that changed since)."""
        ds, digest = self.dataset, hashlib.blake2b(digest_size=16)
        for array in (ds.src, ds.dst, ds.t, ds.edge_feat, ds.node_feat):
            if array is not None:
                digest.update(f"{array.dtype}{array.shape}".encode())
                digest.update(np.ascontiguousarray(array).data)
        return digest.hexdigest()

    def check_splits(self) -> None:
        """A ValueError with the split sizes when the test split is empty (no metrics to report)."""
        if len(self.split.test) == 0:
            sizes = ", ".join(f"{name} {len(getattr(self.split, name))}" for name in ("train", "val", "test"))
            raise ValueError(
                f"dataset {self.dataset.name!r} ({self.dataset.num_events} events) leaves an empty test "
                f"split ({sizes} events): use more events (--max-events) or a larger data.test_ratio"
            )


def build_data(config: RunConfig, dataset: TemporalDataset | None, device: torch.device) -> RunData:
    """The ``RunData`` of ``config`` (``dataset``, when already loaded, else ``load_events``)."""
    c = config
    ds = dataset if dataset is not None else load_events(c.data)
    check_task(c, ds)
    # TGB's protocol holds no node out (its split is at the 0.70 / 0.85 time quantiles).
    tgb = c.eval.protocol == "tgb"
    new_node_ratio = 0.0 if tgb else c.data.new_node_ratio
    split = split_events(ds, c.data.val_ratio, c.data.test_ratio, new_node_ratio, seed=c.train.seed)
    if len(split.train) == 0 or len(split.val) == 0:
        raise ValueError(f"dataset {ds.name!r} ({ds.num_events} events) is too small to split")

    src, dst = torch.from_numpy(ds.src), torch.from_numpy(ds.dst)
    t = torch.from_numpy(ds.t - ds.t[0])
    train_ids = torch.from_numpy(split.train)
    streams = {
        name: EventStream(src, dst, t, torch.from_numpy(getattr(split, name)))
        for name in ("train", "val", "test", "val_new", "test_new")
    }
    edge_feat = features_on(ds.edge_feat, ds.num_events, device)

    is_new = np.zeros(ds.num_nodes, dtype=bool)
    is_new[split.new_nodes] = True
    if c.data.candidates == "all":
        candidates = np.arange(ds.num_nodes, dtype=np.int64)
    else:
        candidates = ds.dst_candidates
    return RunData(
        dataset=ds,
        split=split,
        tgb=tgb,
        streams=streams,
        node_feat=features_on(ds.node_feat, ds.num_nodes, device),
        edge_feat=edge_feat,
        train_edge_feat=edge_feat[train_ids.to(device)],
        full_graph=TemporalGraph(src, dst, t, num_nodes=ds.num_nodes),
        train_graph=TemporalGraph(src[train_ids], dst[train_ids], t[train_ids], num_nodes=ds.num_nodes),
        candidates=torch.from_numpy(candidates),
        # Training negatives never touch the nodes held out for the inductive sets (as in TGN).
        train_candidates=torch.from_numpy(candidates[~is_new[candidates]]),
    )


def build_model(config: RunConfig, data: RunData, device: torch.device) -> LinkModel:
    """The ``LinkModel`` of ``config``, initialised from ``train.seed``, on ``device``."""
    torch.manual_seed(config.train.seed)
    model = LinkModel(config.model, data.dataset.num_nodes, data.node_feat.shape[1], data.edge_feat.shape[1])
    return model.to(device)


def build_optimizer(config: RunConfig, model: LinkModel, device: torch.device) -> torch.optim.Adam:
    """Adam over the model's parameters at ``train.lr``; capturable on a GPU: the step counts live
    there, so the CUDA graph can hold the optimizer step."""
    capturable = device.type == "cuda"
    return torch.optim.Adam(model.parameters(), lr=config.train.lr, fused=True, capturable=capturable)


def build_neighbourhoods(
    config: RunConfig, data: RunData, device: torch.device, dedup: bool
) -> Neighbourhoods:
    """The neighbour sampler of the training graph, seeded with ``train.seed``, its draws keyed by
    root and batch (``Neighbourhoods(keyed=True)``: the same whichever process embeds a root)."""
    c = config
    return Neighbourhoods(
        data.train_graph,
        c.model.fanouts,
        c.model.strategy,
        c.train.seed,
        c.train.threads,
        c.train.visible_batch,
        device,
        dedup=dedup,
        keyed=True,
    )


def build_evaluator(
    config: RunConfig,
    data: RunData,
    model: LinkModel,
    device: torch.device,
    dedup: bool,
    make: Callable[..., Evaluator] = Evaluator,
) -> Evaluator:
    """The ``Evaluator`` of ``model`` over all events, with the evaluation settings of ``config``
    (batches of ``RunConfig.eval_batch_size`` events), made by ``make`` (an ``Evaluator`` class, or a
    partial of one)."""
    c = config
    return make(
        model,
        data.full_graph,
        data.node_feat,
        data.edge_feat,
        data.candidates,
        fanouts=c.model.fanouts,
        strategy=c.model.strategy,
        dedup=dedup,
        threads=c.train.threads,
        visible_batch=c.train.visible_batch,
        batch_size=c.eval_batch_size,
        negatives=c.eval.negatives,
        recall_ks=c.eval.recall_ks,
        seed=c.eval.seed,
        device=device,
    )
