"""What `make run` installs is enough to run: every module the service imports comes from a
main dependency of pyproject.toml, not only from the test extras."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules() -> set[str]:
    found = set()
    for path in [ROOT / "cli.py", *(ROOT / "scheduler").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"scheduler", "cli", "__future__"}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_import_of_the_service_is_a_main_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {normalized(re.split(r"[\[<>=!~; ]", d, maxsplit=1)[0])
                for d in project["dependencies"]}
    providers = packages_distributions()
    missing = {module: providers.get(module) for module in imported_modules()
               if not declared & {normalized(d) for d in providers.get(module, [])}}
    assert missing == {}
