"""bench/ranking.py end to end: one small run, its JSON line and its epoch log; a bad --log-dir."""

import json

from bench_scripts import run_bench

SMALL = ["--models", "tgn", "--settings", "uniform", "--seeds", "0", "--max-events", "3000"]


def test_a_run_writes_its_record_and_its_epoch_lines_as_they_come(tmp_path):
    logs, results = tmp_path / "logs", tmp_path / "results"
    work = tmp_path / "work"
    work.mkdir()
    flags = ["--set", "train.epochs=2", "--log-dir", str(logs)]
    proc = run_bench("ranking.py", results, *SMALL, *flags, cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert not any(work.iterdir())  # nothing written where it ran: --out defaults into --results-dir
    (out,) = results.glob("ranking-*.jsonl")
    assert f"finished runs: {out}" in proc.stderr
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["status"] == "ok" and len(record["val_mrr"]) == 2
    lines = (logs / "wikipedia-tgn-uniform-s0.log").read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "epoch 1",
        "epoch 2",
        f"test (best epoch {record['metrics']['best_epoch']})",
    ]
    assert f"MRR {record['metrics']['test_mrr']:.4f}" in lines[-1]


def test_a_log_dir_that_is_a_file_is_refused_in_one_line(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("")
    proc = run_bench("ranking.py", tmp_path / "results", *SMALL, "--out", str(tmp_path / "runs.jsonl"),
                     "--log-dir", str(taken))  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"ranking.py: error: --log-dir {taken}: cannot make this folder (File exists)"
    )
    assert "Traceback" not in proc.stderr and not (tmp_path / "runs.jsonl").exists()
