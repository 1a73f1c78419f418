"""bench/precision_speed.py: bad --precisions and --models are refused in one line, before any work."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "precision_speed.py"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--precisions", "bf16,float32"], "--precisions: names among float32, tf32, bf16, float32 first"),
        (["--precisions", "float32,fp16"], "--precisions: names among float32, tf32, bf16, float32 first"),
        (["--models", "tpnet,tgn"], "--models: unknown 'tgn' (choose from dygformer, tpnet)"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(tmp_path, args, message):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--results-dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("precision_speed.py: error: ") and message in last
    assert "Traceback" not in proc.stderr and not list(tmp_path.iterdir())
