"""Temporal GNN modules: time encoding, temporal attention (DGL and dense engines), TGAT, TGN, decoders."""

from dgl_tgnn.nn.attention import TemporalAttention
from dgl_tgnn.nn.decoders import DotDecoder, DotHead, MLPDecoder, PairScorer
from dgl_tgnn.nn.memory import Memory, MemoryState
from dgl_tgnn.nn.tgat import TGAT
from dgl_tgnn.nn.tgn import TGN
from dgl_tgnn.nn.time_encoding import TimeEncoding

__all__ = [
    "TGAT",
    "TGN",
    "DotDecoder",
    "DotHead",
    "MLPDecoder",
    "Memory",
    "MemoryState",
    "PairScorer",
    "TemporalAttention",
    "TimeEncoding",
]
