"""The layers of scheduler/ as the folders show them (README, Development): the time core is
pure, so the hard parts are testable without a database, a network, a clock or a file."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "scheduler" / "core"
DELIVERY = CORE.parent / "delivery"

# What the core may not import: storage, the network, files and processes, the clock, Jinja,
# and every other layer of the service.
FORBIDDEN = {
    "sqlalchemy", "sqlmodel", "alembic", "psycopg", "sqlite3",
    "httpx", "aiosmtplib", "smtplib", "socket", "asyncio", "urllib.request", "starlette",
    "uvicorn", "os", "pathlib", "shutil", "tempfile", "io", "mailbox", "subprocess", "time",
    "jinja2",
}
OTHER_LAYERS = ("scheduler.store", "scheduler.channels", "scheduler.delivery", "scheduler.web",
                "scheduler.config", "scheduler.daemon", "scheduler.doctor", "scheduler.present",
                "scheduler.importer", "scheduler.metrics", "scheduler.resources",
                "scheduler.organizer")
# Reading the clock or a file, by name.
CALLS = {("datetime", "now"), ("date", "today"), ("datetime", "today"), ("datetime", "utcnow")}


def imports(tree: ast.Module) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.stem)
def test_core_module_touches_no_database_network_clock_file_or_jinja(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    imported = imports(tree)
    assert not {name for name in imported
                if name in FORBIDDEN or name.split(".")[0] in FORBIDDEN}
    assert not {name for name in imported if name.startswith(OTHER_LAYERS)}
    calls = {(node.func.value.id, node.func.attr) for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and isinstance(node.func.value, ast.Name)}
    assert not calls & CALLS
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name) and node.func.id == "open"]


def test_the_core_imports_alone() -> None:
    """Importing the core loads none of the service's heavier layers."""
    probe = ("import sys, scheduler.core.zones, scheduler.core.recurrence, scheduler.core.plan, "
             "scheduler.core.ics, scheduler.core.timetable; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('sqlalchemy', 'sqlmodel', 'jinja2', 'httpx', 'aiosmtplib', 'starlette')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, cwd=CORE.parent.parent)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("path", sorted(DELIVERY.glob("*.py")), ids=lambda p: p.stem)
def test_delivery_module_does_not_import_the_web_layer(path: Path) -> None:
    """Issue 14: the web layer serves what delivery makes, never the other way round; the
    members' pages are checked by `scheduler.web.site.check_pages`, called from `doctor`."""
    imported = imports(ast.parse(path.read_text(), str(path)))
    assert not {name for name in imported
                if name == "scheduler.web" or name.startswith(("scheduler.web.", "starlette"))}


def test_the_delivery_layer_imports_without_the_web_layer() -> None:
    """Issue 14: checking templates from delivery no longer pulls in Starlette."""
    probe = ("import sys, importlib, pkgutil, scheduler.delivery as d; "
             "[importlib.import_module(f'scheduler.delivery.{m.name}') "
             "for m in pkgutil.iter_modules(d.__path__)]; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn') "
             "or m.startswith('scheduler.web')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, cwd=CORE.parent.parent)
    assert done.stdout.strip() == "[]"
