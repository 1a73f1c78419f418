"""The ``dgl-tgnn`` command line.

Every failure a user can cause ends in one line (``Error: ...``) and a non-zero exit code: 1, or
128 + the signal's number after Ctrl-C (130) or SIGTERM (143); ``--debug`` shows the traceback.
"""

import dataclasses
import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from dgl_tgnn.config import FILE_SETTINGS, DataConfig, RunConfig, choice_names
from dgl_tgnn.precision import PRECISIONS
from dgl_tgnn.registry import Registry


def _one_line(error: BaseException) -> str:
    """The first line of ``error``'s message; with its type when that is not a ValueError (ours)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if isinstance(error, ValueError):
        return text or type(error).__name__
    return f"{type(error).__name__}: {text} (--debug shows the traceback)"


def _one_line_errors(command: Callable[..., None]) -> Callable[..., None]:
    """Adds ``--debug`` to a command and turns any exception it raises into one line and exit code 1
    (a second Ctrl-C: 130); with ``--debug`` the exception propagates with its traceback."""

    @functools.wraps(command)
    def run(*args: Any, debug: bool = False, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            if debug:
                raise
            click.echo("Error: interrupted (the last checkpoint, if any, is intact)", err=True)
            sys.exit(130)
        except Exception as error:
            if debug:
                raise
            raise click.ClickException(_one_line(error)) from None

    return click.option("--debug", is_flag=True, help="On an error, show the full traceback.")(run)


class _Main(click.Group):
    """The command group; keeps the arguments it parses (``ctx.meta["argv"]``, without the program
    name), which ``train --nproc`` passes on to its processes, however the group was called
    (``dgl-tgnn``, ``python -m dgl_tgnn``, ``main(args)``, click's test runner)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["argv"] = list(args)
        return super().parse_args(ctx, args)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dgl-tgnn")
def main() -> None:
    """Train and evaluate temporal GNNs (TGAT, TGN) on streams of timestamped interactions."""


def _column_flag(value: str | None) -> int | str | None:
    """A column given on the command line: a 0-based index when all digits, else a header name."""
    return int(value) if value is not None and value.isdigit() else value


def _help_of(setting: dataclasses.Field) -> str:
    """The flag help of a config setting, a registry's choices described in it."""
    choices = setting.metadata["choices"]
    if isinstance(choices, Registry):
        return setting.metadata["help"].format(choices=choices.describe())
    return setting.metadata["help"]


_FORMAT = next(setting for setting in dataclasses.fields(DataConfig) if setting.name == "format")


@main.command(context_settings={"max_content_width": 110})
@click.argument("names", nargs=-1, metavar="[NAME_OR_PATH]...")
@click.option(
    "--data",
    type=click.Path(dir_okay=False),
    help="Describe this file of events as it is loaded for training (format, columns, ids, time "
    "span, warnings), with the loader options below.",
)
@click.option(
    "--format", "fmt", type=click.Choice(choice_names(_FORMAT.metadata["choices"])), help=_help_of(_FORMAT)
)
@click.option("--src-col", help="Source column (header name or 0-based index; guessed when omitted).")
@click.option("--dst-col", help="Destination column.")
@click.option("--time-col", help="Time column (numbers, or ISO-8601 dates read as seconds).")
@click.option("--feature-cols", help="Comma-separated edge feature columns.")
@click.option("--delimiter", help="Field delimiter (' ' for whitespace; sniffed when omitted).")
@click.option(
    "--header/--no-header", default=None, help="The first line is (not) a header (detected by default)."
)
@click.option(
    "--keep-ids",
    is_flag=True,
    default=False,
    help="Integer ids are node rows as they are (num_nodes = max id + 1) instead of re-indexed.",
)
@click.option(
    "--bipartite/--no-bipartite",
    default=None,
    help="Sources and destinations are two id spaces (users, then items) or one (default: bipartite when "
    "no id is both a source and a destination).",
)
@_one_line_errors
def datasets(
    names: tuple[str, ...],
    data: str | None,
    fmt: str | None,
    src_col: str | None,
    dst_col: str | None,
    time_col: str | None,
    feature_cols: str | None,
    delimiter: str | None,
    header: bool | None,
    keep_ids: bool,
    bipartite: bool | None,
) -> None:
    """List the built-in datasets: events, nodes, edge feature dim, bipartite, time span.

    With arguments, a row for each of those datasets instead (built-in names or event files, format
    guessed, read with the loader options given). With --data FILE, what was loaded from FILE, in
    detail.
    """
    from dgl_tgnn.data import DataError, builtin_names, describe, load_dataset
    from dgl_tgnn.data.registry import builtin_format
    from dgl_tgnn.data.summary import format_table, summary_row

    options = {
        "fmt": fmt,
        "src_col": _column_flag(src_col),
        "dst_col": _column_flag(dst_col),
        "time_col": _column_flag(time_col),
        "feature_cols": None
        if feature_cols is None
        else [_column_flag(c.strip()) for c in feature_cols.split(",")],
        "delimiter": delimiter,
        "header": header,
        "keep_ids": keep_ids,
        "bipartite": bipartite,
    }
    try:
        if data is not None:
            if names:
                raise click.UsageError("give --data FILE or NAME_OR_PATH arguments, not both")
            click.echo(describe(load_dataset(data, **options)))
            return
        rows = []
        for name in names or builtin_names():
            ds = load_dataset(name, **options)
            fmt_read = builtin_format(name) if name in builtin_names() else ds.source.get("format", "?")
            rows.append(summary_row(ds, fmt_read))
    except (DataError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(format_table(rows))


def _int_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(part) for part in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None


def _str_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    return None if value is None else [part.strip() for part in value.split(",")]


def _eval_negs(ctx: click.Context, param: click.Parameter, value: str | None) -> str | int | None:
    if value is None or value in ("all", "none"):
        return value
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise click.BadParameter(f"expected 'all', 'none' or a positive integer, got {value!r}")


# The parsers of flags whose settings have a type that click does not know (by annotation).
_PARSERS = {"list[int]": _int_list, "list[str] | None": _str_list, "str | int": _eval_negs}


@dataclasses.dataclass(frozen=True)
class _Flag:
    key: str  # the setting, "section.name"
    flag: str  # its flag, "--name"
    option: Callable[..., Any]  # its click.option decorator


def _setting_option(setting: dataclasses.Field, name: str) -> Callable[..., Any]:
    """The ``click.option`` of a config setting's flag (``config.option``), parameter ``name``. The
    type follows the setting's annotation: a ``bool`` is a ``--x/--no-x`` switch, a setting with
    choices a ``click.Choice``; a flag not given is None."""
    kind, flag, choices = str(setting.type), setting.metadata["flag"], setting.metadata["choices"]
    if "bool" in kind:
        return click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=_help_of(setting))
    settings: dict[str, Any] = {}
    if choices is not None:
        settings["type"] = click.Choice(choice_names(choices))
    elif setting.metadata["file"]:
        settings["type"] = click.Path(dir_okay=False)
    elif kind in _PARSERS:
        settings["callback"] = _PARSERS[kind]
    elif "int" in kind or "float" in kind:
        settings["type"] = int if "int" in kind else float
    return click.option(flag, name, help=_help_of(setting), **settings)


def _setting_flags() -> dict[str, _Flag]:
    """The flag of every config setting that declares one, by parameter name (``--n-hard``:
    ``n_hard``), in the config's order (sections as in ``RunConfig``)."""
    flags = {}
    for section in dataclasses.fields(RunConfig):
        for setting in dataclasses.fields(section.default_factory):  # type: ignore[arg-type]
            flag = setting.metadata.get("flag")
            if flag:
                name = flag[2:].replace("-", "_")
                flags[name] = _Flag(f"{section.name}.{setting.name}", flag, _setting_option(setting, name))
    return flags


_TRAIN_FLAGS = _setting_flags()


def _with_setting_options(command: Callable[..., None]) -> Callable[..., None]:
    """Adds the options of ``_TRAIN_FLAGS`` to ``command``."""
    for flag in reversed(_TRAIN_FLAGS.values()):  # (click lists options in the order they decorate)
        command = flag.option(command)
    return command


@main.command(context_settings={"max_content_width": 110})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="YAML run config (see configs/tgat.yaml); flags override it. "
    "Default: the paper settings of --model.",
)
@click.option(
    "--resume",
    "resume",
    type=click.Path(file_okay=False),
    help="Continue the interrupted run in this run directory (with its own config; give no other option).",
)
@_with_setting_options
@click.option("--progress/--no-progress", default=True, help="Show a progress bar per epoch.")
@click.option(
    "--nproc",
    type=click.IntRange(min=1),
    default=None,
    help="Train on this many processes of this machine (data parallel: each step takes "
    "nproc x batch-size events; one GPU each with --device cuda, else gloo on the CPU). "
    "The same as `torchrun --nproc-per-node N -m dgl_tgnn train ...`.",
)
@_one_line_errors
def train(
    config_path: str | None, resume: str | None, progress: bool, nproc: int | None, **flags: object
) -> None:
    """Train a model (TGAT, TGN, GraphMixer, ...) on a dataset and report test AP, AUC, MRR and Recall@k.

    Says what data was loaded, then writes runs/<time>-<dataset>-<model>-<neg>/ with config.yaml (the
    data options as read, guesses resolved), metrics.jsonl (one line per epoch), curves.png, best.pt,
    checkpoint.pt and, when node ids were re-indexed, node_ids.npy (the original id of each node row).
    With --task node, also the node classification's AUCs (node_classification.json). Ctrl-C saves a
    checkpoint; --resume continues it.
    """
    from pathlib import Path

    from dgl_tgnn import run_dir as rd
    from dgl_tgnn.config import load_config
    from dgl_tgnn.distributed import group, launch
    from dgl_tgnn.train import check_device

    if nproc is not None and group.launched():
        raise click.UsageError("--nproc: this process is already one of several (torchrun); drop --nproc")
    if nproc is not None and nproc > 1 and resume is None:  # what several processes refuse: said once
        from dgl_tgnn.training.parallel import check_supported

        config = _flags_config(config_path, flags)
        check_supported(config)
        if config.model.name == "edgebank":
            click.echo(f"--nproc {nproc}: EdgeBank has no parameters to train; it ranks in this one process")
            nproc = None
    if nproc is not None and nproc > 1:
        argv = launch.without_nproc(click.get_current_context().meta["argv"])
        sys.exit(launch.spawn(nproc, argv, echo=lambda line: click.echo(line, err=True)))
    parallel = None
    if group.launched():
        device = load_config(Path(resume) / rd.CONFIG).train.device if resume else None
        if device is None:
            device = load_config(config_path, flags["model"]).train.device  # type: ignore[arg-type]
            device = flags["device"] or device
        parallel = group.join(check_device(str(device)))
    main_process = parallel is None or parallel.main
    echo = click.echo if main_process else (lambda s: None)
    progress = progress and main_process
    try:
        _train(config_path, resume, progress, flags, parallel, echo)
    except RuntimeError as error:
        if parallel is None:
            raise
        raise ValueError(
            f"process {parallel.rank} of {parallel.world}: a collective failed, another process of the "
            f"run died or stopped answering ({_one_line(error)[:200]})"
        ) from None
    finally:
        group.leave()


