"""TGN's per-node memory: raw message store, message function, aggregator and updater."""

from __future__ import annotations

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
    is kept (ties in time: the later one in batch order, ``dst``'s after ``src``'s).

    Attributes:
        node: ``[M]`` int64 node that receives each message.
        other: ``[M]`` int64 the other endpoint of the message's event.
        t: ``[M]`` float64 event time.
        edge_feat: ``[M, edge_dim]`` float32 event features.
        nodes: ``[P]`` int64 distinct receiving nodes, sorted.
        index: ``[M]`` int64 position of ``node`` in ``nodes``.
        count: ``[P]`` float32 messages per node.
        node_time: ``[P]`` float64 latest message time per node (its new ``last_update``).
    """

    node: torch.Tensor
    other: torch.Tensor
    t: torch.Tensor
    edge_feat: torch.Tensor
    nodes: torch.Tensor
    index: torch.Tensor
    count: torch.Tensor
    node_time: torch.Tensor


@dataclass(frozen=True)
class MemoryState:
    """A copy of a ``Memory``'s state (``Memory.backup()``), restorable with ``Memory.restore()``."""

    state: torch.Tensor
    last_update: torch.Tensor
    pending: RawMessages | None


@dataclass(frozen=True)
class _Applied:
    """A ``Memory.pending_update()`` result and the messages it applied."""

    pending: RawMessages
    value: torch.Tensor


def collect_messages(
    src: torch.Tensor, dst: torch.Tensor, t: torch.Tensor, edge_feat: torch.Tensor, keep_last: bool
) -> RawMessages:
    """Both directions' raw messages of events ``src[i] -> dst[i]`` at ``t[i]`` (``[B]`` each,
    ``edge_feat`` ``[B, edge_dim]``); with ``keep_last`` only each node's latest message."""
    node = torch.stack([src, dst], dim=1).flatten()
    other = torch.stack([dst, src], dim=1).flatten()
    t = t.repeat_interleave(2)
    edge_feat = edge_feat.repeat_interleave(2, dim=0)
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
    part of ``state_dict``; ``backup()`` includes them.
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
        # slot[i] = position of node i in pending.nodes, -1 when it has no pending message.
        self.register_buffer("slot", torch.full((num_nodes,), -1, dtype=torch.int64), persistent=False)
        self.pending: RawMessages | None = None
        # The last pending_update() result, which update() stores.
        self._applied: _Applied | None = None

    def pending_update(self) -> torch.Tensor | None:
        """The memory of the nodes with pending messages after applying them (with autograd, not
        stored): ``[P, memory_dim]`` float32 rows aligned with ``pending.nodes``; None when none."""
        pending = self.pending
        if pending is None:
            return None
        value = self._apply_messages(pending)
        self._applied = _Applied(pending, value)
        return value

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
        out.index_copy_(0, rows, updated.index_select(0, flat_pos[rows]))
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
            self.state[nodes] = self._apply_messages(self.pending) if fresh else applied.value.detach()
            self._applied = None
            self.last_update[nodes] = self.pending.node_time
            self.slot[nodes] = -1
            self.pending = None
        if batch > 0:
            self.pending = collect_messages(
                src, dst, t.to(torch.float64), edge_feat.detach().float(), self.aggregator == "last"
            )
            self._index_pending()

    def _index_pending(self) -> None:
        """Point ``slot`` of the pending nodes at their rows (all other slots are -1)."""
        if self.pending is not None:
            nodes = self.pending.nodes
            self.slot[nodes] = torch.arange(nodes.shape[0], device=nodes.device)

    def reset(self) -> None:
        """Zero memory and last-update times; drop pending messages."""
        self._applied = None
        self.state.zero_()
        self.last_update.zero_()
        self.slot.fill_(-1)
        self.pending = None

    def backup(self) -> MemoryState:
        """A copy of memory, last-update times and pending messages (these are never modified in place)."""
        return MemoryState(self.state.clone(), self.last_update.clone(), self.pending)

    def restore(self, backup: MemoryState) -> None:
        """Return to ``backup`` (which may live on another device, e.g. loaded with map_location)."""
        self._applied = None
        self.state.copy_(backup.state)
        self.last_update.copy_(backup.last_update)
        self.slot.fill_(-1)
        pending = backup.pending
        if pending is not None and pending.node.device != self.state.device:
            pending = RawMessages(*(getattr(pending, f.name).to(self.state.device) for f in fields(pending)))
        self.pending = pending
        self._index_pending()
