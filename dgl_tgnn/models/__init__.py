"""The models of ``model.name``: one module each, registering a :class:`ModelSpec` in
:data:`~dgl_tgnn.registry.MODELS`. Importing this package imports every module in it."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from dgl_tgnn.config import ModelConfig

EncoderBuilder = Callable[[ModelConfig, int, int, int], nn.Module]
"""``build(options, num_nodes, node_dim, edge_dim)``: the encoder of a ``LinkModel``."""


@dataclass(frozen=True)
class ModelSpec:
    """What a model registers.

    Attributes:
        defaults: its paper settings, as a config file's sections would give them
            (``{"model": {"num_layers": 1, ...}}``), over the dataclasses' defaults.
        encoder: builds the module that embeds roots from hop blocks (``forward(blocks,
            node_feat [N, node_dim], edge_feat [E, edge_dim]) -> [R0, embed_dim]``; with state
            carried between batches it is a :class:`~dgl_tgnn.link.StatefulEncoder`). None for a
            model without parameters (EdgeBank, fitted by ``train.fit_edgebank``).
        stateful: True when the encoder is a :class:`~dgl_tgnn.link.StatefulEncoder`.
        pairs: True when the encoder scores (source, candidate) pairs itself (a
            :class:`~dgl_tgnn.link.PairEncoder`: TPNet, DyGFormer) instead of a decoder scoring the
            embeddings of single roots; its ``forward`` still gives node-level embeddings (what hard
            negatives are drawn by). Such a model is ranked under TGB's protocol.
        one_hop: True when the encoder reads one hop block of recent events only
            (``model.num_layers`` must be 1; ``RunConfig.validate`` says so).
    """

    defaults: dict[str, dict[str, Any]]
    encoder: EncoderBuilder | None = None
    stateful: bool = False
    pairs: bool = False
    one_hop: bool = False


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
