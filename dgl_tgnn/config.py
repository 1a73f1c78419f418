"""Run configuration: dataclasses that round-trip through YAML (``configs/*.yaml``).

A config has five sections, ``data``, ``model``, ``negatives``, ``train`` and ``eval``. Loading
starts from the paper defaults of the chosen model (:func:`default_config`), applies the file,
then the command-line flags (:func:`apply_overrides`), so flags override the file.

Each setting is declared once, as a dataclass field: its metadata (:func:`option`) holds its
``dgl-tgnn train`` flag, the flag's help and the values it may take. ``dgl_tgnn/cli.py`` makes the
train options from the fields, and :meth:`RunConfig.validate` checks the choices. The choices of
the pluggable parts (``model.name``, ``negatives.kind``, ``train.loss``, ``data.format``) are the
registries of ``dgl_tgnn/registry.py``: this module imports nothing else of the package, and a
registry imports the modules that fill it only when its names are first read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dgl_tgnn.precision import PRECISIONS
from dgl_tgnn.registry import FORMATS, LOSSES, MODELS, NEGATIVES, Registry

SIMILARITIES = ("dot", "cosine", "decoder")  # (also checked by negatives.TopKNegatives)

Choices = tuple[str, ...] | Registry[Any]
"""The values a setting may take: fixed names, or those of a registry (``dgl_tgnn/registry.py``)."""


def option(
    flag: str | None = None, help: str = "", *, choices: Choices | None = None, file: bool = False
) -> dict[str, Any]:
    """A setting's field metadata: its ``dgl-tgnn train`` flag (None: config files only), the flag's
    help (``{choices}`` stands for the registry's ``describe()``), the values it may take
    (``RunConfig.validate`` checks them; the flag is a ``click.Choice`` of them), and whether the
    flag names a file."""
    return {"flag": flag, "help": help, "choices": choices, "file": file}


def choice_names(choices: Choices) -> tuple[str, ...]:
    """The allowed values, in order."""
    return choices.names() if isinstance(choices, Registry) else choices


# The file formats that say nothing of whether sources and destinations are two id spaces (JODIE files
# always are; TGN files tell by their id ranges, TGB files by their layout): ``data.bipartite`` (None:
# guessed) applies to them.
CHOOSE_BIPARTITE = ("csv", "edgelist")

# The ``data`` settings that describe a file (``data.path``, ``--data``): with a built-in dataset they
# would do nothing, so they must keep their defaults there.
FILE_SETTINGS = (
    "format", "src_col", "dst_col", "time_col", "feature_cols", "delimiter", "header", "keep_ids", "bipartite"
)  # fmt: skip


@dataclass
class DataConfig:
    """Which events, and how they are split (chronologically, as in TGN)."""

    # ignored when path is set
    dataset: str | None = field(
        default="wikipedia",
        metadata=option("--dataset", "Built-in dataset (see `dgl-tgnn datasets`; default wikipedia)."),
    )
    path: str | None = field(
        default=None,
        metadata=option(
            "--data",
            "A file of events instead: JODIE csv, TGN ml_<name>.csv, edge list, TGB edge list or generic csv "
            "(string or integer node ids; `dgl-tgnn datasets --data FILE` shows what is read).",
            file=True,
        ),
    )
    format: str | None = field(
        default=None,
        metadata=option("--format", "Format of --data (guessed when omitted): {choices}.", choices=FORMATS),
    )
    # csv columns (header names or 0-based indices as digits), delimiter (" ": whitespace) and
    # header line: guessed from the file when None. A run's config.yaml holds what was read.
    src_col: str | None = field(
        default=None,
        metadata=option(
            "--src-col", "Generic csv: source column (header name or 0-based index; guessed when omitted)."
        ),
    )
    dst_col: str | None = field(
        default=None, metadata=option("--dst-col", "Generic csv: destination column.")
    )
    time_col: str | None = field(
        default=None,
        metadata=option(
            "--time-col", "Generic csv: time column (numbers, or ISO-8601 dates read as seconds)."
        ),
    )
    feature_cols: list[str] | None = field(
        default=None, metadata=option("--feature-cols", "Generic csv: comma-separated edge feature columns.")
    )
    delimiter: str | None = field(
        default=None,
        metadata=option(
            "--delimiter", "Generic csv: field delimiter (' ' for whitespace; sniffed when omitted)."
        ),
    )
    header: bool | None = field(
        default=None,
        metadata=option("--header", "Generic csv: the first line is (not) a header (detected by default)."),
    )
    keep_ids: bool = field(
        default=False,
        metadata=option(
            "--keep-ids",
            "Integer node ids of --data are node rows as they are (num_nodes = max id + 1) instead of "
            "re-indexed (default: re-indexed; the run keeps the original ids in node_ids.npy).",
        ),
    )
    # None: guessed from the file (bipartite when no id is both a source and a destination)
    bipartite: bool | None = field(
        default=None,
        metadata=option(
            "--bipartite",
            "--data csv or edge list: sources and destinations are two id spaces, users then items, "
            "negatives and recommendations drawn from the items (or one id space; default: bipartite "
            "when no id is both a source and a destination).",
        ),
    )
    max_events: int | None = field(
        default=None, metadata=option("--max-events", "Use only the first N events (quick runs).")
    )
    # False: featureless, as in peer benchmarks
    features: bool = field(
        default=True,
        metadata=option("--features", "Use the dataset's node/edge features (default) or train featureless."),
    )
    val_ratio: float = 0.15
    test_ratio: float = 0.15
    new_node_ratio: float = field(
        default=0.1,
        metadata=option(
            "--new-node-ratio",
            "Share of the val/test nodes held out of training for the inductive sets (default 0.1).",
        ),
    )
    # Negative destinations (training and evaluation) are drawn from "destinations" (the nodes that
    # can be destinations: the item side of bipartite data; TGN's protocol) or from "all" nodes
    # (what TGLite's examples do; easier negatives on bipartite data).
    candidates: str = field(
        default="destinations",
        metadata=option(
            "--candidates",
            "Draw negatives (training and evaluation) from the destination side (default; TGN's "
            "protocol) or from all nodes (TGLite's examples; easier on bipartite data).",
            choices=("destinations", "all"),
        ),
    )


@dataclass
class ModelConfig:
    """Encoder and decoder sizes (TGAT: Xu et al. 2020; TGN: Rossi et al. 2020)."""

    name: str = field(
        default="tgat", metadata=option("--model", "Model (default tgat): {choices}.", choices=MODELS)
    )
    embed_dim: int = field(default=100, metadata=option("--embed-dim", "Embedding width (default 100)."))
    time_dim: int = 100
    num_layers: int = field(
        default=2, metadata=option("--layers", "Attention layers (give --fanouts with as many entries).")
    )
    num_heads: int = 2
    dropout: float = 0.1
    fanouts: list[int] = field(
        default_factory=lambda: [10, 10],
        metadata=option("--fanouts", "Neighbours per hop, comma-separated, e.g. 10,10."),
    )
    strategy: str = field(
        default="uniform",
        metadata=option(
            "--strategy",
            "Neighbour sampling among earlier events: uniform (TGAT), most recent (TGN), or labor "
            "(uniform, with draws shared by the roots of one node, as LABOR).",
            choices=("uniform", "recent", "labor"),
        ),
    )
    # Sample and embed each distinct (node, time) of a deeper hop once (TemporalSampler(dedup=True)):
    # "always", "never", or "auto" = on CPU only (faster TGAT epochs there; on a GPU, where a batch
    # costs its kernel launches, the extra sorting made TGAT epochs slower: docs/benchmarks.md).
    dedup: str = field(
        default="auto",
        metadata=option(
            "--dedup",
            "Sample and embed each distinct (node, time) of a deeper hop once: exact for recent "
            "neighbours (uniform ones then share draws). auto (default): on CPU only.",
            choices=("auto", "always", "never"),
        ),
    )
    # TGN only: memory_dim, message, aggregator, updater
    memory_dim: int = field(default=100, metadata=option("--memory-dim", "TGN memory width (default 100)."))
    message: str = field(default="identity", metadata=option(choices=("identity", "mlp")))
    aggregator: str = field(default="last", metadata=option(choices=("last", "mean")))
    updater: str = field(default="gru", metadata=option(choices=("gru", "rnn")))
    decoder: str = field(
        default="mlp", metadata=option("--decoder", "Link decoder (default mlp).", choices=("mlp", "dot"))
    )
    engine: str = field(
        default="auto",
        metadata=option(
            "--engine",
            "Attention engine: dense tensors, DGL message passing, or auto.",
            choices=("auto", "dense", "dgl"),
        ),
    )
    # "fixed" cos(w dt + b) at TGAT's initial w, b, or "learnable" w, b (the papers). With learnable w,
    # Adam's steps move w * dt by radians per step for dt of days in seconds: on uci TGN's test AP
    # swung from epoch to epoch, and stayed steady and higher with fixed w, b (docs/benchmarks.md).
    time_encoding: str = field(
        default="fixed",
        metadata=option(
            "--time-encoding",
            "Time encoding cos(w dt + b): fixed at TGAT's initial w, b (default; steadier) or "
            "learnable (the papers).",
            choices=("fixed", "learnable"),
        ),
    )
    # A learnable identity vector of this width per node, appended to its features (0: none). Without
    # it a featureless node is anonymous: the models rank busy destinations, not this source's ones.
    node_embedding: int = field(
        default=0,
        metadata=option(
            "--node-embedding",
            "Width of a learnable identity vector per node, appended to its features (0: none).",
        ),
    )
    # Pair features from the source's last N events scored by a small MLP (0: none): whether, how
    # often and how recently the source met the candidate (dgl_tgnn/pair_features.py).
    pair_history: int = field(
        default=0,
        metadata=option(
            "--pair-history",
            "Score pair features (met before, how often, how recently) from the source's last N "
            "events (0: none).",
        ),
    )
    dot_head: float = field(
        default=0.0,
        metadata=option(
            None,
            "Weight of an auxiliary link loss training a dot-product head (two linear maps of the "
            "detached embeddings: the link model trains as without it) beside an MLP decoder (0: none), "
            "what LinkPredictor.recommend(shortlist=S) retrieves with before the decoder re-ranks.",
        ),
    )
    edgebank_mode: str = field(
        default="unlimited",
        metadata=option(
            "--edgebank-mode",
            "edgebank: remember every pair, or only those within TGB's time window.",
            choices=("unlimited", "window"),
        ),
    )
    window_ratio: float = 0.15  # edgebank "window": the window as a fraction of the training span
    # tpnet: the time-decayed temporal walk matrices A_1..A_K kept as random projections of walk_dim
    # features per node (the paper: K = 3, 10 * int(ln(2 E)) features, lambda 1e-6 per second on
    # Wikipedia, Reddit, Enron; 1e-7 on UCI and LastFM), and the MLP-Mixer layers of its pair encoder.
    walk_length: int = field(
        default=3, metadata=option("--walk-length", "tpnet: longest temporal walk K (default 3).")
    )
    walk_decay: float = field(
        default=1e-6,
        metadata=option(
            "--walk-decay", "tpnet: time decay lambda of the walk matrices, per time unit (default 1e-6)."
        ),
    )
    walk_dim: int = field(
        default=128, metadata=option("--walk-dim", "tpnet: random features per node (default 128).")
    )
    mixer_layers: int = field(
        default=2,
        metadata=option("--mixer-layers", "tpnet: MLP-Mixer layers of the pair encoder (default 2)."),
    )
    # dygformer: neighbours (tokens) per patch of each endpoint's sequence (DyGLib: 1 for sequences of
    # 32, 2 for reddit's 64, 8 for mooc's 256).
    patch_size: int = field(
        default=1, metadata=option("--patch-size", "dygformer: tokens per patch (default 1).")
    )


@dataclass
class NegativeConfig:
    """Training negatives. ``topk`` draws ``n_hard`` hard + ``n_rand`` uniform negatives per event;
    every other kind draws ``n_hard + n_rand`` negatives of its kind."""

    kind: str = field(
        default="uniform", metadata=option("--neg", "Training negatives: {choices}.", choices=NEGATIVES)
    )
    k: int = field(
        default=50,
        metadata=option("--k", "topk: draw hard negatives among the K nearest candidates (default 50)."),
    )
    # Full table refresh every 10 batches; each batch's embeddings update the table in between.
    # The paper refreshes every batch (1), at a much longer epoch than every 10 (bench/train_speed.py,
    # docs/benchmarks.md).
    refresh: int = field(
        default=10,
        metadata=option(
            "--refresh",
            "topk: recompute the whole candidate table every F batches (default 10; the paper's "
            "is 1); between refreshes each batch's embeddings update it.",
        ),
    )
    warmup_epochs: int = field(
        default=0,
        metadata=option("--warmup-epochs", "topk: train this many epochs on uniform negatives first."),
    )
    n_hard: int = field(
        default=1,
        metadata=option(
            "--n-hard", "topk: hard negatives per event (default 1); other kinds draw n_hard + n_rand."
        ),
    )
    n_rand: int = field(
        default=0, metadata=option("--n-rand", "topk: additional uniform negatives per event (default 0).")
    )
    similarity: str = field(
        default="dot",
        metadata=option(
            "--similarity",
            "topk: nearest by dot product, cosine, or the model's own link score (in chunks).",
            choices=SIMILARITIES,
        ),
    )
    exclude_known: bool = field(
        default=False,
        metadata=option(
            "--exclude-known",
            "topk: never take a destination the source has interacted with as a hard negative "
            "(the true destination is always excluded).",
        ),
    )


@dataclass
class TrainConfig:
    """Optimisation and the training loop."""

    epochs: int = field(default=50, metadata=option("--epochs", "Maximum epochs (default: the config's)."))
    batch_size: int = field(default=200, metadata=option("--batch-size", "Events per batch (default 200)."))
    lr: float = field(default=1e-4, metadata=option("--lr", "Adam learning rate (default 1e-4)."))
    loss: str = field(default="bce", metadata=option("--loss", "{choices}.", choices=LOSSES))
    temperature: float = field(
        default=1.0, metadata=option("--temperature", "infonce temperature (default 1.0).")
    )
    patience: int = field(
        default=5,
        metadata=option("--patience", "Stop after this many validations without a better metric."),
    )
    val_every: int = field(
        default=1,
        metadata=option(
            "--val-every",
            "Validate after every N-th epoch and after the last (default 1: every epoch); the best "
            "checkpoint is chosen among validated epochs.",
        ),
    )
    seed: int = field(
        default=0, metadata=option("--seed", "Seed of weights, negatives, neighbour sampling and the split.")
    )
    device: str = field(
        default="cpu", metadata=option("--device", "torch device, e.g. cpu or cuda:0 (default cpu).")
    )
    threads: int | None = field(
        default=None,
        metadata=option("--threads", "CPU threads for torch and the sampler (default: torch's)."),
    )
    # dgl_tgnn/precision.py: the forward passes of training and evaluation in float32, with float32
    # products on TF32 tensor cores (CUDA), or autocast to bfloat16; the weights stay float32.
    precision: str = field(
        default="float32",
        metadata=option(
            "--precision",
            "Arithmetic of training and evaluation: float32 (default), tf32 (float32 products on a "
            "GPU's TF32 tensor cores) or bf16 (autocast to bfloat16); weights stay float32.",
            choices=PRECISIONS,
        ),
    )
    visible_batch: bool = field(
        default=True,
        metadata=option(
            "--visible-batch",
            "Let a root see earlier events of its own batch as neighbours (TGN's code, TGLite, TGM; "
            "default) or only events before the batch. Under --protocol tgb it also lets the pair "
            "features read each source's events up to its own time (the evaluator observes a batch "
            "before scoring it, as DyGLib's models do on TGB).",
        ),
    )
    runs_dir: str = field(
        default="runs", metadata=option("--runs-dir", "Parent of the run directories (default runs).")
    )
    # "node": after the link training, TGN's node classification on the frozen best model
    # (dgl_tgnn/node_classification.py); its AUCs join the final metrics.
    task: str = field(
        default="link",
        metadata=option(
            "--task",
            "link: link prediction (default); node: then also dynamic node classification on the "
            "trained model's frozen embeddings (datasets with event state labels; AUC of the "
            "chronological val and test events).",
            choices=("link", "node"),
        ),
    )
    node_epochs: int = field(
        default=50,
        metadata=option(
            "--node-epochs", "--task node: classifier epochs at most (default 50; early stop on val AUC)."
        ),
    )
    node_lr: float = field(
        default=3e-4, metadata=option("--node-lr", "--task node: classifier learning rate (default 3e-4).")
    )


@dataclass
class EvalConfig:
    """Evaluation: AP/AUC against one seeded uniform negative per positive, MRR/Recall@k against
    ``negatives`` destinations per positive (``"all"`` candidates, a seeded sample of that many, or
    ``"none"``: no ranking metrics)."""

    # "tgn": AP/AUC against one uniform negative, TGN's split with new nodes held out; "tgb": TGB's
    # protocol (dgl_tgnn/ranking.py): split at 0.70 / 0.85, each positive ranked against its negative
    # set through LinkPredictor, early stopping on validation MRR, test evaluated once (best epoch).
    protocol: str = field(
        default="tgn",
        metadata=option(
            "--protocol",
            "tgn: TGN's split and AP against one negative (default); tgb: TGB's split at 0.70/0.85, "
            "every positive ranked against its negative set (MRR, Recall@k), early stop on val MRR.",
            choices=("tgn", "tgb"),
        ),
    )
    negatives: str | int = field(
        default="all",
        metadata=option(
            "--eval-negs",
            "MRR/Recall@k negatives per positive: 'all' candidate destinations (default), a "
            "seeded sample of N, or 'none' (AP/AUC only).",
        ),
    )
    recall_ks: list[int] = field(default_factory=lambda: [1, 10])
    # The state a batch is scored against holds every event before the batch's first: smaller
    # batches see more recent events. TGB's protocol leaves the size open.
    batch_size: int | None = field(
        default=None,
        metadata=option(
            "--eval-batch-size",
            "Events per evaluation batch, scored together, then observed (default: --batch-size). "
            "On tgbl-wiki TPNet's TGB code ranks in batches of 20, DyGLib's in batches of 1.",
        ),
    )
    metric: str = field(
        default="ap",
        metadata=option(
            "--early-stop",
            "Validation metric for early stopping and the best checkpoint (default ap).",
            choices=("ap", "mrr"),
        ),
    )
    seed: int = 0
    test_every_epoch: bool = field(
        default=True,
        metadata=option("--test-every-epoch", "Also evaluate the test split after every epoch (default on)."),
    )


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    negatives: NegativeConfig = field(default_factory=NegativeConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def eval_batch_size(self) -> int:
        """Events per evaluation batch: ``eval.batch_size``, else ``train.batch_size``."""
        return self.train.batch_size if self.eval.batch_size is None else self.eval.batch_size

    def validate(self) -> RunConfig:
        """Raises ValueError naming the first bad setting; returns self."""
        m, n, t, e, d = self.model, self.negatives, self.train, self.eval, self.data
        for section in dataclasses.fields(self):
            values = getattr(self, section.name)
            for setting in dataclasses.fields(values):
                value, choices = getattr(values, setting.name), setting.metadata.get("choices")
                if choices is None or (value is None and "None" in str(setting.type)):
                    continue
                allowed = choice_names(choices)
                if value not in allowed:
                    raise ValueError(
                        f"{section.name}.{setting.name} must be one of {', '.join(allowed)}; got {value!r}"
                    )
        if d.path is None:
            for name in FILE_SETTINGS:
                if getattr(d, name) != DataConfig.__dataclass_fields__[name].default:
                    raise ValueError(
                        f"data.{name} describes a --data file (data.path): it does nothing with the "
                        f"built-in dataset {d.dataset!r}"
                    )
        positive = [
            ("train.epochs", t.epochs),
            ("train.batch_size", t.batch_size),
            ("train.patience", t.patience),
            ("train.val_every", t.val_every),
            ("model.embed_dim", m.embed_dim),
            ("model.time_dim", m.time_dim),
            ("model.num_heads", m.num_heads),
            ("model.num_layers", m.num_layers),
            ("negatives.k", n.k),
            ("negatives.refresh", n.refresh),
            ("train.node_epochs", t.node_epochs),
        ]
        if e.batch_size is not None:
            positive.append(("eval.batch_size", e.batch_size))
        for name, value in positive:
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
        if n.n_hard < 0 or n.n_rand < 0 or n.n_hard + n.n_rand < 1:
            counts = f"{n.n_hard}, {n.n_rand}"
            raise ValueError(f"negatives.n_hard and n_rand must be >= 0 with a sum >= 1; got {counts}")
        if n.kind == "topk" and not 1 <= n.n_hard <= n.k:
            raise ValueError(f"negatives.n_hard must be in [1, k={n.k}] for topk; got {n.n_hard}")
        if n.warmup_epochs < 0:
            raise ValueError(f"negatives.warmup_epochs must be >= 0; got {n.warmup_epochs}")
        if len(m.fanouts) != m.num_layers or any(f < 1 for f in m.fanouts):
            raise ValueError(
                f"model.fanouts must hold num_layers={m.num_layers} positive counts; got {m.fanouts}"
            )
        if m.node_embedding < 0 or m.pair_history < 0:
            raise ValueError(
                "model.node_embedding and pair_history must be >= 0; "
                f"got {m.node_embedding}, {m.pair_history}"
            )
        if not m.dot_head >= 0:
            raise ValueError(f"model.dot_head must be >= 0; got {m.dot_head}")
        if m.walk_length < 1 or m.walk_dim < 1 or m.mixer_layers < 1 or not m.walk_decay >= 0:
            raise ValueError(
                "model.walk_length, walk_dim and mixer_layers must be >= 1 and walk_decay >= 0; got "
                f"{m.walk_length}, {m.walk_dim}, {m.mixer_layers}, {m.walk_decay}"
            )
        if m.patch_size < 1:
            raise ValueError(f"model.patch_size must be >= 1; got {m.patch_size} (--patch-size)")
        if MODELS[m.name].one_hop and m.num_layers != 1:
            raise ValueError(
                f"{m.name} reads one hop of recent links: model.num_layers must be 1 "
                f"(--layers 1 --fanouts K); got {m.num_layers}"
            )
        if MODELS[m.name].pairs:
            if e.protocol != "tgb":
                raise ValueError(f"model {m.name} is ranked under TGB's protocol only; use --protocol tgb")
            if n.kind == "topk" and n.similarity == "decoder":
                raise ValueError(
                    f"model {m.name} scores pairs itself (no decoder of embeddings): "
                    "use --similarity dot or cosine with --neg topk"
                )
        if not 0 < m.window_ratio <= 1:
            raise ValueError(f"model.window_ratio must be in (0, 1]; got {m.window_ratio}")
        if e.protocol == "tgb" and e.negatives == "none":
            raise ValueError("eval.protocol 'tgb' ranks: eval.negatives must be 'all' or a count, not 'none'")
        if not t.lr > 0 or not t.temperature > 0 or not t.node_lr > 0:
            raise ValueError(
                f"train.lr, temperature and node_lr must be > 0; got {t.lr}, {t.temperature}, {t.node_lr}"
            )
        if t.task == "node" and MODELS[m.name].encoder is None:
            raise ValueError(
                f"train.task 'node' classifies embeddings: model {m.name!r} has none (--task link)"
            )
        if t.precision == "tf32" and not t.device.startswith("cuda"):
            raise ValueError(
                "train.precision tf32 needs a CUDA device (--device cuda, or --precision float32); "
                f"got {t.device!r}"
            )
        if t.threads is not None and t.threads < 1:
            raise ValueError(f"train.threads must be >= 1; got {t.threads}")
        if e.negatives not in ("all", "none") and (not isinstance(e.negatives, int) or e.negatives < 1):
            raise ValueError(f"eval.negatives must be 'all', 'none' or an integer >= 1; got {e.negatives!r}")
        if e.negatives == "none" and e.metric == "mrr":
            raise ValueError("eval.metric 'mrr' needs eval.negatives ('all' or a count), not 'none'")
        if not e.recall_ks or any(k < 1 for k in e.recall_ks):
            raise ValueError(f"eval.recall_ks must be integers >= 1; got {e.recall_ks}")
        if d.dataset is None and d.path is None:
            raise ValueError("data: give a built-in dataset or a path to a file of events")
        if d.max_events is not None and d.max_events < 1:
            raise ValueError(f"data.max_events must be >= 1; got {d.max_events}")
        return self


def default_config(model: str = "tgat") -> RunConfig:
    """The papers' settings for ``model``: those its registration declares (``ModelSpec.defaults``;
    ``configs/<model>.yaml`` holds the same, with comments)."""
    return merge(RunConfig(model=ModelConfig(name=model)), MODELS[model].defaults, f"model {model}")


def _section_from_dict(cls: type, values: dict[str, Any], where: str) -> Any:
    if not isinstance(values, dict):
        raise ValueError(f"{where} must be a mapping; got {type(values).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown setting {where}.{unknown[0]} (known: {', '.join(sorted(names))})")
    return values


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _coerce(value: Any, annotation: str, name: str, where: str) -> Any:
    """``value`` as the type ``annotation`` (a dataclass field's, as a string) names, or a
    ValueError naming the setting. Strings that spell numbers become numbers for float settings
    (PyYAML reads ``1e-3``, without a dot, as a string); booleans are not integers (``epochs: true``)."""
    kinds = [part.strip() for part in annotation.split("|")]
    if value is None:
        if "None" in kinds:
            return None
        raise ValueError(f"{where}: {name} must be set (got null)")
    for kind in kinds:
        if kind == "bool" and isinstance(value, bool):
            return value
        if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind == "float" and not isinstance(value, bool):
            if isinstance(value, int | float):
                return float(value)
            if isinstance(value, str) and _number(value) is not None:
                return _number(value)
        if kind == "str" and isinstance(value, str):
            return value
        if kind.startswith("list[") and isinstance(value, list | tuple):
            item = kind[len("list[") : -1]
            try:
                return [_coerce(v, item, f"{name}[{i}]", where) for i, v in enumerate(value)]
            except ValueError:
                continue
    if kinds == ["str"]:
        return value  # a choice: validate() names the allowed values
    if "str" in kinds and isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # a column index given as a number
    expected = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}
    wanted = " or ".join(
        expected.get(kind, "a list of " + kind[len("list[") : -1] + "s") for kind in kinds if kind != "None"
    )
    raise ValueError(f"{where}: {name} must be {wanted}; got {value!r} ({type(value).__name__})")


def merge(config: RunConfig, values: dict[str, Any], where: str = "config") -> RunConfig:
    """``config`` with the sections/keys of ``values`` (a nested dict, as in the YAML) replaced,
    each value checked against (and converted to) its setting's type."""
    _section_from_dict(RunConfig, values, where)
    sections = {}
    for section, section_values in values.items():
        current = getattr(config, section)
        _section_from_dict(type(current), section_values or {}, f"{where}: {section}")
        types = {f.name: str(f.type) for f in dataclasses.fields(current)}
        typed = {
            key: _coerce(value, types[key], f"{section}.{key}", where)
            for key, value in (section_values or {}).items()
        }
        sections[section] = dataclasses.replace(current, **typed)
    return dataclasses.replace(config, **sections)


def load_config(path: str | Path | None, model: str | None = None) -> RunConfig:
    """The defaults of ``model`` (or of the file's ``model.name``, else TGAT) updated by the YAML
    file at ``path`` (none when ``None``)."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path) as f:
                values = yaml.safe_load(f) or {}
        except OSError as err:
            raise ValueError(f"cannot read config {path}: {err.strerror}") from None
        except yaml.YAMLError as err:
            raise ValueError(f"config {path} is not valid YAML: {err}") from None
    file_model = (values.get("model") or {}).get("name") if isinstance(values, dict) else None
    config = default_config(model or file_model or "tgat")
    return merge(config, values, str(path))


def config_from_dict(values: dict[str, Any]) -> RunConfig:
    """The config a ``to_dict()`` (or a YAML file's content) describes."""
    return merge(default_config((values.get("model") or {}).get("name", "tgat")), values)


def apply_overrides(config: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """``config`` with ``{"section.key": value}`` overrides (``None`` values are skipped)."""
    nested: dict[str, dict[str, Any]] = {}
    for dotted, value in overrides.items():
        if value is None:
            continue
        section, key = dotted.split(".")
        nested.setdefault(section, {})[key] = value
    return merge(config, nested, "flag")


def save_config(config: RunConfig, path: str | Path) -> None:
    with open(path, "w") as f:
        yaml.safe_dump(config.to_dict(), f, sort_keys=False)
