"""The ``dgl-tgnn`` command line."""

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dgl-tgnn")
def main() -> None:
    """Train and evaluate temporal GNNs (TGAT, TGN) on streams of timestamped interactions."""
