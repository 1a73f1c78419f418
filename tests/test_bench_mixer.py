"""bench/mixer_speed.py: a tiny run times both token mixings and saves them; bad arguments are refused
in one line, before any work."""

import json

import pytest
import torch
from bench_scripts import run_bench


def _run(tmp_path, *args):
    return run_bench("mixer_speed.py", tmp_path, *args, timeout=120)


def test_a_tiny_run_times_both_and_records_their_ratio(tmp_path):
    proc = _run(tmp_path, "--pairs", "3", "--tokens", "4", "--channels", "6", "--reps", "2", "--rounds", "2")
    assert proc.returncode == 0, proc.stderr
    (saved,) = tmp_path.iterdir()
    rows = json.loads(saved.read_text())["rows"]
    assert rows["shape"] == [3, 4, 6]
    assert {name: len(ms) for name, ms in rows["ms_per_round"].items()} == {"transposed": 2, "in_place": 2}
    best = rows["best_ms"]
    assert rows["transposed_over_in_place"] == pytest.approx(best["transposed"] / best["in_place"])
    assert rows["max_abs_difference"] < 1e-5  # the two are the same function
    assert "transposed / in_place" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pairs", "0"], "--pairs must be >= 1; got 0"),
        (["--reps", "-1"], "--reps must be >= 1; got -1"),
        pytest.param(
            ["--device", "cuda"],
            "--device cuda: no CUDA device is visible",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible"),
        ),
    ],
)
def test_bad_arguments_are_refused_in_one_line(tmp_path, args, message):
    proc = _run(tmp_path, *args)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("mixer_speed.py: error: ") and message in last
    assert "Traceback" not in proc.stderr and not list(tmp_path.iterdir())