def _flags_config(config_path: str | None, flags: dict[str, object]) -> RunConfig:
    """The validated run config of ``train``'s ``--config`` and flags (flags win)."""
    from dgl_tgnn.config import apply_overrides, load_config

    if flags["data"] is not None and flags["dataset"] is not None:
        raise click.UsageError("give --dataset or --data, not both")
    if flags["dataset"] is not None and any(flags[name] is not None for name in FILE_SETTINGS):
        given = next(name for name in FILE_SETTINGS if flags[name] is not None)
        flag = _TRAIN_FLAGS[given].flag
        if flags[given] is False:
            flag = "--no-" + flag[2:]
        raise click.UsageError(f"{flag} describes a --data file: it does nothing with --dataset")
    config = load_config(config_path, flags["model"])  # type: ignore[arg-type]
    config = apply_overrides(config, {flag.key: flags[name] for name, flag in _TRAIN_FLAGS.items()})
    if flags["dataset"] is not None:  # a built-in dataset replaces a file named by the config
        fresh = DataConfig()
        config.data.path = None
        for name in FILE_SETTINGS:
            setattr(config.data, name, getattr(fresh, name))
    return config.validate()


def _train(
    config_path: str | None,
    resume: str | None,
    progress: bool,
    flags: dict[str, object],
    parallel: Any,
    echo: Callable[[str], None],
) -> None:
    """``train`` in this process (one of ``parallel``'s, or alone)."""
    import dataclasses

    from dgl_tgnn import run_dir as rd
    from dgl_tgnn.data import data_record, describe, run_name
    from dgl_tgnn.train import Trainer, check_device, check_task, fit_edgebank, load_events
    from dgl_tgnn.training.parallel import check_supported

    main_process = parallel is None or parallel.main
    if resume is not None:
        given = sorted(name for name, value in flags.items() if value is not None)
        if given or config_path:
            raise click.UsageError("--resume continues a run with its saved config: give no other option")
        trainer = Trainer.resume(resume, progress=progress, log=echo, parallel=parallel)
    else:
        config = _flags_config(config_path, flags)
        if parallel is not None:  # (before the run directory)
            check_supported(config)
            if config.model.name == "edgebank":
                echo("EdgeBank has no parameters to train: process 0 ranks it alone")
                if not main_process:
                    return
        check_device(config.train.device)
        ds = load_events(config.data)  # before the run directory: a failed load leaves none behind
        check_task(config, ds)
        echo(describe(ds))
        config.data = dataclasses.replace(config.data, **data_record(ds))  # what was read, guesses resolved
        run = None
        if main_process:
            name, model, kind = run_name(ds), config.model.name, config.negatives.kind
            run = rd.create_run_dir(config.train.runs_dir, name, model, kind)
            echo(f"run directory: {run}")
            rd.save_node_ids(run, ds.node_ids)
        if config.model.name == "edgebank":
            fit_edgebank(config, run, dataset=ds, log=echo)
            return
        trainer = Trainer(config, run, dataset=ds, progress=progress, log=echo, parallel=parallel)
    if trainer.fit() is None:  # interrupted (Ctrl-C: 130, SIGTERM: 143) after saving a checkpoint
        sys.exit(128 + trainer.interrupted_by)


