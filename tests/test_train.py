"""Trainer: a short run end to end, resume after an interruption equals an uninterrupted run
(bit for bit on CPU with fixed threads), Ctrl-C, TGN's memory protocol, visible-batch semantics."""

import json
import os
import signal

import pytest
import torch

from dgl_tgnn import run_dir as rd
from dgl_tgnn.config import apply_overrides, default_config
from dgl_tgnn.train import Trainer, evaluate_checkpoint, load_events

pytest.importorskip("dgl")

TIMING = ("seconds", "peak_memory")


def tiny(model: str, **overrides):
    """A small, fast config on the first 1,500 Wikipedia events."""
    settings = {
        "data.max_events": 1500,
        "train.epochs": 2,
        "train.batch_size": 100,
        "train.threads": 1,
        "model.engine": "dense",
        "model.embed_dim": 16,
        "model.time_dim": 16,
        "model.memory_dim": 16,
        "model.fanouts": [5, 5] if model == "tgat" else [5],
        "eval.negatives": 20,
    }
    settings.update(overrides)
    return apply_overrides(default_config(model), settings)


@pytest.fixture(scope="module")
def events():
    return load_events(tiny("tgat").data)


def comparable(records):
    return [{k: v for k, v in r.items() if not any(word in k for word in TIMING)} for r in records]


def run(config, path, events, **fit_args):
    path.mkdir()
    trainer = Trainer(config, path, dataset=events, progress=False, log=lambda line: None)
    return trainer, trainer.fit(**fit_args)


@pytest.mark.parametrize(
    "model, overrides",
    [
        ("tgat", {}),  # uniform neighbour sampling: the sampler's call counter must be restored
        ("tgn", {"negatives.kind": "historical", "train.visible_batch": False}),  # memory + pending
        # hard negatives: the candidate table between refreshes, the refresh counter, the generator
        ("tgn", {"negatives.kind": "topk", "negatives.k": 5, "negatives.refresh": 2, "negatives.n_rand": 1}),
    ],
)
def test_resume_after_interrupt_equals_uninterrupted(tmp_path, events, model, overrides):
    config = tiny(model, **overrides)
    _, expected = run(config, tmp_path / "a", events)
    trainer, interrupted = run(config, tmp_path / "b", events, stop_after_batches=3)
    assert interrupted is None and (tmp_path / "b" / rd.CHECKPOINT).exists()
    assert trainer.epoch == 0 and trainer.batch == 3
    resumed = Trainer.resume(tmp_path / "b", progress=False, log=lambda line: None).fit()
    assert resumed == expected
    a = torch.load(tmp_path / "a" / rd.BEST, weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / rd.BEST, weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert comparable(rd.read_metrics(tmp_path / "a")) == comparable(rd.read_metrics(tmp_path / "b"))


def test_resume_without_the_sampler_counter_differs(tmp_path, events):
    """The equality above is not vacuous: losing one piece of state changes the result."""
    config = tiny("tgat", **{"train.epochs": 1})
    _, expected = run(config, tmp_path / "a", events)
    run(config, tmp_path / "b", events, stop_after_batches=3)
    trainer = Trainer.resume(tmp_path / "b", progress=False, log=lambda line: None)
    trainer.neighbourhoods.load_state_dict({"calls": 0})
    assert trainer.fit() != expected


def test_resume_of_a_finished_run_returns_its_recorded_test_without_evaluating(tmp_path, events):
    config = tiny("tgat", **{"train.epochs": 1})
    _, expected = run(config, tmp_path / "run", events)
    recorded = (tmp_path / "run" / rd.METRICS).read_text()
    trainer = Trainer.resume(tmp_path / "run", progress=False, log=lambda line: None)

    def evaluate_again():
        raise AssertionError("the finished run's test split was evaluated again")

    trainer._final_test = evaluate_again
    assert trainer.fit() == expected
    assert (tmp_path / "run" / rd.METRICS).read_text() == recorded


def test_resume_of_a_run_killed_before_its_test_runs_the_test(tmp_path, events):
    """Training over but no final line (killed during the test): the resume evaluates it."""
    config = tiny("tgat", **{"train.epochs": 1})
    _, expected = run(config, tmp_path / "run", events)
    records = rd.read_metrics(tmp_path / "run")
    assert "final" in records[-1]
    rd.rewrite_metrics(tmp_path / "run", records[:-1])
    resumed = Trainer.resume(tmp_path / "run", progress=False, log=lambda line: None)
    assert resumed.finished is None
    assert resumed.fit() == expected
    assert rd.read_metrics(tmp_path / "run") == records


def test_tgn_s_protocol_evaluates_in_batches_of_the_evaluation_batch_size(events):
    """``eval.batch_size`` sets the evaluator's batches (memory updated after each); unset, the
    training batch (tiny: 100). Under TGB's protocol, tests/test_link_predictor.py checks the values."""
    sizes = []
    for overrides in ({"eval.batch_size": 7}, {}):
        config = tiny("tgn", **overrides)
        trainer = Trainer(config, None, dataset=events, progress=False, log=lambda line: None)
        sizes.append(trainer.evaluator.batch_size)
    assert sizes == [7, 100]


def test_ctrl_c_saves_a_checkpoint(tmp_path, events):
    config = tiny("tgat", **{"train.epochs": 1})
    (tmp_path / "run").mkdir()
    trainer = Trainer(config, tmp_path / "run", dataset=events, progress=False, log=lambda line: None)
    step = trainer._train_batch
    calls = []

    def step_then_ctrl_c(batch):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return step(batch)

    trainer._train_batch = step_then_ctrl_c
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN under nohup
    assert trainer.fit() is None
    assert trainer.batch == 2 and (tmp_path / "run" / rd.CHECKPOINT).exists()
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler is back


def test_run_dir_contents_and_evaluate_reproduces_the_final_test(tmp_path, events):
    config = tiny("tgn")
    _, final = run(config, tmp_path / "run", events)
    lines = (tmp_path / "run" / rd.METRICS).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records[:-1]] == [1, 2] and records[-1] == {"final": final}
    for key in (
        "loss",
        "val_ap",
        "val_auc",
        "val_mrr",
        "val_recall@1",
        "val_recall@10",
        "val_new_ap",
        "test_ap",
        "test_mrr",
        "train_seconds",
        "sampler_seconds",
        "refresh_seconds",
        "epoch_seconds",
        "peak_memory_mb",
    ):
        assert key in records[0], key
    assert (tmp_path / "run" / rd.CURVES).stat().st_size > 0
    # The saved best model and its post-validation memory give the same test metrics again.
    again = evaluate_checkpoint(tmp_path / "run", split="test", ranking=True)
    assert again == {k: v for k, v in final.items() if k != "best_epoch"}
    # AP and AUC do not depend on whether the ranking metrics are computed too.
    fast = evaluate_checkpoint(tmp_path / "run", split="test", ranking=False)
    assert fast["test_ap"] == final["test_ap"] and "test_mrr" not in fast


