"""TGAT (Xu et al., ICLR 2020): temporal attention over uniformly sampled neighbours."""

from __future__ import annotations

from dgl_tgnn.config import ModelConfig
from dgl_tgnn.models import ModelSpec
from dgl_tgnn.nn import TGAT
from dgl_tgnn.registry import MODELS


def encoder(c: ModelConfig, num_nodes: int, node_dim: int, edge_dim: int) -> TGAT:
    return TGAT(
        node_dim,
        edge_dim,
        c.time_dim,
        c.embed_dim,
        c.num_layers,
        c.num_heads,
        c.dropout,
        c.engine,
        c.time_encoding == "learnable",
    )


MODELS.register("tgat", "TGAT, temporal attention over sampled neighbours")(
    # 2 attention layers of 2 heads, 10 uniformly sampled neighbours per hop.
    ModelSpec({"model": {"num_layers": 2, "fanouts": [10, 10], "strategy": "uniform"}}, encoder)
)
