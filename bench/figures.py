"""Small statistics and number formatting for bench/run's report."""

import math
import statistics


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def percentile(values, q):
    """Nearest-rank percentile (q in 0..100)."""
    values = sorted(values)
    if not values:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(values)))
    return values[rank - 1]


def share_stats(counts):
    total = sum(counts)
    n = len(counts)
    if total == 0:
        return {"shares": [0.0] * n, "max_min": None, "cv": None, "max_dev": None, "total": 0}
    shares = [c / total for c in counts]
    mean = total / n
    return {
        "shares": shares,
        "total": total,
        "max_min": (max(counts) / min(counts)) if min(counts) > 0 else float("inf"),
        "cv": statistics.pstdev(counts) / mean,
        "max_dev": max(abs(s * n - 1) for s in shares),  # relative to the fair share 1/n
    }


def fmt(value, digits=0, unit=""):
    if value is None:
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return f"{value:,.{digits}f}{unit}"


def fmt_range(values, digits=0):
    """"median (min–max)" of a list, or the one value."""
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    if len(values) == 1:
        return fmt(values[0], digits)
    return f"{fmt(median(values), digits)} ({fmt(min(values), digits)}–{fmt(max(values), digits)})"


def met(ok):
    if ok is None:
        return "n/a"
    return "**met**" if ok else "**missed**"