@main.command(context_settings={"max_content_width": 110})
@click.argument("path", type=click.Path(exists=True))
@click.option(
    "--metric",
    type=click.Choice(["all", "ap", "mrr"]),
    default="all",
    show_default=True,
    help="ap: AP and AUC only (fast); mrr or all: also MRR and Recall@k.",
)
@click.option(
    "--split",
    type=click.Choice(["test", "val"]),
    default="test",
    show_default=True,
    help="The split to evaluate (transductive and inductive sets).",
)
@click.option(
    "--eval-negs",
    callback=_eval_negs,
    help="MRR/Recall@k negatives per positive: 'all', a seeded sample of N, or 'none' (default: the run's).",
)
@click.option(
    "--eval-batch-size",
    type=int,
    help="Events per batch, scored together, then observed (default: the run's).",
)
@click.option("--device", help="torch device (default: the run's).")
@click.option("--threads", type=int, help="CPU threads (default: the run's).")
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    help="Arithmetic of the forward passes: float32, tf32 (GPU) or bf16 (default: the run's).",
)
@_one_line_errors
def evaluate(
    path: str,
    metric: str,
    split: str,
    eval_negs: str | int | None,
    eval_batch_size: int | None,
    device: str | None,
    threads: int | None,
    precision: str | None,
) -> None:
    """Evaluate a trained model: PATH is a run directory (its best.pt) or a checkpoint file."""
    from dgl_tgnn.train import evaluate_checkpoint

    overrides = {
        "eval.negatives": eval_negs,
        "eval.batch_size": eval_batch_size,
        "train.device": device,
        "train.threads": threads,
        "train.precision": precision,
    }
    result = evaluate_checkpoint(path, split=split, ranking=metric != "ap", overrides=overrides)
    for key, value in result.items():
        click.echo(f"{key:<22} {value:.4f}")


