"""TGN's per-node memory: raw message store, message function, aggregator and updater."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, fields

import torch
from torch import nn

from dgl_tgnn.nn.attention import gather_rows
from dgl_tgnn.nn.time_encoding import TimeEncoding

MESSAGES = ("identity", "mlp")
AGGREGATORS = ("last", "mean")
UPDATERS = ("gru", "rnn")


@dataclass(frozen=True)
class RawMessages:
    """The raw messages of one batch of events, waiting to be applied to the memory.

    Event ``(src, dst, t, e)`` gives node ``src`` the message ``(other=dst, t, e)`` and node ``dst``
    the message ``(other=src, t, e)``. With the ``"last"`` aggregator only each node's latest message
    counts (ties in time: the later one in batch order, ``dst``'s after ``src``'s).

    The pending update (``Memory.pending_update()``) has one row per entry of ``nodes``. Two layouts:

    * compact (CPU): ``nodes`` holds each receiving node once, sorted, ``row`` is None; with ``"last"``
      only each node's latest message is stored (``M = P``).
    * per message (CUDA): no size depends on the data, so nothing waits for the GPU and a CUDA graph
      can hold it: every message is stored (``M = P = 2B``, ``nodes = node``, a node's rows
      repeated) and ``row`` names, for each entry of ``nodes``, the one row that holds its node's
      memory: the row of its latest message, into which ``"mean"`` also sums its messages. The
      other rows of a node are computed and never read.

    Attributes:
        node: ``[M]`` int64 node that receives each message.
        other: ``[M]`` int64 the other endpoint of the message's event.
        t: ``[M]`` float64 event time.
        edge_feat: ``[M, edge_dim]`` float32 event features.
        nodes: ``[P]`` int64 receiving nodes, one per row of the pending update.
        index: ``[M]`` int64 row of the pending update each message is aggregated into.
        count: ``[P]`` float32 messages aggregated into each row (at least 1).
        node_time: ``[P]`` float64 latest message time of each row's node (its new ``last_update``).
        row: None (compact) or ``[P]`` int64: the row of the pending update holding ``nodes[p]``'s memory.
    """

    node: torch.Tensor
    other: torch.Tensor
    t: torch.Tensor
    edge_feat: torch.Tensor
    nodes: torch.Tensor
    index: torch.Tensor
    count: torch.Tensor
    node_time: torch.Tensor
    row: torch.Tensor | None = None

    def to(self, device: torch.device) -> RawMessages:
        """These messages with every tensor on ``device``."""
        return RawMessages(*(None if x is None else x.to(device) for x in self._tensors()))

    def clone(self) -> RawMessages:
        """A copy that later in-place writes to these tensors (a CUDA graph's replays) leave alone."""
        return RawMessages(*(None if x is None else x.clone() for x in self._tensors()))

    def _tensors(self) -> list[torch.Tensor | None]:
        return [getattr(self, f.name) for f in fields(self)]


@dataclass(frozen=True)
class MemoryState:
    """A copy of a ``Memory``'s state (``Memory.backup()``), restorable with ``Memory.restore()``."""

    state: torch.Tensor
    last_update: torch.Tensor
    pending: RawMessages | None


@dataclass(frozen=True)
class _Applied:
    """A ``Memory.pending_update()`` result, the messages it applied, and whether autocast was on
    (a bfloat16 result is not reused for a float32 forward pass, nor the other way)."""

    pending: RawMessages
    value: torch.Tensor
    autocast: bool


def collect_messages(
    src: torch.Tensor,
    dst: torch.Tensor,
    t: torch.Tensor,
    edge_feat: torch.Tensor,
    keep_last: bool,
    num_nodes: int,
    per_message: bool,
) -> RawMessages:
    """Both directions' raw messages of events ``src[i] -> dst[i]`` at ``t[i]`` (``[B]`` each,
    ``edge_feat`` ``[B, edge_dim]``, node ids below ``num_nodes``); with ``keep_last`` only each
    node's latest message counts. In the per-message layout or the compact one (see ``RawMessages``)."""
    node = torch.stack([src, dst], dim=1).flatten()
    other = torch.stack([dst, src], dim=1).flatten()
    t = t.repeat_interleave(2)
    edge_feat = edge_feat.repeat_interleave(2, dim=0)
    if per_message:
        return _per_message(node, other, t, edge_feat, keep_last, num_nodes)
    nodes, index = torch.unique(node, sorted=True, return_inverse=True)
    if keep_last:
        # Rank messages by (time, batch position); each node keeps its highest rank.
        order = torch.sort(t, stable=True).indices
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.shape[0], device=order.device)
        best = torch.full_like(nodes, -1).scatter_reduce(0, index, rank, "amax")
        keep = order[best]
        node, other, t, edge_feat = node[keep], other[keep], t[keep], edge_feat[keep]
        index = torch.arange(nodes.shape[0], device=nodes.device)
    count = torch.bincount(index, minlength=nodes.shape[0]).to(torch.float32)
    node_time = torch.zeros(nodes.shape[0], dtype=torch.float64, device=t.device)
    node_time = node_time.scatter_reduce(0, index, t, "amax", include_self=False)
    return RawMessages(node, other, t, edge_feat, nodes, index, count, node_time)


