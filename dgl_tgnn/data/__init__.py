"""Temporal interaction datasets: file loaders, built-in datasets, splits, synthetic workloads."""

from dgl_tgnn.data.convert import from_arrays, from_dataframe, from_dgl, from_pyg
from dgl_tgnn.data.dataset import DataError, TemporalDataset
from dgl_tgnn.data.registry import builtin_names, load_dataset
from dgl_tgnn.data.splits import Split, split_events
from dgl_tgnn.data.summary import data_record, describe, run_name
from dgl_tgnn.data.synthetic import zipf_events

__all__ = [
    "DataError",
    "Split",
    "TemporalDataset",
    "builtin_names",
    "data_record",
    "describe",
    "from_arrays",
    "from_dataframe",
    "from_dgl",
    "from_pyg",
    "load_dataset",
    "run_name",
    "split_events",
    "zipf_events",
]
