"""dgl-tgnn: temporal graph neural networks (TGAT, TGN) on DGL, with exact temporal neighbour
sampling and fused top-K hard negatives."""

import os as _os
import sys as _sys

# The command line (``dgl-tgnn``, ``python -m dgl_tgnn``): OpenMP threads sleep while they wait
# instead of spinning. When another process is busy on a core, torch's spinning workers kept
# cores from the one descheduled worker every parallel region waits for (a uci TGN epoch: 25x
# slower; bench/busy_machine.py). It must be set before torch loads; an explicit setting wins.
if (_sys.argv[:1] == ["-m"] or _os.path.basename(_sys.argv[0] if _sys.argv else "") == "dgl-tgnn") and not (
    {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & set(_os.environ)
):
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

from dgl_tgnn.graph import TemporalGraph  # noqa: E402
from dgl_tgnn.sampling import TemporalBlock, TemporalSampler  # noqa: E402
from dgl_tgnn.topk import topk_dot  # noqa: E402

__all__ = ["TemporalBlock", "TemporalGraph", "TemporalSampler", "topk_dot"]
__version__ = "0.1.0"
