"""Logging set-up, called once by cli.py; library modules only call logging.getLogger."""

from __future__ import annotations

import logging


def setup(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def for_daemon() -> None:
    """A daemon tells what it does (every delivery's state change); its timer stays quiet."""
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
