"""The runtime options every time-budgeted bench takes: --threads and --cpu-budget."""

from __future__ import annotations

import argparse

import torch


def add_budget_args(p: argparse.ArgumentParser) -> None:
    """Add --cpu-budget and --threads to a bench's parser."""
    p.add_argument(
        "--cpu-budget",
        action="store_true",
        help="--minutes counts CPU time of this process (robust to other load), not wall time",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0 = torch's default); 1 makes the budget CPU-minutes of one core",
    )


def apply_threads(a: argparse.Namespace) -> None:
    """Set torch's intra-op threads from --threads (0 leaves torch's default)."""
    if a.threads:
        torch.set_num_threads(a.threads)