def test_early_stopping_keeps_the_best_epoch(tmp_path, events):
    # lr 0: the weights never change, so no epoch after the first improves validation AP.
    config = tiny("tgat", **{"train.epochs": 10, "train.patience": 2, "train.lr": 1e-12})
    trainer, final = run(config, tmp_path / "run", events)
    assert len(trainer.history) <= 3 and final["best_epoch"] == 1


def test_val_every_validates_every_nth_epoch_and_the_last(tmp_path, events):
    config = tiny("tgat", **{"train.epochs": 3, "train.val_every": 2})
    trainer, final = run(config, tmp_path / "run", events)
    # (val, test) metrics at epochs 2 and 3 only
    assert [("val_mrr" in r, "test_mrr" in r) for r in trainer.history] == [
        (False, False),
        (True, True),
        (True, True),
    ]
    assert trainer.history[0]["eval_seconds"] < trainer.history[1]["eval_seconds"]
    assert final["best_epoch"] in (2, 3)
    best = torch.load(tmp_path / "run" / rd.BEST, weights_only=False)
    assert best["epoch"] == final["best_epoch"]
    lines = (tmp_path / "run" / rd.METRICS).read_text().splitlines()
    assert ["val_ap" in json.loads(line) for line in lines[:-1]] == [False, True, True]


def test_patience_counts_validations(tmp_path, events):
    # lr ~0: no validation after the first improves; with patience 1, training stops at the second.
    config = tiny("tgat", **{"train.epochs": 9, "train.val_every": 3, "train.patience": 1, "train.lr": 1e-12})
    trainer, final = run(config, tmp_path / "run", events)
    assert final["best_epoch"] == 3 and len(trainer.history) == 6
    assert [r["epoch"] for r in trainer.history if "val_ap" in r] == [3, 6]


