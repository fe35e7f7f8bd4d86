"""What the benchmarks share: a free port, percentiles, the table and the ratio lines."""

from __future__ import annotations

import socket
from collections.abc import Sequence


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, round(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    for line in (header, ["-" * w for w in widths], *rows):
        print("  ".join(str(c).rjust(w) for c, w in zip(line, widths, strict=True)))


def ratio(name: str, value: float) -> None:
    """The last lines of every benchmark: ours divided by the baseline, higher is better."""
    print(f"ratio {name} {value:.3f}")
