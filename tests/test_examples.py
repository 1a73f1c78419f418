"""examples/: each script runs on a small slice of the built-in wikipedia in a child process, and what
it prints makes sense (metrics in range, better than chance)."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dgl_tgnn.nn.attention import dgl_available

ROOT = Path(__file__).resolve().parents[1]


def run_example(name: str, *args: str) -> str:
    """The stdout of ``python examples/<name> args...`` (the checkout's dgl_tgnn first on the path)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_tgn_train_learns_on_a_slice() -> None:
    out = run_example("tgn_train.py", "--max-events", "3000", "--epochs", "1", "--threads", "1")
    [loss] = re.findall(r"^epoch 1: loss ([0-9.]+), val AP [0-9.]+, val MRR [0-9.]+", out, re.MULTILINE)
    assert math.isfinite(float(loss)), out
    [(ap, mrr)] = re.findall(r"^test AP ([0-9.]+), test MRR ([0-9.]+)$", out, re.MULTILINE)
    # AP against one uniform negative per positive: 0.5 is chance. MRR among 20 negatives: >= 1/21.
    assert 0.6 < float(ap) <= 1, out
    assert 1 / 21 <= float(mrr) <= 1, out


@pytest.mark.skipif(not dgl_available(), reason="needs DGL")
def test_sampler_topk_beats_a_random_guess() -> None:
    out = run_example("sampler_topk.py", "--max-events", "5000", "--queries", "200", "--k", "10")
    [(hit, chance)] = re.findall(r"^hit@10 ([0-9.]+) \(random guess ([0-9.]+)\)$", out, re.MULTILINE)
    assert float(chance) == pytest.approx(10 / 1000)  # wikipedia's 1,000 pages
    assert 10 * float(chance) < float(hit) <= 1, out
