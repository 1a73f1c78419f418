"""TemporalGraph: a stream of timestamped events and its time-sorted CSR (T-CSR)."""

from __future__ import annotations

import numpy as np
import torch

from dgl_tgnn import ops

ArrayLike = np.ndarray | torch.Tensor


def _as_tensor(x: object, name: str, expected: str) -> torch.Tensor:
    """``x`` (torch tensor, numpy array or sequence) as a 1-D tensor, without copying when possible."""
    if not isinstance(x, torch.Tensor):
        array = np.asarray(x)
        if array.dtype.kind not in "biuf":
            raise ValueError(f"{name}: wrong dtype {array.dtype}, expected {expected}")
        if not (array.flags.writeable and array.dtype.isnative):
            array = array.astype(array.dtype.newbyteorder("="))
        x = torch.from_numpy(array)
    if x.dim() != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {tuple(x.shape)}")
    return x


def as_ids(x: object, name: str) -> torch.Tensor:
    """Node ids as a 1-D contiguous int64 tensor on ``x``'s device; ValueError on a non-integer dtype."""
    x = _as_tensor(x, name, "an integer type")
    if x.dtype == torch.bool or x.is_floating_point() or x.is_complex():
        raise ValueError(f"{name}: wrong dtype {x.dtype}, expected an integer type")
    return x.to(torch.int64).contiguous()


def as_times(x: object, name: str) -> torch.Tensor:
    """Times as a 1-D contiguous float64 tensor on ``x``'s device; ValueError on a non-real dtype."""
    x = _as_tensor(x, name, "a float or integer type")
    if x.dtype == torch.bool or x.is_complex():
        raise ValueError(f"{name}: wrong dtype {x.dtype}, expected a float or integer type")
    return x.to(torch.float64).contiguous()


class _Growable:
    """A tensor growing along dim 0 with doubling capacity, so appends cost amortised O(rows)."""

    def __init__(self, data: torch.Tensor) -> None:
        self._data = data
        self._size = int(data.shape[0])

    def extend(self, rows: torch.Tensor) -> None:
        need = self._size + int(rows.shape[0])
        if need > self._data.shape[0]:
            grown = self._data.new_empty((max(need, 2 * int(self._data.shape[0])), *self._data.shape[1:]))
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size : need] = rows
        self._size = need

    def view(self) -> torch.Tensor:
        return self._data[: self._size]


