"""Training on a busy machine: one epoch of ``dgl-tgnn train --dataset uci --model tgn --epochs 1
--eval-negs none`` on a quiet machine and with a competing process busy on one core, for the
default command and for the thread settings it had before (issue 17, item 8).

Each configuration runs the real command line in a fresh process; the competitor is a Python busy
loop started by this script. Configurations alternate within each round so that other load on a
shared machine falls on all of them alike. Reports ``train_seconds`` of the epoch (from the run's
metrics.jsonl) and the busy/quiet ratio per configuration.

    python bench/busy_machine.py [--rounds 1] [--max-events N] [--timeout 600]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {
    # today's default: one torch thread while another process keeps a core busy (BusyMachineThreads)
    "default": [],
    # before: the default thread count (2 on 2 cores) throughout, as an explicit --threads keeps it
    "fixed 2 threads (before)": ["--threads", "2"],
}
COMMAND = [
    "train",
    "--dataset",
    "uci",
    "--model",
    "tgn",
    "--epochs",
    "1",
    "--eval-negs",
    "none",
    "--no-progress",
]


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def epoch_seconds(flags: list[str], max_events: int | None, timeout: float) -> float:
    """``train_seconds`` of one epoch of COMMAND in a fresh process (inf when past ``timeout``)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    with tempfile.TemporaryDirectory() as runs:
        extra = ["--max-events", str(max_events)] if max_events else []
        cmd = [sys.executable, "-m", "dgl_tgnn", *COMMAND, *flags, *extra, "--runs-dir", runs]
        try:
            subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return float("inf")
        (run,) = Path(runs).iterdir()
        first = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
        return float(first["train_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--max-events", type=int, default=None, help="quick runs on a prefix of uci")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per epoch run")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import describe
    from record import add_results_dir, save_results

    add_results_dir(parser)
    args = parser.parse_args()

    print(describe())
    print(
        "command: dgl-tgnn "
        + " ".join(COMMAND)
        + (f" --max-events {args.max_events}" if args.max_events else "")
    )
    times: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.rounds):
        for state in ("quiet", "busy"):
            competitor = None
            if state == "busy":
                competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                time.sleep(0.5)
            try:
                for name, flags in CONFIGS.items():
                    print(f"round {round_ + 1}, {state}, {name}: {load()}", flush=True)
                    seconds = epoch_seconds(flags, args.max_events, args.timeout)
                    times.setdefault((name, state), []).append(seconds)
                    print(f"  epoch train_seconds {seconds:.2f}", flush=True)
            finally:
                if competitor is not None:
                    competitor.kill()
                    competitor.wait()
    print(f"\n{'configuration':<20} {'quiet s':>9} {'busy s':>9} {'busy/quiet':>11}")
    rows = []
    for name in CONFIGS:
        quiet, busy = min(times[(name, "quiet")]), min(times[(name, "busy")])
        print(f"{name:<20} {quiet:>9.2f} {busy:>9.2f} {busy / quiet:>10.2f}x")
        rows.append(
            {
                "configuration": name,
                "quiet_seconds_runs": times[(name, "quiet")],
                "busy_seconds_runs": times[(name, "busy")],
                "busy_over_quiet": busy / quiet,
            }
        )
    save_results("busy_machine", rows, args.results_dir)


if __name__ == "__main__":
    main()
