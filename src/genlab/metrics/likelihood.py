"""Conversions between likelihood units."""

from __future__ import annotations

import math


def bits_per_dim(nats_per_example: float, dims: int) -> float:
    """Negative log-likelihood in nats per example -> bits per dimension."""
    return nats_per_example / (dims * math.log(2))
