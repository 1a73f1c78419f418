"""bench/labor_poisson_rows.py: bad arguments are refused in one line before any work; on a small
built-in stream the three strategies' rows are counted, labor's hop-2 rows fewer than uniform's."""

import json

import pytest
from bench_scripts import run_bench


def _run(tmp_path, *args):
    return run_bench("labor_poisson_rows.py", tmp_path, *args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batches", "0"], "--batches and --cap must be >= 1, got 0 and 2.0"),
        (["--cap", "0.5"], "--batches and --cap must be >= 1, got 200 and 0.5"),
        (["--datasets", "wikipedia,nope"], "--datasets: unknown 'nope' (built-in: "),
    ],
)
def test_bad_arguments_are_refused_in_one_line(tmp_path, args, message):
    proc = _run(tmp_path, *args)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("labor_poisson_rows.py: error: ") and message in last
    assert "Traceback" not in proc.stderr and not list(tmp_path.iterdir())


def test_rows_of_each_strategy_are_counted_and_saved(tmp_path):
    proc = _run(tmp_path, "--datasets", "uci", "--batches", "5")
    assert proc.returncode == 0, proc.stderr
    (saved,) = tmp_path.iterdir()
    rows = {r["strategy"]: r for r in json.loads(saved.read_text())["rows"]}
    assert set(rows) == {"uniform", "labor", "poisson"}
    assert rows["labor"]["slots"] == rows["uniform"]["slots"]  # both take min(n, k) events a root
    assert rows["labor"]["hop2_rows"] < rows["uniform"]["hop2_rows"]  # shared numbers share events
