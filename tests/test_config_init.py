"""A working configuration in an empty folder with one command, and never over an existing one."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from scheduler import __version__, config, resources

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COALITION_CONFIG", raising=False)
    monkeypatch.delenv("COALITION_DATABASE_URL", raising=False)
    return tmp_path


def test_config_init_writes_the_commented_example_that_loads(empty: Path) -> None:
    result = CliRunner().invoke(app, ["config", "init"])
    assert result.exit_code == 0, result.stderr
    written = empty / "config.toml"
    assert written.read_text() == (ROOT / "config.toml").read_text()
    assert written.read_text().count("\n#") > 10  # every table explained
    settings = config.load(written)
    assert settings.database_url() == f"sqlite:///{empty.resolve()}/var/coalition.sqlite3"


def test_config_init_into_a_folder_writes_config_toml_there(empty: Path) -> None:
    (empty / "etc").mkdir()
    result = CliRunner().invoke(app, ["config", "init", "etc"])
    assert result.exit_code == 0, result.stderr
    assert (empty / "etc" / "config.toml").is_file()


def test_config_init_never_replaces_an_existing_file(empty: Path) -> None:
    mine = empty / "config.toml"
    mine.write_text("# my own settings\n")
    result = CliRunner().invoke(app, ["config", "init"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: config.toml: already exists; not overwritten (move " \
        "it away first, or edit it)"
    assert mine.read_text() == "# my own settings\n"
    assert [p.name for p in empty.iterdir()] == ["config.toml"]  # no partial file left


def test_init_in_an_empty_folder_writes_a_config_then_makes_the_database(empty: Path) -> None:
    result = CliRunner().invoke(app, ["init"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("wrote config.toml")
    assert "created database" in result.stdout
    assert (empty / "var" / "coalition.sqlite3").is_file()
    again = CliRunner().invoke(app, ["init"])
    assert again.exit_code == 0 and "wrote" not in again.stdout


def test_init_never_writes_a_config_where_one_was_named(empty: Path) -> None:
    """A misspelt --config must not quietly become a new configuration and a new database."""
    result = CliRunner().invoke(app, ["--config", "etc/confg.toml", "init"])
    assert result.exit_code == 2
    assert "etc/confg.toml: no such config file" in result.stderr
    assert list(empty.iterdir()) == []


def test_example_config_is_found_in_the_checkout() -> None:
    """In a checkout the example is config.toml at the top (tests/test_wheel.py runs the
    wheel, which carries it inside the package)."""
    assert resources.example_config() == ROOT / "config.toml"
    assert resources.templates() == ROOT / "templates"


def test_version_is_printed() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"coalition {__version__}\n"
