"""Run configuration: dataclasses that round-trip through YAML (``configs/*.yaml``).

A config has five sections, ``data``, ``model``, ``negatives``, ``train`` and ``eval``. Loading
starts from the paper defaults of the chosen model (:func:`default_config`), applies the file,
then the command-line flags (:func:`apply_overrides`), so flags override the file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dgl_tgnn.losses import LOSSES
from dgl_tgnn.negatives import NEGATIVES, SIMILARITIES

MODELS = ("tgat", "tgn", "edgebank")
PROTOCOLS = ("tgn", "tgb")
DEDUP = ("auto", "always", "never")


@dataclass
class DataConfig:
    """Which events, and how they are split (chronologically, as in TGN)."""

    dataset: str | None = "wikipedia"  # a built-in name (``dgl-tgnn datasets``); ignored when path is set
    path: str | None = None  # a file of events (csv, TGN ml_*.csv, edge list, TGB edge list)
    format: str | None = None  # file format, guessed from the file when None
    # csv columns (header names or 0-based indices as digits), delimiter (" ": whitespace) and
    # header line: guessed from the file when None. A run's config.yaml holds what was read.
    src_col: str | None = None
    dst_col: str | None = None
    time_col: str | None = None
    feature_cols: list[str] | None = None
    delimiter: str | None = None
    header: bool | None = None
    keep_ids: bool = False  # integer node ids are rows as they are (num_nodes = max id + 1), not re-indexed
    max_events: int | None = None  # keep only the first N events (quick runs and tests)
    features: bool = True  # use the dataset's node/edge features (False: featureless, as in peer benchmarks)
    val_ratio: float = 0.15
    test_ratio: float = 0.15
    new_node_ratio: float = 0.1
    # Negative destinations (training and evaluation) are drawn from "destinations" (the nodes that
    # can be destinations: the item side of bipartite data; TGN's protocol) or from "all" nodes
    # (what TGLite's examples do; easier negatives on bipartite data).
    candidates: str = "destinations"


@dataclass
class ModelConfig:
    """Encoder and decoder sizes (TGAT: Xu et al. 2020; TGN: Rossi et al. 2020)."""

    name: str = "tgat"
    embed_dim: int = 100
    time_dim: int = 100
    num_layers: int = 2
    num_heads: int = 2
    dropout: float = 0.1
    fanouts: list[int] = field(default_factory=lambda: [10, 10])
    strategy: str = "uniform"  # neighbour sampling: "uniform" or "recent"
    # Sample and embed each distinct (node, time) of a deeper hop once (TemporalSampler(dedup=True)):
    # "always", "never", or "auto" = on CPU only (TGAT epochs 1.55x faster there; on a GPU, where a
    # batch costs its kernel launches, the extra sorting made TGAT epochs 1.5x slower).
    dedup: str = "auto"
    memory_dim: int = 100  # TGN only
    message: str = "identity"  # TGN only: "identity" or "mlp"
    aggregator: str = "last"  # TGN only: "last" or "mean"
    updater: str = "gru"  # TGN only: "gru" or "rnn"
    decoder: str = "mlp"  # "mlp" or "dot"
    engine: str = "auto"  # attention engine: "dense", "dgl" or "auto"
    # "fixed" cos(w dt + b) at TGAT's initial w, b, or "learnable" w, b (the papers). With learnable w,
    # Adam's steps move w * dt by radians per step for dt of days in seconds: on uci TGN's test AP
    # swung between 0.66 and 0.84 over 5 epochs, against a steady 0.91 fixed (bench/RESULTS.md).
    time_encoding: str = "fixed"
    # A learnable identity vector of this width per node, appended to its features (0: none). Without
    # it a featureless node is anonymous: the models rank busy destinations, not this source's ones.
    node_embedding: int = 0
    # Pair features from the source's last N events scored by a small MLP (0: none): whether, how
    # often and how recently the source met the candidate (dgl_tgnn/pair_features.py).
    pair_history: int = 0
    # Weight of an auxiliary link loss training a dot-product head (two linear maps of the detached
    # embeddings, so the link model trains as without it) beside an MLP decoder (0: none): what
    # LinkPredictor.recommend(shortlist=S) retrieves with before re-ranking with the decoder.
    dot_head: float = 0.0
    edgebank_mode: str = "unlimited"  # edgebank: "unlimited" or "window"
    window_ratio: float = 0.15  # edgebank "window": the window as a fraction of the training span


@dataclass
class NegativeConfig:
    """Training negatives. ``topk`` draws ``n_hard`` hard + ``n_rand`` uniform negatives per event;
    every other kind draws ``n_hard + n_rand`` negatives of its kind."""

    kind: str = "uniform"
    k: int = 50
    # Full table refresh every 10 batches; each batch's embeddings update the table in between.
    # The paper refreshes every batch (1): about 2x the uniform epoch, against 1.1-1.5x with 10
    # (bench/train_speed.py, bench/RESULTS.md).
    refresh: int = 10
    warmup_epochs: int = 0
    n_hard: int = 1
    n_rand: int = 0
    similarity: str = "dot"
    exclude_known: bool = False


@dataclass
class TrainConfig:
    """Optimisation and the training loop."""

    epochs: int = 50
    batch_size: int = 200
    lr: float = 1e-4
    loss: str = "bce"
    temperature: float = 1.0  # InfoNCE temperature
    patience: int = 5  # epochs without a better validation metric before stopping
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None  # torch and sampler CPU threads (None: torch's default)
    visible_batch: bool = True  # neighbours may be earlier events of the same batch (TGN's original code)
    runs_dir: str = "runs"


@dataclass
class EvalConfig:
    """Evaluation: AP/AUC against one seeded uniform negative per positive, MRR/Recall@k against
    ``negatives`` destinations per positive (``"all"`` candidates, a seeded sample of that many, or
    ``"none"``: no ranking metrics)."""

    # "tgn": AP/AUC against one uniform negative, TGN's split with new nodes held out; "tgb": TGB's
    # protocol (dgl_tgnn/ranking.py): split at 0.70 / 0.85, each positive ranked against its negative
    # set through LinkPredictor, early stopping on validation MRR, test evaluated once (best epoch).
    protocol: str = "tgn"
    negatives: str | int = "all"
    recall_ks: list[int] = field(default_factory=lambda: [1, 10])
    metric: str = "ap"  # early stopping on validation "ap" or "mrr"
    seed: int = 0
    test_every_epoch: bool = True  # also evaluate the test split after every epoch


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    negatives: NegativeConfig = field(default_factory=NegativeConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> RunConfig:
        """Raises ValueError naming the first bad setting; returns self."""
        m, n, t, e, d = self.model, self.negatives, self.train, self.eval, self.data
        choices = [
            ("data.candidates", d.candidates, ("destinations", "all")),
            ("model.name", m.name, MODELS),
            ("model.strategy", m.strategy, ("uniform", "recent", "labor")),
            ("model.message", m.message, ("identity", "mlp")),
            ("model.aggregator", m.aggregator, ("last", "mean")),
            ("model.updater", m.updater, ("gru", "rnn")),
            ("model.decoder", m.decoder, ("mlp", "dot")),
            ("model.engine", m.engine, ("auto", "dense", "dgl")),
            ("model.dedup", m.dedup, DEDUP),
            ("model.time_encoding", m.time_encoding, ("fixed", "learnable")),
            ("negatives.kind", n.kind, NEGATIVES),
            ("negatives.similarity", n.similarity, SIMILARITIES),
            ("train.loss", t.loss, LOSSES),
            ("eval.metric", e.metric, ("ap", "mrr")),
            ("eval.protocol", e.protocol, PROTOCOLS),
            ("model.edgebank_mode", m.edgebank_mode, ("unlimited", "window")),
        ]
        for name, value, allowed in choices:
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        positive = [
            ("train.epochs", t.epochs),
            ("train.batch_size", t.batch_size),
            ("train.patience", t.patience),
            ("model.embed_dim", m.embed_dim),
            ("model.time_dim", m.time_dim),
            ("model.num_heads", m.num_heads),
            ("model.num_layers", m.num_layers),
            ("negatives.k", n.k),
            ("negatives.refresh", n.refresh),
        ]
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
        if not 0 < m.window_ratio <= 1:
            raise ValueError(f"model.window_ratio must be in (0, 1]; got {m.window_ratio}")
        if e.protocol == "tgb" and e.negatives == "none":
            raise ValueError("eval.protocol 'tgb' ranks: eval.negatives must be 'all' or a count, not 'none'")
        if not t.lr > 0 or not t.temperature > 0:
            raise ValueError(f"train.lr and train.temperature must be > 0; got {t.lr}, {t.temperature}")
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
    """The papers' settings for ``model`` (``configs/<model>.yaml`` holds the same, with comments)."""
    if model == "tgat":
        # TGAT: 2 attention layers of 2 heads, 10 uniformly sampled neighbours per hop.
        return RunConfig(model=ModelConfig(name="tgat", num_layers=2, fanouts=[10, 10], strategy="uniform"))
    if model == "edgebank":
        # EdgeBank: no parameters; ranked under TGB's protocol.
        return RunConfig(model=ModelConfig(name="edgebank"), eval=EvalConfig(protocol="tgb", metric="mrr"))
    if model == "tgn":
        # TGN-attn: memory 100 (GRU, identity messages, last aggregator), 1 layer, 10 recent neighbours.
        return RunConfig(
            model=ModelConfig(name="tgn", num_layers=1, fanouts=[10], strategy="recent", memory_dim=100)
        )
    raise ValueError(f"model must be one of {', '.join(MODELS)}; got {model!r}")


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
