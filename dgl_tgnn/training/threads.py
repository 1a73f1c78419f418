"""Torch's CPU thread count on a shared machine."""

from __future__ import annotations

import os
import time

import torch


class BusyMachineThreads:
    """With the default thread count on CPU: one torch thread while other processes keep about a
    core busy, the default again once they stop. A spinning OpenMP team waits at every parallel
    region for a worker the system has descheduled (a uci TGN epoch took many times longer beside
    one busy process; bench/busy_machine.py).

    Args:
        enabled: False leaves the thread count alone (``train.threads`` set, or not on a CPU).
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.default: int | None = None  # torch's thread count when first adapted
        # (busy seconds of the whole machine, this process's CPU seconds, monotonic seconds)
        self.mark: tuple[float, float, float] | None = None

    def adapt(self) -> None:
        """Sets torch's thread count from the machine's load since the last call (read from
        ``/proc/stat``, at most every 0.2 s)."""
        if not self.enabled:
            return
        if self.mark is not None and time.monotonic() - self.mark[2] < 0.2:
            return  # (/proc/stat counts in 10 ms ticks: look at windows of 0.2 s or more)
        try:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return
        ticks = os.sysconf("SC_CLK_TCK")
        busy = (sum(fields[:8]) - fields[3] - fields[4]) / ticks  # all but idle and iowait
        mark = (busy, time.process_time(), time.monotonic())
        if self.mark is not None and self.default is not None:
            others = (mark[0] - self.mark[0]) - (mark[1] - self.mark[1])
            cores = others / max(mark[2] - self.mark[2], 1e-9)
            threads = 1 if cores > 0.5 else self.default
            if threads != torch.get_num_threads():
                torch.set_num_threads(threads)
        if self.default is None:
            self.default = torch.get_num_threads()
        self.mark = mark
