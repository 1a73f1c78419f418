"""The public scoring API, ``LinkPredictor``, against the evaluator of ``--protocol tgb``: a run's
predictor, reset to the test split's start, ranks the test split to the metrics the run reported."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from dgl_tgnn import LinkPredictor
from dgl_tgnn.cli import main
from dgl_tgnn.events import EventStream
from dgl_tgnn.ranking import NegativeSets, rank_stream

QUICK = ["--max-events", "2000", "--epochs", "1", "--batch-size", "100", "--threads", "1", "--no-progress"]


def _train(tmp_path, *flags):
    result = CliRunner().invoke(
        main, ["train", "--protocol", "tgb", "--runs-dir", str(tmp_path), *QUICK, *flags]
    )
    assert result.exit_code == 0, result.output
    (run,) = tmp_path.iterdir()
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return run, json.loads(lines[-1])["final"]


def _rank_test(predictor: LinkPredictor, run, batch: int = 100) -> dict[str, float]:
    """The test split (TGB's: after the 0.85 time quantile) ranked through ``predictor`` in batches
    of ``batch`` events."""
    src, dst, t = predictor.stream_src, predictor.stream_dst, predictor.stream_t
    test = np.flatnonzero(t > np.quantile(t, 0.85))
    predictor.reset(until=float(t[test[0]]))
    stream = EventStream(*(torch.from_numpy(a) for a in (src, dst, t)), torch.from_numpy(test))
    negatives = NegativeSets.load(run / "negatives_test.npz")
    return rank_stream(predictor, stream, negatives, batch, [1, 10])


@pytest.mark.parametrize("model", ["tgn", "tgat"])
def test_a_loaded_predictor_ranks_the_test_split_as_the_run_did(tmp_path, model):
    flags = ["--model", model, "--node-embedding", "8", "--pair-history", "10", "--embed-dim", "16"]
    if model == "tgat":
        flags += ["--fanouts", "5,5", "--engine", "dense"]
    run, final = _train(tmp_path, *flags)
    predictor = LinkPredictor.load(run)
    got = _rank_test(predictor, run)
    for key in ("mrr", "recall@1", "recall@10"):
        assert got[key] == pytest.approx(final[f"test_{key}"], abs=1e-9), key
    # score: [B, C] float32, one row per source.
    stream = (predictor.stream_src, predictor.stream_dst, predictor.stream_t)
    src, dst, t = (torch.from_numpy(a[-50:]) for a in stream)
    predictor.reset(until=float(t[0]))
    candidates = torch.stack([dst, dst.roll(7)], dim=1)
    scores = predictor.score(src, t, candidates)
    assert scores.shape == (50, 2) and scores.dtype == torch.float32
    assert torch.isfinite(scores).all()


def test_edgebank_is_a_model_of_train_and_evaluate(tmp_path):
    run, final = _train(tmp_path, "--model", "edgebank")
    assert (run / "negatives_test.npz").exists() and not (run / "best.pt").exists()
    predictor = LinkPredictor.load(run)
    assert _rank_test(predictor, run)["mrr"] == pytest.approx(final["test_mrr"], abs=1e-12)
    evaluated = CliRunner().invoke(main, ["evaluate", str(run)])
    assert evaluated.exit_code == 0, evaluated.output
    assert f"{final['test_mrr']:.4f}" in evaluated.output


@pytest.mark.parametrize("model", ["edgebank", "tgn"])
def test_the_evaluation_batch_size_is_the_ranking_batch_of_train_and_evaluate(tmp_path, model):
    """``--eval-batch-size``: the test split scored in batches of that many events, each observed after
    it is scored (smaller batches see more recent events), in train and in evaluate."""
    flags = ["--model", model] + ([] if model == "edgebank" else ["--embed-dim", "16"])
    run, final = _train(tmp_path, *flags, "--eval-batch-size", "7")
    predictor = LinkPredictor.load(run)
    assert final["test_mrr"] == pytest.approx(_rank_test(predictor, run, 7)["mrr"], abs=1e-9)
    one = _rank_test(predictor, run, 1)["mrr"]
    assert one != pytest.approx(_rank_test(predictor, run, 100)["mrr"], abs=1e-4)  # the size matters
    evaluated = CliRunner().invoke(main, ["evaluate", str(run), "--eval-batch-size", "1"])
    assert evaluated.exit_code == 0, evaluated.output
    assert f"{one:.4f}" in evaluated.output
    refused = CliRunner().invoke(main, ["evaluate", str(run), "--eval-batch-size", "0"])
    assert refused.exit_code != 0 and "Traceback" not in refused.output
    assert refused.output.strip() == "Error: eval.batch_size must be an integer >= 1; got 0"


def test_score_refuses_mismatched_shapes(tmp_path):
    run, _ = _train(tmp_path, "--model", "tgn", "--embed-dim", "16")
    predictor = LinkPredictor.load(run)
    with pytest.raises(ValueError, match="candidates"):
        predictor.score(torch.tensor([0, 1]), torch.tensor([1.0, 2.0]), torch.tensor([3, 4]))
    assert np.all(np.diff(predictor.stream_t) >= 0)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--pair-history", "-1"], "pair_history must be >= 0"),
        (["--node-embedding", "-2"], "node_embedding and pair_history must be >= 0"),
        (["--eval-negs", "none"], "eval.protocol 'tgb' ranks"),
        (["--eval-batch-size", "0"], "eval.batch_size must be an integer >= 1; got 0"),
    ],
)
def test_bad_ranking_options_fail_in_one_line(tmp_path, flags, message):
    result = CliRunner().invoke(
        main, ["train", "--protocol", "tgb", "--runs-dir", str(tmp_path), *QUICK, *flags]
    )
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not any(tmp_path.iterdir())  # refused before any run directory


def test_load_refuses_what_is_not_a_finished_run(tmp_path):
    with pytest.raises(ValueError, match="not a run directory"):
        LinkPredictor.load(tmp_path)
    run, _ = _train(tmp_path / "runs", "--model", "tgn", "--embed-dim", "16")
    (run / "best.pt").unlink()
    with pytest.raises(ValueError, match=r"no best\.pt"):
        LinkPredictor.load(run)


def test_score_refuses_node_ids_out_of_range(tmp_path):
    run, _ = _train(tmp_path, "--model", "tgn", "--embed-dim", "16", "--pair-history", "5")
    predictor = LinkPredictor.load(run)
    n = predictor.num_nodes
    with pytest.raises(ValueError, match=rf"node ids must be in \[0, {n}\)"):
        predictor.score(torch.tensor([0]), torch.tensor([1.0]), torch.tensor([[n]]))
