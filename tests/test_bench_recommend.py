"""bench/recommend_speed.py: a tiny run times exact, two-stage and the baseline, records recall and
one two-stage query's operator count and host time by step."""

import json

from bench_scripts import run_bench

from dgl_tgnn.predictor import STAGES


def test_a_tiny_run_records_every_method_and_one_query_s_calls(tmp_path):
    args = ["--pools", "60", "--users", "12", "--events-per-user", "4", "--embed-dim", "8", "--k", "5"]
    args += ["--batch", "6", "--reps", "2", "--threads", "1", "--shortlist", "60"]
    proc = run_bench("recommend_speed.py", tmp_path, *args, timeout=240)
    assert proc.returncode == 0, proc.stderr
    (saved,) = tmp_path.iterdir()
    rows = {row["method"]: row for row in json.loads(saved.read_text())["rows"]}
    assert set(rows) == {"exact", "two-stage", "baseline"}
    two_stage = rows["two-stage"]
    assert two_stage["recall_at_k"] == 1.0  # a shortlist of the whole pool re-ranks every candidate
    assert two_stage["torch_ops"] >= 1 and "kernel_launches" not in two_stage  # (CPU: no profile)
    assert "one two-stage query: torch_ops" in proc.stdout
    steps = two_stage["host_ms_by_step"]  # every step's profiler range was seen, in order
    assert list(steps) == list(STAGES) and all(ms > 0 for ms in steps.values()), steps
    assert "its host ms by step: memory" in proc.stdout
