"""The `coalition` command's entry point, wherever the build put cli.py.

The repository keeps the owner's layout, with cli.py at its top. The wheel carries it inside this
package as `scheduler.cli` (pyproject.toml maps it), so nothing but `scheduler` is installed at
the top of site-packages; an editable install (make run, make test) puts the repository itself
on sys.path, where the same file is the module `cli`.
"""

from __future__ import annotations

import gc
import importlib
from typing import Any


def main() -> Any:
    try:
        cli = importlib.import_module("scheduler.cli")
    except ModuleNotFoundError as e:
        if e.name != "scheduler.cli":
            raise
        cli = importlib.import_module("cli")
    # What the imports made lives as long as the process: set aside, the collector does not walk
    # those hundreds of thousands of objects again each time a command's own work (10,000
    # calls listed, imported or sent) fills its generations.
    gc.freeze()
    return cli.app()
