"""One line naming the machine a benchmark ran on (CPU model, CPU count, GPU, torch version)."""

from __future__ import annotations

import os
import platform

import torch


def describe() -> str:
    """E.g. ``"AMD EPYC 7B13, 2 CPUs visible, no GPU, torch 2.13.0+cpu"``."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} CPUs visible, {gpu}, torch {torch.__version__}"