class TemporalGraph:
    """Timestamped events ``(src[i], dst[i], t[i])`` with event id ``i``, and their T-CSR.

    The T-CSR lists, for every node, its incident events sorted by (time, event id); the sampler
    binary-searches it. It is built in C++ (a counting pass and a parallel sort of each row that is
    out of time order: O(E log d)), and lives on the CPU; a packed copy is made per device on demand.

    Args:
        src, dst: ``[E]`` integer node ids in ``[0, num_nodes)``, numpy or torch, any device.
        t: ``[E]`` event times (float or integer, finite), in any order; kept as float64, so unix
            seconds are exact.
        edge_feat: optional ``[E, ...]`` features of the events (kept as given, on the CPU).
        num_nodes: number of nodes; default ``max(src, dst) + 1``.
        undirected: if True (the TGAT/TGN convention) an event is a past neighbour of both of its
            endpoints (a self-loop once); if False only ``dst`` is a neighbour of ``src``.

    Raises:
        ValueError: naming the argument and the offending value (id out of range, non-finite time,
            length mismatch, wrong dtype or shape).
    """

    def __init__(
        self,
        src: ArrayLike,
        dst: ArrayLike,
        t: ArrayLike,
        edge_feat: ArrayLike | None = None,
        num_nodes: int | None = None,
        undirected: bool = True,
    ) -> None:
        src, dst, t = self._events(src, dst, t)
        if num_nodes is None:
            num_nodes = int(torch.maximum(src.max(), dst.max())) + 1 if src.numel() else 0
        elif isinstance(num_nodes, bool) or not isinstance(num_nodes, int | np.integer) or num_nodes < 0:
            raise ValueError(f"num_nodes: expected a non-negative int, got {num_nodes!r}")
        if not isinstance(undirected, bool):
            raise ValueError(f"undirected: expected a bool, got {undirected!r}")
        # tcsr_build and tcsr_append validate the events (ValueError naming the first bad one).
        self._tcsr = ops.tcsr_build(src, dst, t, int(num_nodes), undirected)
        self._num_nodes, self._undirected = int(num_nodes), undirected  # fixed: read without a call into C++
        self._src, self._dst, self._t = _Growable(src.clone()), _Growable(dst.clone()), _Growable(t.clone())
        self._edge_feat = None
        if edge_feat is not None:
            self._edge_feat = _Growable(self._features(edge_feat, int(src.shape[0]), None).clone())
        self._version = 0  # bumped by append(); invalidates the per-device packed copies
        self._packed: dict[torch.device, tuple[int, tuple[torch.Tensor, ...]]] = {}

    @staticmethod
    def _events(src: ArrayLike, dst: ArrayLike, t: ArrayLike) -> tuple[torch.Tensor, ...]:
        src, dst, t = as_ids(src, "src").cpu(), as_ids(dst, "dst").cpu(), as_times(t, "t").cpu()
        if not src.shape[0] == dst.shape[0] == t.shape[0]:
            raise ValueError(f"src, dst, t: length mismatch {src.shape[0]}, {dst.shape[0]}, {t.shape[0]}")
        return src, dst, t

    @staticmethod
    def _features(feat: ArrayLike, num_events: int, like: torch.Tensor | None) -> torch.Tensor:
        feat = feat if isinstance(feat, torch.Tensor) else torch.from_numpy(np.asarray(feat))
        feat = feat.cpu()
        if feat.dim() == 0 or feat.shape[0] != num_events:
            raise ValueError(
                f"edge_feat: expected {num_events} rows (one per event), got shape {tuple(feat.shape)}"
            )
        if like is not None and (feat.shape[1:] != like.shape[1:] or feat.dtype != like.dtype):
            raise ValueError(
                f"edge_feat: expected rows of shape {tuple(like.shape[1:])} and dtype {like.dtype}, "
                f"got shape {tuple(feat.shape)} and dtype {feat.dtype}"
            )
        return feat

    @property
    def num_nodes(self) -> int:
        return self._num_nodes

    @property
    def num_events(self) -> int:
        return int(self._src.view().shape[0])

    @property
    def undirected(self) -> bool:
        return self._undirected

    @property
    def max_time(self) -> float:
        """Time of the latest event (``-inf`` when there is none)."""
        return float(self._tcsr.max_time())

    @property
    def src(self) -> torch.Tensor:
        """``[E]`` int64 source ids by event id (a CPU view: do not modify)."""
        return self._src.view()

    @property
    def dst(self) -> torch.Tensor:
        """``[E]`` int64 destination ids by event id (a CPU view: do not modify)."""
        return self._dst.view()

    @property
    def t(self) -> torch.Tensor:
        """``[E]`` float64 event times by event id (a CPU view: do not modify)."""
        return self._t.view()

    @property
    def edge_feat(self) -> torch.Tensor | None:
        """``[E, ...]`` event features by event id (a CPU view: do not modify), or None."""
        return None if self._edge_feat is None else self._edge_feat.view()

    def append(
        self, src: ArrayLike, dst: ArrayLike, t: ArrayLike, edge_feat: ArrayLike | None = None
    ) -> None:
        """Adds newer events; their ids continue from ``num_events`` in input order.

        Every ``t`` must be ``>= max_time`` (any order among themselves) and ids must be in
        ``[0, num_nodes)``. ``edge_feat`` (``[n, ...]``) is required exactly when the graph has
        features. Cost: amortised O(n) (new entries go into per-row slack; see csrc/core/tcsr.h),
        never a rebuild. Packed device copies are refreshed on their next use.
        """
        src, dst, t = self._events(src, dst, t)
        feat = None
        if (edge_feat is None) != (self._edge_feat is None):
            have = "has" if self._edge_feat is not None else "has no"
            raise ValueError(f"edge_feat: the graph {have} edge features, got {type(edge_feat).__name__}")
        if edge_feat is not None:
            feat = self._features(edge_feat, int(src.shape[0]), self._edge_feat.view())
        ops.tcsr_append(self._tcsr, src, dst, t)  # before the copies below: a refused append changes nothing
        self._src.extend(src)
        self._dst.extend(dst)
        self._t.extend(t)
        if feat is not None:
            self._edge_feat.extend(feat)
        self._version += 1

    def packed_csr(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, ...]:
        """Packed T-CSR on ``device``: ``indptr [N + 1]`` int64 and ``nbr``, ``eid`` int64, ``ts``
        float64 ``[M]``; node ``v``'s events, sorted by (time, eid), are ``indptr[v]:indptr[v + 1]``.
        Cached per device until the next append()."""
        device = torch.device(device)
        cached = self._packed.get(device)
        if cached is None or cached[0] != self._version:
            arrays = tuple(x.to(device) for x in ops.tcsr_pack(self._tcsr))
            self._packed[device] = cached = (self._version, arrays)
        return cached[1]

    def __getstate__(self) -> dict:
        """Pickles the events only (compact copies); unpickling rebuilds the T-CSR."""
        feat = None if self._edge_feat is None else self.edge_feat.clone()
        return dict(
            src=self.src.clone(),
            dst=self.dst.clone(),
            t=self.t.clone(),
            edge_feat=feat,
            num_nodes=self.num_nodes,
            undirected=self.undirected,
        )

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def __repr__(self) -> str:
        kind = "undirected" if self.undirected else "directed"
        return f"TemporalGraph(num_nodes={self.num_nodes}, num_events={self.num_events}, {kind})"

    @classmethod
    def from_dgl(cls, g: object, time: str = "timestamp", **kwargs: object) -> TemporalGraph:
        """The events of a DGL graph with a time edge field (DGL's node ids; edge ids become event ids);
        ``edge_feat=`` names a feature field, ``undirected=`` as above. See dgl_tgnn.data.convert."""
        from dgl_tgnn.data.convert import graph_from_dgl

        return graph_from_dgl(cls, g, time=time, **kwargs)
