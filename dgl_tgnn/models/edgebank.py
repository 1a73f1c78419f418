"""EdgeBank (Poursafaei et al. 2022): the pairs seen so far, no parameters (``dgl_tgnn/edgebank.py``)."""

from __future__ import annotations

from dgl_tgnn.models import ModelSpec
from dgl_tgnn.registry import MODELS

MODELS.register("edgebank", "the EdgeBank baseline (no parameters; TGB's protocol)")(
    # ranked under TGB's protocol
    ModelSpec({"eval": {"protocol": "tgb", "metric": "mrr"}})
)
