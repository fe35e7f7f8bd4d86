"""Logging set-up, called once by cli.py; library modules only call logging.getLogger."""

from __future__ import annotations

import logging


def setup(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