def _per_message(
    node: torch.Tensor,
    other: torch.Tensor,
    t: torch.Tensor,
    edge_feat: torch.Tensor,
    keep_last: bool,
    num_nodes: int,
) -> RawMessages:
    """The per-message layout of ``RawMessages`` from ``[M]`` messages: fixed shapes, no host sync."""
    num = node.shape[0]
    positions = torch.arange(num, device=node.device)
    # Rank messages by (time, batch position); each node's row is that of its highest rank.
    order = torch.sort(t, stable=True).indices
    rank = torch.empty_like(order)
    rank[order] = positions
    best = torch.full((num_nodes,), -1, dtype=torch.int64, device=node.device)
    best = best.scatter_reduce_(0, node, rank, "amax")
    row = order[best[node]]  # [M] the row of each message's node
    if keep_last:
        index, count = positions, torch.ones(num, device=node.device)
    else:
        index = row
        count = torch.zeros(num, device=node.device).index_add_(0, row, torch.ones(num, device=node.device))
        count = count.clamp_(min=1.0)  # rows that are never read: 0 / 1, not 0 / 0
    return RawMessages(node, other, t, edge_feat, node, index, count, t[row], row)


class Memory(nn.Module):
    """Memory ``s_i`` ``[memory_dim]`` and last update time of every node, updated from raw messages.

    For a stored message of node ``i`` about event ``(i, j, t, e)``::

        raw   = [s_i || s_j || phi(t - last_update_i) || e]     2 * memory_dim + time_dim + edge_dim
        m     = raw (identity)  or  MLP(raw) -> memory_dim (mlp)
        m_i   = the latest m (last)  or  the mean of node i's m (mean)
        s_i'  = GRUCell(m_i, s_i)  or  RNNCell(m_i, s_i) (tanh)

    ``s``, ``last_update`` are read when the messages are applied: the memory as of the stored batch.

    Args:
        num_nodes: ``N``, node ids are ``0..N-1``.
        memory_dim: width of ``s_i``.
        edge_dim: width of event features (may be 0).
        time_dim: width of the message's time encoding.
        message: ``"identity"`` or ``"mlp"``.
        aggregator: ``"last"`` or ``"mean"``.
        updater: ``"gru"`` or ``"rnn"``.
        learnable_time: train the message time encoding (the paper) or keep it fixed.

    Buffers: ``state`` ``[N, memory_dim]`` float32 and ``last_update`` ``[N]`` float64 (both start at
    zero, are saved in ``state_dict`` and never carry autograd history). The pending messages are not
    part of ``state_dict``; ``backup()`` includes them. They are stored in the compact layout of
    ``RawMessages`` on CPU and per message on CUDA (no host synchronisation).
    """

    def __init__(
        self,
        num_nodes: int,
        memory_dim: int,
        edge_dim: int,
        time_dim: int,
        message: str = "identity",
        aggregator: str = "last",
        updater: str = "gru",
        learnable_time: bool = True,
    ) -> None:
        super().__init__()
        for name, value, allowed in (
            ("message", message, MESSAGES),
            ("aggregator", aggregator, AGGREGATORS),
            ("updater", updater, UPDATERS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        for name, value in (("num_nodes", num_nodes), ("memory_dim", memory_dim)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if edge_dim < 0:
            raise ValueError(f"edge_dim must be >= 0, got {edge_dim}")
        self.num_nodes = num_nodes
        self.memory_dim = memory_dim
        self.edge_dim = edge_dim
        self.aggregator = aggregator
        self.time_enc = TimeEncoding(time_dim, learnable_time)
        raw_dim = 2 * memory_dim + time_dim + edge_dim
        if message == "mlp":
            self.message_fn: nn.Module = nn.Sequential(
                nn.Linear(raw_dim, raw_dim // 2), nn.ReLU(), nn.Linear(raw_dim // 2, memory_dim)
            )
            message_dim = memory_dim
        else:
            self.message_fn = nn.Identity()
            message_dim = raw_dim
        cell = nn.GRUCell if updater == "gru" else nn.RNNCell
        self.updater = cell(message_dim, memory_dim)
        self.register_buffer("state", torch.zeros(num_nodes, memory_dim))
        self.register_buffer("last_update", torch.zeros(num_nodes, dtype=torch.float64))
        # slot[i] = the row of the pending update holding node i's memory, -1 without pending messages.
        self.register_buffer("slot", torch.full((num_nodes,), -1, dtype=torch.int64), persistent=False)
        self.pending: RawMessages | None = None
        # The last pending_update() result, which update() stores.
        self._applied: _Applied | None = None
        self._sharing = False

    def pending_update(self) -> torch.Tensor | None:
        """The memory of the nodes with pending messages after applying them (with autograd, not
        stored): ``[P, memory_dim]`` float32 rows aligned with ``pending.nodes``; None when none.

        Within ``sharing_update()``, calls after the first return the first call's tensor."""
        pending = self.pending
        if pending is None:
            return None
        applied = self._applied
        autocast = torch.is_autocast_enabled(self.state.device.type)
        if self._sharing and applied is not None and applied.pending is pending:
            if applied.value.requires_grad == torch.is_grad_enabled() and applied.autocast == autocast:
                return applied.value
            # under another grad or autocast mode: the shared one is kept
            return self._apply_messages(pending)
        value = self._apply_messages(pending)
        self._applied = _Applied(pending, value, autocast)
        return value

    @contextlib.contextmanager
    def sharing_update(self, keep: bool = False) -> Iterator[None]:
        """Forward passes in this scope share one ``pending_update()`` (one computation and one
        backward pass; their gradients sum as if each had its own): for several forward passes of
        one training step, between which the messages, memory and parameters do not change.

        With ``keep``, a result computed without autograd in an earlier scope is shared too, until
        the pending messages or the memory change: for a caller whose parameters never change (a
        predictor, whose queries would otherwise each recompute the same update)."""
        applied = self._applied
        if not keep or (applied is not None and applied.value.requires_grad):
            self._applied = None  # computed before the scope: its graph may be freed by a backward pass
        self._sharing = True
        try:
            yield
        finally:
            self._sharing = False

    def _apply_messages(self, pending: RawMessages) -> torch.Tensor:
        raw = torch.cat(
            [
                self.state.index_select(0, pending.node),
                self.state.index_select(0, pending.other),
                self.time_enc(pending.t - self.last_update[pending.node]),
                pending.edge_feat,
            ],
            dim=1,
        )
        message = self.message_fn(raw)
        if self.aggregator == "mean":
            total = message.new_zeros(pending.nodes.shape[0], message.shape[1])
            message = total.index_add(0, pending.index, message) / pending.count.unsqueeze(1)
        return self.updater(message, self.state.index_select(0, pending.nodes))

    def read(self, ids: torch.Tensor, updated: torch.Tensor | None) -> torch.Tensor:
        """Memory of nodes ``ids`` ``[...]`` int64 (``-1`` reads row 0) -> ``[..., memory_dim]``.

        Rows of ``updated`` (from ``pending_update()``) for nodes with pending messages, ``state`` otherwise.
        """
        ids = ids.clamp(min=0)
        if updated is None:
            return gather_rows(self.state, ids)
        pos = self.slot[ids]
        if ids.is_cuda:  # one pass, no synchronisation (a nonzero would wait for the GPU)
            stored = gather_rows(self.state, ids)
            return torch.where((pos >= 0).unsqueeze(-1), gather_rows(updated, pos), stored)
        # On CPU only the rows with an update are gathered and written, in place into the gathered
        # stored rows (a tensor of this call, with no gradient), and only their gradients flow back
        # (a where and its backward pass over every row took twice as long).
        flat_pos = pos.flatten()
        rows = (flat_pos >= 0).nonzero().squeeze(1)
        out = self.state.index_select(0, ids.flatten())
        out.index_copy_(0, rows, updated.index_select(0, flat_pos[rows]).to(out.dtype))
        return out.view(*ids.shape, out.shape[1])

    @torch.no_grad()
    def update(self, src: torch.Tensor, dst: torch.Tensor, t: torch.Tensor, edge_feat: torch.Tensor) -> None:
        """Apply the pending messages for good (detached), then store events ``src[i] -> dst[i]``
        (``[B]`` int64) at ``t[i]`` (``[B]``, converted to float64) with features ``edge_feat``
        ``[B, edge_dim]`` float32 as the next pending messages.

        The applied memory is the one the last forward pass computed, before the optimizer step, as in
        TGN's code; without a forward pass since the messages were stored, it is computed now."""
        batch = src.shape[0]
        if dst.shape != (batch,) or t.shape != (batch,) or edge_feat.shape != (batch, self.edge_dim):
            raise ValueError(
                f"src, dst, t must have shape [B] and edge_feat [B, {self.edge_dim}]; got src "
                f"{tuple(src.shape)}, dst {tuple(dst.shape)}, t {tuple(t.shape)}, "
                f"edge_feat {tuple(edge_feat.shape)}"
            )
        if self.pending is not None:
            nodes = self.pending.nodes
            applied = self._applied
            fresh = applied is None or applied.pending is not self.pending
            value = self._apply_messages(self.pending) if fresh else applied.value.detach()
            if self.pending.row is not None:  # per message: each node's rows take its one row
                value = value.index_select(0, self.pending.row)
            self.state[nodes] = value.to(self.state.dtype)  # (bf16 autocast: the updater gives bfloat16)
            self._applied = None
            self.last_update[nodes] = self.pending.node_time
            self.slot.index_fill_(0, nodes, -1)  # (slot[nodes] = -1 would copy the -1 from the host)
            self.pending = None
        if batch > 0:
            self.pending = collect_messages(
                src,
                dst,
                t.to(torch.float64),
                edge_feat.detach().float(),
                self.aggregator == "last",
                self.num_nodes,
                per_message=src.is_cuda,
            )
            self._index_pending()

    def _index_pending(self) -> None:
        """Point ``slot`` of the pending nodes at their rows (all other slots are -1)."""
        pending = self.pending
        if pending is not None:
            nodes = pending.nodes
            rows = torch.arange(nodes.shape[0], device=nodes.device) if pending.row is None else pending.row
            self.slot[nodes] = rows

    def reset(self) -> None:
        """Zero memory and last-update times; drop pending messages."""
        self._applied = None
        self.state.zero_()
        self.last_update.zero_()
        self.slot.fill_(-1)
        self.pending = None

    def discard_pending(self) -> None:
        """Drop the pending messages without applying them."""
        self._applied = None
        if self.pending is not None:
            self.slot.index_fill_(0, self.pending.nodes, -1)
        self.pending = None

    def grow(self, num_nodes: int) -> None:
        """Rows for nodes ``num_nodes..``: zero memory and last-update time (new nodes start empty)."""
        extra = num_nodes - self.num_nodes
        self.state = torch.cat([self.state, self.state.new_zeros(extra, self.memory_dim)])
        self.last_update = torch.cat([self.last_update, self.last_update.new_zeros(extra)])
        self.slot = torch.cat([self.slot, self.slot.new_full((extra,), -1)])
        self.num_nodes = num_nodes

    def backup(self) -> MemoryState:
        """A copy of memory, last-update times and pending messages."""
        pending = None if self.pending is None else self.pending.clone()
        return MemoryState(self.state.clone(), self.last_update.clone(), pending)

    def keep_pending_in(self, buffers: RawMessages) -> None:
        """Copy the pending messages into ``buffers`` (tensors of the same shapes) and keep them there,
        at fixed addresses: a CUDA graph reads the pending messages where it read them when captured
        (and writes the next ones there). To be called before a forward pass: the update an earlier
        forward pass computed is dropped (``update()`` would recompute it)."""
        self._applied = None
        pending = self.pending
        if pending is buffers:
            return
        if pending is None:
            raise ValueError("no pending messages to keep")
        for target, source in zip(buffers._tensors(), pending._tensors(), strict=True):
            if (target is None) != (source is None) or (target is not None and target.shape != source.shape):
                raise ValueError("the pending messages do not have the buffers' layout and shapes")
            if target is not None:
                target.copy_(source)
        self.pending = buffers

    def restore(self, backup: MemoryState) -> None:
        """Return to ``backup`` (which may live on another device, e.g. loaded with map_location)."""
        self._applied = None
        self.state.copy_(backup.state)
        self.last_update.copy_(backup.last_update)
        self.slot.fill_(-1)
        pending = backup.pending
        self.pending = None if pending is None else pending.to(self.state.device)
        self._index_pending()