@main.command(context_settings={"max_content_width": 110})
@click.argument("run_dir", type=click.Path(exists=True))
@click.option(
    "--queries",
    type=click.Path(exists=True, dir_okay=False),
    required=True,
    help="CSV of queries, one src,t row each (a header line is optional).",
)
@click.option(
    "--k", type=click.IntRange(min=1), default=10, show_default=True, help="Destinations per query."
)
@click.option(
    "--observe",
    "observe_path",
    type=click.Path(exists=True, dir_okay=False),
    help="CSV of new events src,dst,t[,features...] (time order) observed before the queries.",
)
@click.option("--out", type=click.Path(dir_okay=False), help="Output CSV (default: standard output).")
@click.option("--exclude-seen", is_flag=True, help="Leave out destinations the source met before t.")
@click.option(
    "--shortlist",
    type=click.IntRange(min=1),
    help="Two stages: re-rank the S best dot products (runs with --decoder dot or model.dot_head).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="At most this many consecutive queries at the same time are scored together.",
)
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cpu or cuda:0.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@_one_line_errors
def recommend(
    run_dir: str,
    queries: str,
    k: int,
    observe_path: str | None,
    out: str | None,
    exclude_seen: bool,
    shortlist: int | None,
    batch_size: int,
    device: str,
    progress: bool,
) -> None:
    """The top K destinations of each query of a trained run: RUN_DIR is a run directory or a file
    of LinkPredictor.save. Writes src,t,rank,dst,score rows."""
    from tqdm import tqdm

    from dgl_tgnn.predictor import LinkPredictor
    from dgl_tgnn.recommend_io import read_events, read_queries, same_time_batches, write_recommendations

    predictor = LinkPredictor.load(run_dir, device)
    refusal = None if shortlist is None else predictor.shortlist_refusal(shortlist, k)
    if refusal is not None:
        raise click.UsageError(f"--shortlist: {refusal.removeprefix('recommend: ')}")
    if observe_path is not None:
        src, dst, t, feat = read_events(observe_path, predictor.node_ids, predictor.edge_dim)
        try:
            predictor.observe(src, dst, t, feat)
        except ValueError as err:
            raise ValueError(f"{observe_path}: {err}") from None
    ids, times, lines = read_queries(queries, predictor.node_ids)
    stream = open(out, "w") if out is not None else sys.stdout
    try:
        stream.write("src,t,rank,dst,score\n")
        with tqdm(total=len(ids), unit="query", disable=not progress, file=sys.stderr) as bar:
            for part in same_time_batches(times, batch_size):
                try:
                    top = predictor.recommend(ids[part], times[part], k, None, exclude_seen, shortlist)
                except ValueError as err:
                    raise ValueError(f"{queries}:{lines[part][0]}: {err}") from None
                write_recommendations(stream, ids[part], times[part], top.nodes, top.scores)
                bar.update(len(ids[part]))
    finally:
        if out is not None:
            stream.close()


