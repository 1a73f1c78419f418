"""dgl-tgnn: temporal graph neural networks (TGAT, TGN) on DGL, with exact temporal neighbour
sampling and fused top-K hard negatives."""

from dgl_tgnn.data import DataError, TemporalDataset, describe, load_dataset
from dgl_tgnn.graph import TemporalGraph
from dgl_tgnn.predictor import LinkPredictor
from dgl_tgnn.sampling import TemporalBlock, TemporalSampler
from dgl_tgnn.topk import topk_dot

__all__ = [
    "LinkPredictor",
    "DataError",
    "TemporalBlock",
    "TemporalDataset",
    "TemporalGraph",
    "TemporalSampler",
    "describe",
    "load_dataset",
    "topk_dot",
]
__version__ = "0.1.0"
