"""Temporal neighbourhoods: ``TemporalBlock`` (one hop, dense ``[R, k]``) and ``TemporalSampler``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from dgl_tgnn import ops
from dgl_tgnn.graph import ArrayLike, TemporalGraph, as_ids, as_times

# Bytes per neighbour slot of a block: node and event ids (int64), time (float64), mask (bool).
SLOT_BYTES = 25


@dataclass(frozen=True)
class TemporalBlock:
    """One hop of sampled temporal neighbourhoods, dense with ``k`` slots per root.

    Attributes:
        root_nodes: ``[R]`` int64 node ids (``-1`` for padding roots of deeper hops).
        root_times: ``[R]`` float64 times at which the roots are embedded.
        nbr_nodes: ``[R, k]`` int64 neighbour ids, ``-1`` where a slot is empty.
        nbr_eids: ``[R, k]`` int64 event ids (positions in the graph's input arrays), ``-1`` where empty.
        nbr_times: ``[R, k]`` float64 times of the neighbours' events (``0`` where empty).
        mask: ``[R, k]`` bool, True where a slot holds a neighbour.
        nbr_index: None, or with ``TemporalSampler(dedup=True)`` (every hop but the last) ``[R, k]``
            int64: the row of each slot's (node, time) among the next hop's roots, ``-1`` where empty.
            None means the next hop's roots are this hop's slots, flattened.
    """

    root_nodes: torch.Tensor
    root_times: torch.Tensor
    nbr_nodes: torch.Tensor
    nbr_eids: torch.Tensor
    nbr_times: torch.Tensor
    mask: torch.Tensor
    nbr_index: torch.Tensor | None = None

    @property
    def num_roots(self) -> int:
        return int(self.nbr_nodes.shape[0])

    @property
    def fanout(self) -> int:
        return int(self.nbr_nodes.shape[1])

    def to(self, device: torch.device | str) -> TemporalBlock:
        """This block with every tensor on ``device``."""
        index = None if self.nbr_index is None else self.nbr_index.to(device)
        tensors = (self.root_nodes, self.root_times, self.nbr_nodes, self.nbr_eids, self.nbr_times, self.mask)
        return TemporalBlock(*(x.to(device) for x in tensors), nbr_index=index)

    @property
    def dt(self) -> torch.Tensor:
        """``[R, k]`` float64 ``root_time - event_time`` (``>= 0``), ``0`` where empty."""
        return torch.where(self.mask, self.root_times[:, None] - self.nbr_times, 0.0)

    def to_dgl(self):  # noqa: ANN201 (returns dgl.DGLBlock; DGL is imported lazily)
        """This hop as a DGL block.

        dst nodes are the ``R`` roots; src nodes are the ``R`` roots followed by the valid
        neighbours in row-major order of ``mask`` (so src node ``R + j`` is the ``j``-th True of
        ``mask.flatten()``). One edge per valid neighbour, from its src node to its root.

        srcdata: ``nid`` int64, ``ts`` float64 (root time for roots, event time for neighbours).
        dstdata: ``nid``, ``ts`` of the roots. edata: ``eid`` int64, ``dt`` float64 ``>= 0``.
        """
        from dgl_tgnn._dgl import dgl

        num_roots = self.num_roots
        rows, cols = self.mask.nonzero(as_tuple=True)
        num_valid = int(rows.shape[0])
        src = torch.arange(num_roots, num_roots + num_valid, device=rows.device)
        block = dgl.create_block((src, rows), num_src_nodes=num_roots + num_valid, num_dst_nodes=num_roots)
        block.srcdata["nid"] = torch.cat([self.root_nodes, self.nbr_nodes[rows, cols]])
        block.srcdata["ts"] = torch.cat([self.root_times, self.nbr_times[rows, cols]])
        block.dstdata["nid"] = self.root_nodes
        block.dstdata["ts"] = self.root_times
        block.edata["eid"] = self.nbr_eids[rows, cols]
        block.edata["dt"] = self.root_times[rows] - self.nbr_times[rows, cols]
        return block


class TemporalSampler:
    """Samples temporal neighbourhoods, hop by hop, from a :class:`TemporalGraph`.

    For a root ``(v, t)`` only events of ``v`` strictly before ``t`` are candidates.

    * ``recent``: the ``k`` latest candidates, most recent first (ties: larger event id first).
    * ``uniform``: ``k`` distinct candidates drawn uniformly without replacement (all of them when
      there are at most ``k``), or ``k`` independent draws with ``replace=True``; returned most
      recent first.
    * ``labor`` (correlated, as LABOR for static graphs): every event gets one pseudo-random number
      per call, shared by all roots of all hops; each root takes its ``k`` candidates with the
      smallest numbers (all when there are at most ``k``), most recent first. Each root's sample is
      uniform without replacement, as with ``uniform``, but roots of one node at different times
      take the same events where they can, so deeper hops have fewer distinct (node, time) roots.

    Hop ``i + 1``'s roots are hop ``i``'s ``nbr_nodes.flatten()`` at ``nbr_times.flatten()`` (empty
    slots become padding roots ``-1`` with fully masked rows), so hop ``i`` is dense
    ``[R * k_0 * ... * k_{i-1}, k_i]``.

    With ``dedup=True`` hop ``i + 1``'s roots are instead the distinct (node, time) pairs of hop ``i``'s
    valid slots (:func:`dedup_roots`), and hop ``i``'s ``nbr_index`` maps each slot to its row there:
    each distinct root is sampled (and embedded by the models) once. ``recent`` and ``labor`` samples are
    then those of the full chain, gathered through ``nbr_index``; ``uniform`` roots that coincide share
    one draw.

    Random draws are a pure function of ``(seed, call number, hop, root index, draw)`` (a
    counter-based hash, csrc/core/rng.h): the same seed gives the same samples whatever
    ``num_threads`` and on CPU or CUDA alike; each call of :meth:`sample` draws new ones. On a GPU
    the call number lives in a device counter that the kernels read and each call advances there,
    so a CUDA graph that captured calls draws anew at each replay (:meth:`count_replayed` then
    tells the host count).

    With ``keyed=True`` a uniform root's draws are keyed by its (node, time) instead of its position
    among the call's roots (``(seed, round, hop, node, time, draw)``), and a call does not advance the
    call number: the owner sets ``calls`` (the round) itself. Roots draw alike whichever roots share
    their call, so a window of events split across processes draws what one process draws for it.

    Args:
        graph: the events to sample from.
        fanouts: ``k`` per hop, each ``>= 1`` (``<= 256`` on CUDA).
        strategy: ``"recent"``, ``"uniform"`` or ``"labor"``.
        replace: draw with replacement (``uniform`` only).
        seed: int in ``[0, 2**64)``.
        num_threads: CPU threads (csrc/core/parallel.h); None: OMP_NUM_THREADS if set, else all cores.
        dedup: deduplicate the roots of every hop after the first (see above).
        keyed: uniform draws keyed by each root's (node, time), and rounds set by the owner (above).
    """

    STRATEGIES = ("recent", "uniform", "labor")

    def __init__(
        self,
        graph: TemporalGraph,
        fanouts: Sequence[int] = (10, 10),
        strategy: str = "recent",
        replace: bool = False,
        seed: int = 0,
        num_threads: int | None = None,
        dedup: bool = False,
        keyed: bool = False,
    ) -> None:
        if not isinstance(graph, TemporalGraph):
            raise ValueError(f"graph: expected a TemporalGraph, got {type(graph).__name__}")
        if isinstance(fanouts, str) or not isinstance(fanouts, Sequence):
            raise ValueError(f"fanouts: expected a sequence of ints, got {fanouts!r}")
        if not fanouts:
            raise ValueError("fanouts: expected at least one hop, got []")
        for i, k in enumerate(fanouts):
            if isinstance(k, bool) or not isinstance(k, int | np.integer) or k <= 0:
                raise ValueError(f"fanouts: fanout {k!r} at position {i} must be an int > 0")
        if strategy not in self.STRATEGIES:
            raise ValueError(f"strategy: unknown {strategy!r}, expected one of {self.STRATEGIES}")
        if not isinstance(replace, bool):
            raise ValueError(f"replace: expected a bool, got {replace!r}")
        if replace and strategy != "uniform":
            raise ValueError(f"replace: True applies only to strategy 'uniform', got strategy {strategy!r}")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**64:
            raise ValueError(f"seed: expected an int in [0, 2**64), got {seed!r}")
        if num_threads is not None and (
            isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads <= 0
        ):
            raise ValueError(f"num_threads: expected None or an int > 0, got {num_threads!r}")
        if not isinstance(dedup, bool):
            raise ValueError(f"dedup: expected a bool, got {dedup!r}")
        self.graph = graph
        self.fanouts = [int(k) for k in fanouts]
        self.strategy = strategy
        self.replace = replace
        self.seed = int(seed)
        self.num_threads = num_threads
        self.dedup = dedup
        self.keyed = bool(keyed)
        self._calls = 0
        # The call number on each GPU sampled on, as the kernels read it (equal to _calls).
        self._call_counters: dict[torch.device, torch.Tensor] = {}

    @property
    def calls(self) -> int:
        """Calls of :meth:`sample` so far (the next call draws as call number ``calls``)."""
        return self._calls

    @calls.setter
    def calls(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise ValueError(f"calls: expected an int >= 0, got {value!r}")
        self._calls = int(value)
        for counter in self._call_counters.values():
            counter.fill_(self._calls)

    def count_replayed(self, calls: int) -> None:
        """Count ``calls`` calls that a replayed CUDA graph made on the GPU: the device counter
        moved on in the graph; this moves the host count (``calls``) with it (keyed: calls do not
        move it)."""
        if not self.keyed:
            self._calls += calls

    def __getstate__(self) -> dict:
        """Pickles without the GPU counters (remade from ``calls`` where sampled next)."""
        state = self.__dict__.copy()
        state["_call_counters"] = {}
        return state

    def sample(self, nodes: ArrayLike, times: ArrayLike, check: bool = True) -> list[TemporalBlock]:
        """Samples ``len(fanouts)`` hops around roots ``(nodes[i], times[i])``.

        Args:
            nodes: ``[R]`` integer node ids in ``[0, num_nodes)``, numpy or torch. CUDA tensors are
                sampled on their GPU (outputs stay there).
            times: ``[R]`` float or integer root times (not NaN), on the same device as ``nodes``.
            check: CUDA only: read back the kernel's validity flag to raise on bad ids or NaN times
                (one host synchronisation). With False nothing synchronises and bad roots silently
                get empty rows. CPU inputs are always checked (at no measurable cost).

        Returns:
            One :class:`TemporalBlock` per hop; ``blocks[0]`` holds the given roots.

        Raises:
            ValueError: naming the argument and the offending value.
        """
        nodes, times = as_ids(nodes, "nodes"), as_times(times, "times")
        if nodes.shape[0] != times.shape[0]:
            raise ValueError(f"nodes and times: length mismatch {nodes.shape[0]} vs {times.shape[0]}")
        if nodes.device != times.device:
            raise ValueError(f"times: on {times.device}, expected the device of nodes ({nodes.device})")
        self._check_size(nodes.shape[0], nodes.device)
        call = self._calls
        counter = self._call_counter(nodes.device) if nodes.is_cuda else None  # holds call
        if self.keyed:  # the owner sets the round
            return self._sample_blocks(nodes, times, call, check)
        self._calls += 1
        try:
            return self._sample_blocks(nodes, times, call, check)
        finally:  # the device counter moves with _calls, even when the roots were refused
            if counter is not None:
                counter.add_(1)

    def _check_size(self, roots: int, device: torch.device) -> None:
        """Refuses a call whose blocks would take more than half the memory of ``device`` (the GPU's,
        or the machine's RAM): ``SLOT_BYTES`` per neighbour slot, before allocating any. (No driver
        call: safe inside CUDA graph capture.)"""
        slots, width = 0, roots
        for fanout in self.fanouts:
            width *= fanout
            slots += width
        need = slots * SLOT_BYTES
        if device.type == "cuda":
            limit = torch.cuda.get_device_properties(device).total_memory // 2
        else:
            limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
        if need > limit:
            raise ValueError(
                f"fanouts {self.fanouts} for {roots} roots need {need / 2**30:.1f} GiB of neighbour slots "
                f"({slots:,} x {SLOT_BYTES} bytes), over half the memory of {device} ({limit / 2**30:.1f} "
                "GiB): lower the fanouts or sample fewer roots per call"
            )

    def _call_counter(self, device: torch.device) -> torch.Tensor:
        """The call number on GPU ``device`` (int64 ``[1]``, made from ``calls`` when first used)."""
        counter = self._call_counters.get(device)
        if counter is None:
            counter = torch.full((1,), self._calls, dtype=torch.int64, device=device)
            self._call_counters[device] = counter
        return counter

    def _sample_blocks(
        self, nodes: torch.Tensor, times: torch.Tensor, call: int, check: bool
    ) -> list[TemporalBlock]:
        if not self.dedup:
            hops = self._sample_hops(nodes, times, self.fanouts, call, 0, check)
            blocks = []
            for nbr_nodes, nbr_eids, nbr_times, mask in hops:
                blocks.append(TemporalBlock(nodes, times, nbr_nodes, nbr_eids, nbr_times, mask))
                nodes, times = nbr_nodes.view(-1), nbr_times.view(-1)
            return blocks
        blocks = []
        for hop, fanout in enumerate(self.fanouts):
            [(nbr_nodes, nbr_eids, nbr_times, mask)] = self._sample_hops(
                nodes, times, [fanout], call, hop, check and hop == 0
            )
            index = None
            if hop + 1 < len(self.fanouts):
                next_nodes, next_times, inverse = dedup_roots(nbr_nodes.view(-1), nbr_times.view(-1))
                index = inverse.view_as(nbr_nodes)
            blocks.append(TemporalBlock(nodes, times, nbr_nodes, nbr_eids, nbr_times, mask, index))
            if index is not None:
                nodes, times = next_nodes, next_times
        return blocks

    def _sample_hops(
        self,
        nodes: torch.Tensor,
        times: torch.Tensor,
        fanouts: list[int],
        call: int,
        first_hop: int,
        check: bool,
    ) -> list[tuple[torch.Tensor, ...]]:
        """Hops ``first_hop, first_hop + 1, ...`` of call ``call``, chained without deduplication."""
        strategy = self.STRATEGIES.index(self.strategy)
        if nodes.is_cuda:
            return self._sample_cuda(nodes, times, fanouts, strategy, first_hop, check)
        # The op checks the roots (ValueError naming the first bad one) and their device.
        return ops.sample_cpu(
            self.graph._tcsr,
            nodes,
            times,
            fanouts,
            strategy,
            self.replace,
            self.seed,
            call,
            self.num_threads or 0,
            first_hop,
            self.keyed,
        )

    def _sample_cuda(
        self,
        nodes: torch.Tensor,
        times: torch.Tensor,
        fanouts: list[int],
        strategy: int,
        first_hop: int,
        check: bool,
    ) -> list[tuple[torch.Tensor, ...]]:
        """``_sample_hops`` on the GPU of ``nodes``, for the call number in that GPU's counter."""
        hops, error = ops.sample_cuda(
            self.graph.packed_csr(nodes.device),
            nodes,
            times,
            fanouts,
            strategy,
            self.replace,
            self.seed,
            self._call_counters[nodes.device],
            first_hop,
            check,
            self.keyed,
        )
        if check and int(error.item()) != 0:
            num_nodes = self.graph.num_nodes
            bad = ((nodes < 0) | (nodes >= num_nodes)).nonzero()
            if bad.numel():
                i = int(bad[0])
                raise ValueError(
                    f"nodes: id {int(nodes[i])} at position {i} is out of range [0, {num_nodes})"
                )
            raise ValueError(f"times: NaN at position {int(times.isnan().nonzero()[0])}")
        return hops


def dedup_roots(nodes: torch.Tensor, times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The distinct (node, time) pairs of roots, in order of first occurrence (TGLite's ``dedup``).

    Args:
        nodes: ``[R]`` int64 node ids; ids ``< 0`` are padding roots and are left out.
        times: ``[R]`` float64 root times (not NaN; ``-0.0`` and ``0.0`` are one time), on the device of
            ``nodes`` (CPU or CUDA).

    Returns:
        ``(unique_nodes [U], unique_times [U], inverse [R])``: ``inverse`` int64 holds each root's row
        among the distinct pairs (``nodes[i] == unique_nodes[inverse[i]]``), ``-1`` for padding roots.
        On CUDA this synchronises once (to size the output).

    Raises:
        ValueError: other dtypes or shapes, different lengths or devices.
    """
    return ops.dedup_roots(nodes, times)
