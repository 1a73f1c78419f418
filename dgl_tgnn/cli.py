"""The ``dgl-tgnn`` command line."""

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dgl-tgnn")
def main() -> None:
    """Train and evaluate temporal GNNs (TGAT, TGN) on streams of timestamped interactions."""


@main.command()
@click.argument("names", nargs=-1, metavar="[NAME_OR_PATH]...")
def datasets(names: tuple[str, ...]) -> None:
    """List the built-in datasets: events, nodes, edge feature dim, bipartite, time span.

    With arguments, describe those datasets instead (built-in names or event files, format guessed).
    """
    from pathlib import Path

    from dgl_tgnn.data import DataError, builtin_names, load_dataset
    from dgl_tgnn.data.formats import guess_format
    from dgl_tgnn.data.registry import builtin_format
    from dgl_tgnn.data.summary import format_table, summary_row

    rows = []
    try:
        for name in names or builtin_names():
            ds = load_dataset(name)
            fmt = builtin_format(name) if name in builtin_names() else guess_format(Path(name))
            rows.append(summary_row(ds, fmt))
    except DataError as error:
        raise click.ClickException(str(error)) from None
    click.echo(format_table(rows))
