"""The coalition call scheduler: recurring calls, their occurrences, and what is sent about them."""

from __future__ import annotations

__version__ = "0.1.0"