@main.command(context_settings={"max_content_width": 110})
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Classifier epochs at most (early stopping on validation AUC, patience 5).",
)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=3e-4,
    show_default=True,
    help="Classifier learning rate (Adam).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the classifier.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar while embedding.")
@_one_line_errors
def classify(run_dir: str, epochs: int, lr: float, seed: int, progress: bool) -> None:
    """Dynamic node classification (TGN's second task) with a trained run: RUN_DIR's frozen source
    embedding of each event at its time, an MLP on the training events' labels (JODIE's state_label),
    ROC AUC on the chronological val and test splits. Writes RUN_DIR/node_classification.json."""
    from tqdm import tqdm

    from dgl_tgnn.node_classification import RESULT, classify_nodes

    bars: list[Any] = []  # the bar starts with the embedding (not before a one-line error)

    def advance(done: int, total: int) -> None:
        if not bars:
            bar = tqdm(total=total, unit="event", disable=not progress, file=sys.stderr, desc="embedding")
            bars.append(bar)
        bars[0].update(done - bars[0].n)
        if done == total:
            bars[0].close()

    result = classify_nodes(run_dir, epochs=epochs, lr=lr, seed=seed, progress=advance)
    for key in ("val_auc", "test_auc"):
        click.echo(f"{key:<22} {result[key]:.4f}")
    click.echo(f"{'best_epoch':<22} {result['best_epoch']}")
    click.echo(f"written to {os.path.join(run_dir, RESULT)}")
