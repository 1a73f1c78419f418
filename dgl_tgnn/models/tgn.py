"""TGN (Rossi et al. 2020): a memory per node, updated by each batch's events, under an attention layer."""

from __future__ import annotations

from dgl_tgnn.config import ModelConfig
from dgl_tgnn.models import ModelSpec
from dgl_tgnn.nn import TGN
from dgl_tgnn.registry import MODELS


def encoder(c: ModelConfig, num_nodes: int, node_dim: int, edge_dim: int) -> TGN:
    return TGN(
        num_nodes,
        node_dim,
        edge_dim,
        memory_dim=c.memory_dim,
        time_dim=c.time_dim,
        embed_dim=c.embed_dim,
        num_layers=c.num_layers,
        num_heads=c.num_heads,
        dropout=c.dropout,
        message=c.message,
        aggregator=c.aggregator,
        updater=c.updater,
        engine=c.engine,
        learnable_time=c.time_encoding == "learnable",
    )


MODELS.register("tgn", "TGN, temporal attention over a memory per node")(
    # TGN-attn: memory 100 (GRU, identity messages, last aggregator), 1 layer, 10 recent neighbours.
    ModelSpec(
        {"model": {"num_layers": 1, "fanouts": [10], "strategy": "recent", "memory_dim": 100}},
        encoder,
        stateful=True,
    )
)
