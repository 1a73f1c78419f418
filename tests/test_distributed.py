"""dgl_tgnn.distributed on two gloo processes on localhost: exact sharded top-K, sharded topk
negatives that exclude known destinations, replicated TGN memory updates, and a rank that dies
making the other fail instead of hanging."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dgl_tgnn.distributed import all_gather_rows, gather_events, sharded_topk
from dgl_tgnn.distributed.group import Parallel
from dgl_tgnn.distributed.negatives import ShardedTopKNegatives
from dgl_tgnn.events import EventBatch, EventStream
from dgl_tgnn.negatives import PairHistory, TopKNegatives
from dgl_tgnn.nn import TGN
from dgl_tgnn.topk import topk_dot

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="torch.distributed with gloo needed"
)

WORLD = 2
TIMEOUT_S = 60  # process group timeout: a collective that cannot complete fails after this
DEADLINE_S = 90  # the test kills its processes after this


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_rank(
    worker: Callable[..., object], rank: int, port: int, timeout_s: int, out: Path, args: tuple
) -> None:
    """One process: join the group, run ``worker(rank, *args)`` and save its result to ``out``."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD,
        timeout=timedelta(seconds=timeout_s),
    )
    try:
        torch.save(worker(rank, *args), out / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _launch(
    worker: Callable[..., object], out: Path, args: tuple = (), timeout_s: int = TIMEOUT_S
) -> list[int | None]:
    """Run ``worker`` on ``WORLD`` spawned processes; their exit codes (None: killed at the deadline)."""
    context = mp.get_context("spawn")
    port = _free_port()
    processes = [
        context.Process(target=_run_rank, args=(worker, rank, port, timeout_s, out, args))
        for rank in range(WORLD)
    ]
    for p in processes:
        p.start()
    deadline = time.monotonic() + DEADLINE_S
    codes = []
    for p in processes:
        p.join(max(deadline - time.monotonic(), 0.0))
        if p.is_alive():
            p.kill()
            p.join()
            codes.append(None)
        else:
            codes.append(p.exitcode)
    return codes


def _results(out: Path) -> list[object]:
    return [torch.load(out / f"rank{rank}.pt", weights_only=False) for rank in range(WORLD)]


# --- sharded_topk ---------------------------------------------------------------------------------


def _topk_cases() -> list[tuple[list[torch.Tensor], torch.Tensor, list[tuple[int, int]], int]]:
    """``(queries per rank, table, (offset, rows) per rank, k)``, the same in every process."""
    g = torch.Generator().manual_seed(0)
    table = torch.randn(23, 5, generator=g)
    queries = [torch.randn(4, 5, generator=g), torch.randn(7, 5, generator=g)]
    # Small integers: many exactly equal scores, and duplicated rows on both sides of a cut.
    tied = torch.randint(-2, 3, (12, 3), generator=g).float()
    tied[6:9] = tied[3:6]
    tied_queries = [torch.randint(-2, 3, (5, 3), generator=g).float(), torch.ones(3, 3)]
    return [
        (queries, table, [(0, 9), (9, 14)], 3),
        (queries, table, [(0, 9), (9, 14)], 12),  # k > rows of rank 0's shard
        (queries, table, [(0, 9), (9, 14)], 23),  # k = N
        (queries, table, [(14, 9), (0, 14)], 10),  # rank 0 holds the tail
        (queries, table, [(0, 0), (0, 23)], 5),  # rank 0 holds no rows
        ([queries[0][:0], queries[1]], table, [(0, 9), (9, 14)], 4),  # rank 0 has no queries
        (tied_queries, tied, [(0, 5), (5, 7)], 7),
        (tied_queries, tied, [(5, 7), (0, 5)], 7),  # ties across the cut, rank 0 holds the tail
        (tied_queries, tied, [(0, 11), (11, 1)], 12),
    ]


def _topk_worker(rank: int) -> dict[str, object]:
    results = []
    for queries, table, shards, k in _topk_cases():
        offset, rows = shards[rank]
        results.append(sharded_topk(queries[rank], table[offset : offset + rows], offset, k))
    table = torch.randn(6, 2)
    try:
        sharded_topk(torch.randn(2, 2), table[3 * rank : 3 * rank + 3], 3 * rank, 7)
        error = ""
    except ValueError as e:
        error = str(e)
    return {"results": results, "error": error}


def test_sharded_topk_equals_topk_dot(tmp_path: Path) -> None:
    assert _launch(_topk_worker, tmp_path) == [0] * WORLD
    outputs = _results(tmp_path)
    for case, (queries, table, _, k) in enumerate(_topk_cases()):
        for rank in range(WORLD):
            scores, ids = outputs[rank]["results"][case]
            expected_scores, expected_ids = topk_dot(queries[rank], table, k)
            assert scores.shape == ids.shape == (queries[rank].shape[0], k)
            assert ids.dtype == torch.int64
            assert torch.equal(ids, expected_ids), (case, rank)
            assert torch.equal(scores, expected_scores), (case, rank)
    for rank in range(WORLD):
        assert "k must be in [1, 6]" in outputs[rank]["error"]


# --- ShardedTopKNegatives -------------------------------------------------------------------------

USERS, ITEMS = 8, 24


def _known_sampler(exclude_known: bool) -> tuple[TopKNegatives, EventBatch, torch.Tensor]:
    """A ``TopKNegatives`` over items ``USERS..USERS + ITEMS - 1`` of a random stream, a window of it
    (many sources with known items), and queries ``[B, d]`` that point at each source's first known
    item: without ``exclude_known`` the known items are among the nearest."""
    g = torch.Generator().manual_seed(3)
    src = torch.randint(0, USERS, (120,), generator=g)
    dst = torch.randint(USERS, USERS + ITEMS, (120,), generator=g)
    stream = EventStream(src, dst, torch.arange(120, dtype=torch.float64), torch.arange(120))
    table = torch.randn(USERS + ITEMS, 6, generator=g)
    sampler = TopKNegatives(
        torch.arange(USERS, USERS + ITEMS),
        n_hard=3, n_rand=1, k=4, refresh=1, warmup_epochs=0, similarity="dot",
        exclude_known=exclude_known, embed=lambda nodes, _: table[nodes], seed=0,
        history=PairHistory(src, dst),
    )  # fmt: skip
    window = list(stream.batches(30))[2]
    known = sampler.history.known(window.src, window.stop)
    queries = table[torch.where(known[:, 0] >= 0, known[:, 0], window.dst)] * 10.0
    sampler.start_epoch(0)
    return sampler, window, queries


def _known_worker(rank: int) -> torch.Tensor:
    sampler, window, queries = _known_sampler(exclude_known=True)
    parallel = Parallel(rank, WORLD, torch.device("cpu"))
    sharded = ShardedTopKNegatives.of(sampler, parallel)
    lo, hi = parallel.bounds(len(window))
    return torch.cat(all_gather_rows(sharded.sample_share(window, lo, hi, queries[lo:hi])))


def test_sharded_topk_negatives_exclude_known_as_one_process(tmp_path: Path) -> None:
    """With ``exclude_known``, each process drawing its share of a window from the sharded table
    gives one process's negatives (known items are the nearest here: leaving them in differs)."""
    assert _launch(_known_worker, tmp_path) == [0] * WORLD
    sampler, window, queries = _known_sampler(exclude_known=True)
    want = sampler.sample(window, queries)
    assert sampler.history is not None
    known = sampler.history.known(window.src, window.stop)
    assert not (want[:, :3, None] == known[:, None, :]).any()  # no known item among the hard ones
    unfiltered, _, _ = _known_sampler(exclude_known=False)
    assert not torch.equal(unfiltered.sample(window, queries), want)
    for got in _results(tmp_path):
        assert torch.equal(got, want)


# --- gather_events and replicated TGN memory ------------------------------------------------------

NUM_NODES, EDGE_DIM, NUM_EVENTS = 9, 3, 36
WINDOWS = [(0, 14), (14, 25), (25, 36)]
CONFIGS = [("last", "identity", "gru"), ("mean", "mlp", "rnn")]


def _stream() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A chronological stream with time ties: ``src, dst, t (float64), eids, edge_feat``."""
    g = torch.Generator().manual_seed(1)
    src = torch.randint(0, NUM_NODES, (NUM_EVENTS,), generator=g)
    dst = torch.randint(0, NUM_NODES, (NUM_EVENTS,), generator=g)
    t = torch.randint(0, 12, (NUM_EVENTS,), generator=g).sort().values.double()
    edge_feat = torch.randn(NUM_EVENTS, EDGE_DIM, generator=g)
    return src, dst, t, torch.arange(NUM_EVENTS), edge_feat


def _make_tgn(aggregator: str, message: str, updater: str) -> TGN:
    torch.manual_seed(0)
    options = dict(memory_dim=4, time_dim=2, embed_dim=4, num_heads=1, dropout=0.0, engine="dense")
    return TGN(NUM_NODES, 0, EDGE_DIM, aggregator=aggregator, message=message, updater=updater, **options)


def _memory_snapshot(model: TGN) -> dict[str, torch.Tensor]:
    memory = model.memory
    pending = memory.pending
    assert pending is not None
    snapshot = {"state": memory.state.clone(), "last_update": memory.last_update.clone()}
    for name in ("node", "other", "t", "edge_feat", "nodes", "index", "count", "node_time"):
        snapshot[f"pending.{name}"] = getattr(pending, name).clone()
    return snapshot


def _memory_worker(rank: int, weights: list[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
    src, dst, t, eids, edge_feat = _stream()
    # Rank r holds a random half of each window, in a shuffled order.
    mine = torch.randperm(NUM_EVENTS, generator=torch.Generator().manual_seed(2))[rank::WORLD]
    snapshots = []
    for config, state_dict in zip(CONFIGS, weights, strict=True):
        model = _make_tgn(*config)
        model.load_state_dict(state_dict)
        for start, stop in WINDOWS:
            part = mine[(mine >= start) & (mine < stop)]
            events = gather_events(src[part], dst[part], t[part], eids[part])
            assert torch.equal(events[3], eids[start:stop])
            model.update(*events, edge_feat)
            snapshots.append(_memory_snapshot(model))
    return snapshots


def test_replicated_memory_equals_single_process(tmp_path: Path) -> None:
    models = [_make_tgn(*config) for config in CONFIGS]
    assert _launch(_memory_worker, tmp_path, ([m.state_dict() for m in models],)) == [0] * WORLD
    src, dst, t, eids, edge_feat = _stream()
    expected = []
    for model in models:
        for start, stop in WINDOWS:
            window = slice(start, stop)
            model.update(src[window], dst[window], t[window], eids[window], edge_feat)
            expected.append(_memory_snapshot(model))
    for snapshots in _results(tmp_path):
        for got, want in zip(snapshots, expected, strict=True):
            assert got.keys() == want.keys()
            for name in want:
                assert torch.equal(got[name], want[name]), name


def test_gather_events_orders_by_time_then_eid(tmp_path: Path) -> None:
    assert _launch(_gather_worker, tmp_path) == [0] * WORLD
    for src, dst, t, eids in _results(tmp_path):
        assert t.tolist() == [1.0, 1.0, 1.0, 2.0, 3.0]
        assert eids.tolist() == [4, 7, 9, 0, 5]
        assert src.tolist() == [14, 17, 19, 10, 15]
        assert dst.tolist() == [24, 27, 29, 20, 25]


def _gather_worker(rank: int) -> tuple[torch.Tensor, ...]:
    eids = [torch.tensor([9, 0, 4]), torch.tensor([5, 7])][rank]
    t = [torch.tensor([1.0, 2.0, 1.0]), torch.tensor([3.0, 1.0])][rank]
    return gather_events(eids + 10, eids + 20, t.double(), eids)


# --- a rank that dies -----------------------------------------------------------------------------


def _dying_worker(rank: int) -> str:
    if rank == 1:
        os._exit(3)
    start = time.monotonic()
    try:
        sharded_topk(torch.randn(2, 4), torch.randn(5, 4), 0, 3)
    except RuntimeError as e:
        return f"raised after {time.monotonic() - start:.1f} s: {e}"
    return "returned"


def test_dead_rank_fails_the_other(tmp_path: Path) -> None:
    started = time.monotonic()
    codes = _launch(_dying_worker, tmp_path, timeout_s=10)
    assert codes[1] == 3
    assert codes[0] is not None, "the surviving rank hung"
    assert time.monotonic() - started < 60
    if codes[0] == 0:  # it caught the collective's error
        assert torch.load(tmp_path / "rank0.pt").startswith("raised")
