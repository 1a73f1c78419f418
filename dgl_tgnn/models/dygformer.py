"""DyGFormer (Yu et al., NeurIPS 2023): a Transformer over the patched recent interactions of both
endpoints of a link, with their neighbour co-occurrence encoding (``dgl_tgnn/nn/dygformer.py``). It
scores pairs itself (``ModelSpec.pairs``) and keeps no state between batches."""

from __future__ import annotations

from dgl_tgnn.config import ModelConfig
from dgl_tgnn.models import ModelSpec
from dgl_tgnn.nn.dygformer import DyGFormer
from dgl_tgnn.registry import MODELS

CHANNELS = 50  # channels per feature group of a patch (DyGLib's channel_embedding_dim)
COOC_DIM = 50  # width of the co-occurrence MLP (DyGLib's neighbor_co_occurrence_feat_dim)
LAYERS = 2  # Transformer encoder layers (the paper's, on every dataset)


def encoder(c: ModelConfig, num_nodes: int, node_dim: int, edge_dim: int) -> DyGFormer:
    return DyGFormer(
        node_dim,
        edge_dim,
        time_dim=c.time_dim,
        neighbours=c.fanouts[0],
        patch_size=c.patch_size,
        channels=CHANNELS,
        cooc_dim=COOC_DIM,
        layers=LAYERS,
        heads=c.num_heads,
        dropout=c.dropout,
        out_dim=c.embed_dim,
        learnable_time=c.time_encoding == "learnable",
    )


MODELS.register("dygformer", "DyGFormer, a Transformer over both endpoints' recent interactions")(
    # DyGLib on Wikipedia: sequences of 32 tokens (the node itself and its 31 most recent
    # interactions), patches of 1, 2 layers of 2 heads over 4 x 50 channels, time encoding 100,
    # dropout 0.1, output 172 (the feature width), learnable time encoding, Adam at 1e-4, batches of
    # 200; ranked under TGB's protocol.
    ModelSpec(
        {
            "model": {
                "num_layers": 1,
                "fanouts": [31],
                "strategy": "recent",
                "embed_dim": 172,
                "time_dim": 100,
                "num_heads": 2,
                "dropout": 0.1,
                "patch_size": 1,
                "time_encoding": "learnable",
            },
            "train": {"lr": 1e-4, "batch_size": 200},
            "eval": {"protocol": "tgb", "metric": "mrr"},
        },
        encoder,
        pairs=True,
        one_hop=True,
    )
)
