"""bench/accuracy.py end to end: parallel child runs, one JSON line each, resume, failed runs."""

import json
import math
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "accuracy.py"
SMALL = ["--datasets", "uci", "--models", "tgn", "--epochs", "1", "--jobs", "2", "--threads", "1"]


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_runs_write_finite_metrics_and_a_second_invocation_skips_them(tmp_path):
    out, results = tmp_path / "acc.jsonl", tmp_path / "results"
    args = [*SMALL, "--settings", "uniform,topk5", "--max-events", "3000", "--out", str(out)]
    first = run_script(*args, "--results-dir", str(results))
    assert first.returncode == 0, first.stderr
    records = read_lines(out)
    # The run's raw results: one JSON file named by the script and the UTC time, with the same runs.
    [saved_path] = results.glob("accuracy-*.json")
    saved = json.loads(saved_path.read_text())
    assert saved["script"] == "bench/accuracy.py" and saved["machine"] and saved["date"]
    assert saved["command"].startswith("python ") and "--max-events 3000" in saved["command"]
    setting = lambda r: r["setting"]  # noqa: E731
    assert sorted(saved["rows"]["runs"], key=setting) == sorted(records, key=setting)
    assert sorted(r["setting"] for r in records) == ["topk5", "uniform"]
    for r in records:
        assert r["status"] == "ok", r.get("stderr_tail")
        assert (r["dataset"], r["model"], r["epochs"], r["max_events"]) == ("uci", "tgn", 1, 3000)
        # uci's 1,899 nodes are all candidates (<= 2,000): ranked against every one of them.
        assert (r["eval_negatives"], r["candidates"], r["events"]) == ("all", 1899, 3000)
        for key in ("test_ap", "test_new_ap", "test_mrr", "test_recall@1"):
            value = r["metrics"][key]
            assert math.isfinite(value) and 0 <= value <= 1, (key, value)
        assert r["metrics"]["best_epoch"] == 1
    # The markdown tables hold both settings' transductive AP, as in the JSON lines.
    by_setting = {r["setting"]: r["metrics"]["test_ap"] for r in records}
    row = f"| uci | TGN | {by_setting['uniform']:.3f} | {by_setting['topk5']:.3f} |"
    assert row in first.stdout.splitlines()

    second = run_script(*args, "--json", "--results-dir", str(results))
    assert second.returncode == 0, second.stderr
    assert "2 already done" in second.stderr and "running 0" in second.stderr
    assert read_lines(out) == records  # nothing rerun, nothing appended
    # The same records (the JSON lists runs in table order, the file in order of completion).
    by_key = sorted(records, key=lambda r: r["setting"])
    assert sorted(json.loads(second.stdout)["runs"], key=lambda r: r["setting"]) == by_key


def test_a_failing_run_is_recorded_as_failed_and_retried(tmp_path):
    out = tmp_path / "acc.jsonl"
    # 2 events are too few to split: the child raises; the script goes on and reports it.
    args = [*SMALL, "--settings", "uniform", "--max-events", "2", "--out", str(out)]
    args += ["--results-dir", str(tmp_path / "results")]
    first = run_script(*args)
    assert first.returncode == 0, first.stderr
    [record] = read_lines(out)
    assert record["status"] == "failed"
    assert record["error"].startswith("ValueError: dataset 'uci' (2 events) is too small to split")
    assert "| uci | TGN | failed |" in first.stdout.splitlines()
    # Failed runs are not "done": the next invocation tries again.
    second = run_script(*args)
    assert "0 already done" in second.stderr and "running 1" in second.stderr
    assert len(read_lines(out)) == 2
