"""The user's node ids (integers or strings, as loaded) and the predictor's internal node rows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

IdArray = np.ndarray | torch.Tensor | Sequence[int] | Sequence[str]


class NodeIds:
    """Maps original node ids to rows ``0..num_rows-1`` and back; grows as unknown ids arrive.

    Args:
        values: ``[N]`` the original id of each row (int64 or str, distinct), or None when the ids
            are the rows themselves (``num_rows`` of them).
        num_rows: ``N`` (used when ``values`` is None).
    """

    def __init__(self, values: np.ndarray | None, num_rows: int) -> None:
        if values is not None and len(np.unique(values)) != len(values):
            raise ValueError("node ids must be distinct")
        self.values = values
        self.num_rows = num_rows if values is None else len(values)
        self._index()

    @classmethod
    def of_run(cls, node_ids: np.ndarray | None, num_rows: int) -> NodeIds:
        """The ids of a run: its ``node_ids.npy`` when they are distinct, else the rows.

        Bipartite built-in datasets number users and items in separate id spaces (the same id may be
        a user and an item): there the predictor speaks rows (users first, then items), as TGN's code.
        """
        if node_ids is None or len(np.unique(node_ids)) != len(node_ids):
            return cls(None, num_rows)
        return cls(np.asarray(node_ids), num_rows)

    @property
    def is_string(self) -> bool:
        return self.values is not None and self.values.dtype.kind in "US"

    def _index(self) -> None:
        if self.values is not None:
            self._order = np.argsort(self.values, kind="stable")
            self._sorted = self.values[self._order]

    def parse(self, text: str) -> int | str:
        """One id as read from a file: the text itself for string ids, else an int (ValueError)."""
        return text if self.is_string else int(text)

    def _as_array(self, ids: IdArray, what: str) -> np.ndarray:
        """``ids`` as a 1-D numpy array of the ids' kind (int64 or str)."""
        array = ids.cpu().numpy() if isinstance(ids, torch.Tensor) else np.asarray(ids)
        array = array.reshape(-1)
        if self.is_string:
            return array.astype(str)
        if array.size and array.dtype.kind not in "iu":
            raise ValueError(f"{what}: integer node ids expected, got {array.dtype} values")
        return array.astype(np.int64)

    def find(self, array: np.ndarray) -> np.ndarray:
        """Rows of ``array`` (int64), ``-1`` where unknown."""
        if self.values is None:
            return np.where((array >= 0) & (array < self.num_rows), array, -1)
        if len(self._sorted) == 0:
            return np.full(array.shape, -1, dtype=np.int64)
        pos = np.searchsorted(self._sorted, array).clip(max=len(self._sorted) - 1)
        return np.where(self._sorted[pos] == array, self._order[pos], -1).astype(np.int64)

    def rows(self, ids: IdArray, what: str) -> torch.Tensor:
        """``[n]`` int64 rows of ``ids``; a one-line ValueError naming the first unknown id."""
        array = self._as_array(ids, what)
        rows = self.find(array)
        if (rows < 0).any():
            unknown = array[np.flatnonzero(rows < 0)[0]].item()
            known = f"node ids must be in [0, {self.num_rows})" if self.values is None else "not in the run"
            raise ValueError(f"{what}: unknown node id {unknown!r} ({known})")
        return torch.from_numpy(rows)

    def add(self, ids: IdArray, what: str) -> torch.Tensor:
        """``[n]`` int64 rows of ``ids``, unknown ids taking new rows ``num_rows..`` in order of first
        appearance."""
        array = self._as_array(ids, what)
        rows = self.find(array)
        new = rows < 0
        if new.any():
            fresh, first = np.unique(array[new], return_index=True)
            fresh = fresh[np.argsort(first)]
            if self.values is None:
                self.values = np.arange(self.num_rows, dtype=np.int64)
            fresh = fresh if self.is_string else fresh.astype(np.int64)
            self.values = np.concatenate([self.values, fresh])
            self.num_rows = len(self.values)
            self._index()
            rows = self.find(array)
        return torch.from_numpy(rows)

    def ids(self, rows: torch.Tensor) -> torch.Tensor | np.ndarray:
        """The ids of ``rows`` (any shape; ``-1`` gives ``-1``, or ``""`` for string ids): an int64
        tensor for integer ids, a numpy str array for string ids."""
        if self.values is None:
            return rows.to(torch.int64)
        r = rows.cpu().numpy()
        padded = np.concatenate([self.values, np.array(["" if self.is_string else -1], self.values.dtype)])
        out = padded[np.where(r >= 0, r, len(self.values))]
        return out if self.is_string else torch.from_numpy(out.astype(np.int64))

    def state(self) -> dict[str, object]:
        """A plain form for ``LinkPredictor.save`` (ids as a list or None)."""
        return {"values": None if self.values is None else self.values.tolist(), "num_rows": self.num_rows}

    @classmethod
    def from_state(cls, state: dict[str, object]) -> NodeIds:
        values = state["values"]
        return cls(None if values is None else np.asarray(values), int(state["num_rows"]))
