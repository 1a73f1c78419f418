"""``dgl-tgnn train --nproc G``: ``G`` processes of this machine, started as ``torchrun`` starts them
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

# After a process fails, the others get this long to notice (their collectives fail) and exit.
GRACE_S = 30.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def without_nproc(argv: list[str]) -> list[str]:
    """``argv`` without its ``--nproc N`` / ``--nproc=N``."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def spawn(nproc: int, argv: list[str], echo=print) -> int:  # noqa: ANN001 (a print-like callable)
    """Runs ``python -m dgl_tgnn ARGV`` as ``nproc`` processes of one run and waits for them; returns
    the exit code: 0, the common one (e.g. 130 after Ctrl-C), or 1 after ``echo`` said which
    process failed first (the others are stopped after ``GRACE_S`` seconds)."""
    env = os.environ | {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "WORLD_SIZE": str(nproc),
        "LOCAL_WORLD_SIZE": str(nproc),
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "dgl_tgnn", *argv], env=env | {"RANK": str(r), "LOCAL_RANK": str(r)}
        )
        for r in range(nproc)
    ]
    # Ctrl-C reaches every process of the terminal's group: the runs save a checkpoint and exit.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        failed: tuple[int, int] | None = None
        deadline = None
        while any(p.poll() is None for p in processes):
            if failed is None:
                for rank, p in enumerate(processes):
                    code = p.poll()
                    if code not in (None, 0, 130, 143):
                        failed, deadline = (rank, code), time.monotonic() + GRACE_S
                        break
            if deadline is not None and time.monotonic() > deadline:
                for p in processes:
                    if p.poll() is None:
                        p.kill()
            time.sleep(0.1)
        codes = [p.wait() for p in processes]
    finally:
        signal.signal(signal.SIGINT, previous)
    if failed is None:
        bad = [c for c in codes if c != 0]
        return bad[0] if bad else 0
    rank, code = failed
    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    echo(f"Error: process {rank} of {nproc} {how}; the run stopped (resume from its last checkpoint)")
    return 1
