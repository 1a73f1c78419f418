"""GraphMixer (Cong et al., ICLR 2023): an MLP-mixer over each node's most recent links and the mean of
its neighbours' features (``dgl_tgnn/nn/graphmixer.py``)."""

from __future__ import annotations

from dgl_tgnn.config import ModelConfig
from dgl_tgnn.models import ModelSpec
from dgl_tgnn.nn.graphmixer import GraphMixer
from dgl_tgnn.registry import MODELS

MIXER_LAYERS = 2  # mixer blocks (DyGLib's GraphMixer; the authors' code defaults to 1)


def encoder(c: ModelConfig, num_nodes: int, node_dim: int, edge_dim: int) -> GraphMixer:
    if c.time_encoding != "fixed":
        raise ValueError(
            "graphmixer's time encoding is fixed (the paper's): model.time_encoding must be fixed "
            "(--time-encoding fixed)"
        )
    return GraphMixer(
        node_dim,
        edge_dim,
        c.time_dim,
        c.embed_dim,
        num_tokens=c.fanouts[0],
        num_layers=MIXER_LAYERS,
        dropout=c.dropout,
    )


MODELS.register("graphmixer", "GraphMixer, an MLP-mixer over each node's most recent links")(
    # The K = 20 most recent links of each node (tokens), 2 mixer blocks, fixed time encoding; a
    # learnable vector per node (the authors' code gives every node one-hot features).
    ModelSpec(
        {"model": {"num_layers": 1, "fanouts": [20], "strategy": "recent", "node_embedding": 100}},
        encoder,
        one_hop=True,
    )
)
