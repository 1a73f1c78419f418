"""``python -m dgl_tgnn``: the ``dgl-tgnn`` command (``dgl_tgnn.cli``)."""

from dgl_tgnn.cli import main

main(prog_name="dgl-tgnn")
