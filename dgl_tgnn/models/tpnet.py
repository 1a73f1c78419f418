"""TPNet (Lu et al., NeurIPS 2024): time-decayed temporal walk matrices kept as random projections,
updated as events arrive, and a pair encoder (MLP-Mixer over both endpoints' recent neighbours, each
related to the pair through the projections). It scores pairs itself (``ModelSpec.pairs``)."""

from __future__ import annotations

from dgl_tgnn.config import ModelConfig
from dgl_tgnn.models import ModelSpec
from dgl_tgnn.nn.tpnet import TPNet
from dgl_tgnn.registry import MODELS


def encoder(c: ModelConfig, num_nodes: int, node_dim: int, edge_dim: int) -> TPNet:
    return TPNet(
        num_nodes,
        node_dim,
        edge_dim,
        channels=c.embed_dim,
        time_dim=c.time_dim,
        neighbours=c.fanouts[0],
        mixer_layers=c.mixer_layers,
        dropout=c.dropout,
        walk_length=c.walk_length,
        walk_dim=c.walk_dim,
        decay=c.walk_decay,
        learnable_time=c.time_encoding == "learnable",
    )


MODELS.register("tpnet", "TPNet, temporal walk matrices by random projection and a pair encoder")(
    # The paper's code (lxd99/TPNet) on Wikipedia: 20 most recent neighbours, 2 MLP-Mixer layers of
    # 172 channels (the node feature width), learnable time encoding 100, dropout 0.1, walks up to
    # K = 3 with lambda 1e-6 per second and 10 * int(ln(2 E)) = 120 random features (drawn anew each
    # training epoch), Adam at 1e-4, batches of 200; ranked under TGB's protocol.
    ModelSpec(
        {
            "model": {
                "num_layers": 1,
                "fanouts": [20],
                "strategy": "recent",
                "embed_dim": 172,
                "time_dim": 100,
                "time_encoding": "learnable",
                "dropout": 0.1,
                "walk_length": 3,
                "walk_decay": 1e-6,
                "walk_dim": 120,
                "mixer_layers": 2,
            },
            "train": {"lr": 1e-4, "batch_size": 200},
            "eval": {"protocol": "tgb", "metric": "mrr"},
        },
        encoder,
        stateful=True,
        pairs=True,
        one_hop=True,
    )
)
