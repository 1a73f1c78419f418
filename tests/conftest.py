"""Shared test setup.

Where DGL is installed, import it through the bridge first, so that ``pytest.importorskip("dgl")``
in any test finds the bridged module rather than failing on DGL's own import.
"""

import importlib.util

if importlib.util.find_spec("dgl") is not None:
    import dgl_tgnn._dgl  # noqa: F401
