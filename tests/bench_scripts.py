"""Runs a ``bench/`` script as a user would, its raw results written to a test's folder."""

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_bench(
    script: str, results_dir: Path, *args: str, timeout: int = 300, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """``python bench/<script> --results-dir results_dir *args`` (in ``cwd``), its output captured as
    text."""
    return subprocess.run(
        [sys.executable, str(BENCH / script), "--results-dir", str(results_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
