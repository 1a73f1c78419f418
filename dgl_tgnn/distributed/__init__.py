"""Building blocks for data-parallel training on ``torch.distributed`` (issue 21), which
``dgl_tgnn/training/parallel.py`` puts together.

- ``sharded_topk``: the exact global ``topk_dot`` over a candidate table split by rows across ranks.
- ``gather_events``: every rank's events of a step, merged in ``(t, eid)`` order, so that each
  replica's ``TGN.update`` with them gives the memory one process gets from the whole window.
"""

from dgl_tgnn.distributed.collectives import all_gather_rows
from dgl_tgnn.distributed.events import gather_events
from dgl_tgnn.distributed.topk import sharded_topk

__all__ = ["all_gather_rows", "gather_events", "sharded_topk"]
