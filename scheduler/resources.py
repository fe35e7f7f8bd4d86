"""What ships with the package: the built-in templates and the example configuration.

Installed from a wheel they are inside the package and found through `importlib.resources`; in a
checkout (an editable install, the tests) they are the owner's folders at the repository's top,
which the build maps into the package (pyproject.toml, [tool.hatch.build.targets.wheel]).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def _shipped(packaged: str, checkout: str) -> Path:
    # Jinja's loader and the config writer read real files: a wheel installs as files, so the
    # resource is a path (a zipped install is not supported).
    resource = files(__package__ or "scheduler") / packaged
    if resource.is_file() or resource.is_dir():
        return Path(str(resource))
    return _CHECKOUT / checkout


def templates() -> Path:
    """The folder of built-in templates (email/, forum/, web/ and the shared macros)."""
    return _shipped("templates", "templates")


def example_config() -> Path:
    """The example config.toml: every option with its default and a comment."""
    return _shipped("config.example.toml", "config.toml")
