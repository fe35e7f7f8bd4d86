"""One way to run a coroutine to the end: on uvloop where it is installed, else asyncio's loop.

uvloop (libuv) answers feed requests at about 1.5 times the rate of the standard loop; it has
wheels for CPython on Linux and macOS only, so pyproject.toml installs it there alone and the
service runs on the standard loop everywhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