def test_tgn_memory_is_carried_into_evaluation(events):
    """Evaluating the validation split from the memory after training differs from an empty memory."""
    trainer = Trainer(
        tiny("tgn", **{"train.epochs": 1}), None, dataset=events, progress=False, log=lambda line: None
    )
    trainer.train_epoch(None)
    carried = trainer.evaluator.evaluate(trainer.streams["val"], ranking=False)
    trainer.model.encoder.reset_memory()
    empty = trainer.evaluator.evaluate(trainer.streams["val"], ranking=False)
    assert carried != empty


def test_invisible_batch_hides_the_batch_from_neighbourhoods(events):
    trainer = Trainer(
        tiny("tgn", **{"train.visible_batch": False}),
        None,
        dataset=events,
        progress=False,
        log=lambda line: None,
    )
    batch = trainer.streams["train"].batch(100, 200)
    roots = torch.cat([batch.src, batch.dst])
    times = batch.t.repeat(2)
    hidden = trainer.neighbourhoods(roots, times, float(batch.t[0]))[0]
    assert (hidden.nbr_eids[hidden.mask] < 100).all(), "only events before the batch"
    assert torch.equal(hidden.root_times, times)
    trainer.neighbourhoods.visible_batch = True
    visible = trainer.neighbourhoods(roots, times, float(batch.t[0]))[0]
    assert (visible.nbr_eids[visible.mask] >= 100).any(), "earlier events of the batch are visible"
    assert (
        visible.nbr_times[visible.mask] < visible.root_times[:, None].expand_as(visible.mask)[visible.mask]
    ).all()


def test_candidate_pools(events):
    """Negatives come from the item side of bipartite Wikipedia, or from all nodes with candidates=all;
    training never draws the held-out new nodes."""
    items = set(events.dst_candidates.tolist())
    assert len(items) < events.num_nodes  # bipartite: users are not candidates
    for pool, expected in (("destinations", items), ("all", set(range(events.num_nodes)))):
        trainer = Trainer(
            tiny("tgat", **{"data.candidates": pool}),
            None,
            dataset=events,
            progress=False,
            log=lambda line: None,
        )
        new = set(trainer.data.split.new_nodes.tolist())
        assert set(trainer.data.train_candidates.tolist()) == expected - new
        assert set(trainer.evaluator.candidates.tolist()) == expected


def test_absolute_time_origin_does_not_matter(events):
    """Unix-second streams train like streams starting at 0 (TGN's memory counts from time 0)."""
    import dataclasses

    shifted = dataclasses.replace(events, t=events.t + 1.1e9)
    results = []
    for ds in (events, shifted):
        trainer = Trainer(
            tiny("tgn", **{"train.epochs": 1}), None, dataset=ds, progress=False, log=lambda line: None
        )
        trainer.train_epoch()
        results.append(trainer.evaluator.evaluate(trainer.streams["val"], ranking=False))
    assert results[0] == results[1]


@pytest.mark.parametrize(("dedup", "expected"), [("auto", True), ("always", True), ("never", False)])
def test_dedup_setting_reaches_the_samplers(events, dedup, expected):
    """auto deduplicates on CPU (this test's device); the evaluator samples as training does."""
    trainer = Trainer(tiny("tgat", **{"model.dedup": dedup}), None, dataset=events, progress=False)
    assert trainer.neighbourhoods.sampler.dedup is expected
    assert trainer.evaluator._embedder(0).neighbourhoods.sampler.dedup is expected


def test_topk_queries_are_the_sources_embeddings_of_the_training_pass(events) -> None:
    """The hard negatives' queries: the batch's source embeddings as the model computes them before
    the step (dropout off, so that train and eval embeddings agree), detached."""
    config = tiny("tgn", **{"negatives.kind": "topk", "negatives.k": 5, "negatives.warmup_epochs": 0})
    config = apply_overrides(config, {"model.dropout": 0.0})
    trainer = Trainer(config, None, dataset=events, progress=False, log=lambda line: None)
    seen = []
    sample = trainer.negatives.sample

    def spy(batch, queries=None):
        negatives = sample(batch, queries)
        seen.append(queries)
        return negatives

    trainer.negatives.sample = spy
    batches = iter(trainer.streams["train"].batches(config.train.batch_size))
    for _ in range(3):
        batch = next(batches)
        t0 = float(batch.t[0])
        with torch.no_grad():
            expected = trainer.embedder(batch.src, batch.t, t0)
        trainer._train_batch(batch)
        assert not seen[-1].requires_grad
        torch.testing.assert_close(seen[-1], expected, rtol=1e-5, atol=1e-6)
