"""Raw results of a benchmark run, saved as JSON under ``bench/results/`` (one file per run).

Every script of ``bench/`` calls :func:`save_results` once its measurements are done (its printed
output stays as it was). The file, ``<script>-<UTC time>.json``, holds::

    {"script": "bench/<script>.py", "machine": "...", "date": "2026-12-06T03:40:12+00:00",
     "command": "python bench/<script>.py ...", "rows": ...}

``rows`` is what the script measured, as its ``--json`` output has it. docs/benchmarks.md quotes
the current figure of each benchmark; these files keep every run's numbers.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from machine import describe

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def add_results_dir(parser: argparse.ArgumentParser) -> None:
    """Adds ``--results-dir`` (default ``bench/results/``) to a script's arguments."""
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help="directory for this run's raw results as JSON (default: bench/results/)",
    )


def save_results(script: str, rows: Any, directory: Path) -> Path:
    """Writes ``rows`` (JSON-serialisable) with the machine, the UTC date and the command line to a new
    file ``directory/<script>-<YYYYmmddTHHMMSSZ>.json`` (``-2``, ``-3``... appended when a run of the
    same second has one) and returns its path, also named on stderr."""
    now = datetime.now(timezone.utc)
    record = {
        "script": f"bench/{script}.py",
        "machine": describe(),
        "date": now.isoformat(timespec="seconds"),
        "command": shlex.join(["python", *sys.argv]),
        "rows": rows,
    }
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{script}-{now:%Y%m%dT%H%M%SZ}"
    suffix = 1
    while True:
        path = directory / (f"{stem}.json" if suffix == 1 else f"{stem}-{suffix}.json")
        try:
            with path.open("x") as f:
                json.dump(record, f, indent=1)
                f.write("\n")
        except FileExistsError:
            suffix += 1
            continue
        print(f"raw results: {path}", file=sys.stderr)
        return path
