"""What the benchmarks share: a free port, a PostgreSQL database of their own, percentiles,
the table and the ratio lines."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator, Sequence


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def database(server: str | None, prefix: str) -> Iterator[str | None]:
    """A new, empty database on the PostgreSQL `server` for one run, dropped after it; None
    (SQLite, the embedded default) without a server."""
    if server is None:
        yield None
        return
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{os.getpid()}"
    url = make_url(server)
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
    except psycopg.Error as e:
        raise SystemExit(f"cannot create a database on {server}: "
                         f"{str(e).strip().splitlines()[0]}") from None
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


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
