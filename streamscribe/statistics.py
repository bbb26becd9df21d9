"""Summary statistics shared by ``status`` and the benchmarks (no heavy imports)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0-100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def rounded(value: float | None, digits: int = 4) -> float | None:
    """``value`` rounded for a report; None stays None."""
    return None if value is None else round(value, digits)
