"""A working configuration in an empty folder with one command, and never over an existing one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from scheduler import __version__, config, resources
from tests.conftest import make_database

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Places:
    """Where a config file is looked for, each in the test's own folder."""

    folder: Path  # the working folder: ./config.toml
    xdg: Path  # $XDG_CONFIG_HOME/coalition/config.toml
    home: Path  # ~/.config/coalition/config.toml, when XDG_CONFIG_HOME is unset
    system: Path  # /etc/coalition/config.toml


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Places:
    """An empty working folder, and the user's and the system's config places elsewhere (none
    of this machine's own)."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("COALITION_CONFIG", raising=False)
    monkeypatch.delenv("COALITION_DATABASE_URL", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(config, "SYSTEM_CONFIG", tmp_path / "etc" / "coalition" / "config.toml")
    return Places(folder=work, xdg=tmp_path / "xdg" / "coalition" / "config.toml",
                  home=tmp_path / "home" / ".config" / "coalition" / "config.toml",
                  system=config.SYSTEM_CONFIG)


@pytest.fixture
def empty(places: Places) -> Path:
    return places.folder


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


# --- where the config file is found


def write(path: Path) -> Path:
    """The example configuration at `path`, with its database made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text((ROOT / "config.toml").read_text())
    make_database(path)
    return path


def config_line(*args: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(app, [*args, "doctor"], env=env)
    assert result.exit_code == 0, result.stderr
    return next(line for line in result.stdout.splitlines() if line.startswith("config:"))


def test_config_is_looked_for_in_the_folder_then_the_user_s_then_the_system_s(
    places: Places, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each place is used only when the ones before it have no file; doctor says which."""
    for place in (places.system, places.home, places.xdg, places.folder / "config.toml"):
        write(place)
    assert config_line() == f"config: ok: {places.folder / 'config.toml'} (from ./config.toml)"
    (places.folder / "config.toml").unlink()
    assert config_line() == f"config: ok: {places.xdg} (from $XDG_CONFIG_HOME)"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert config_line() == f"config: ok: {places.home} (from ~/.config)"
    places.home.unlink()
    assert config_line() == f"config: ok: {places.system} (from /etc)"


def test_named_config_comes_before_any_found_one(places: Places) -> None:
    write(places.folder / "config.toml")
    mine = write(places.folder / "elsewhere" / "config.toml")
    theirs = write(places.folder / "theirs" / "config.toml")
    assert config_line(env={"COALITION_CONFIG": str(mine)}) == \
        f"config: ok: {mine} (from $COALITION_CONFIG)"
    assert config_line("--config", str(theirs), env={"COALITION_CONFIG": str(mine)}) == \
        f"config: ok: {theirs} (from --config)"


def test_a_named_config_that_is_missing_is_an_error_not_a_fall_back(places: Places) -> None:
    write(places.folder / "config.toml")
    result = CliRunner().invoke(app, ["check"], env={"COALITION_CONFIG": "confg.toml"})
    assert result.exit_code == 2 and "confg.toml: no such config file" in result.stderr


def test_no_config_anywhere_is_one_line_naming_each_place(places: Places) -> None:
    result = CliRunner().invoke(app, ["check"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: no config file: looked for ./config.toml, {places.xdg}, {places.system} "
        "(write one with `coalition config init`, or give --config PATH or set "
        "COALITION_CONFIG)\n")


def test_config_init_user_writes_the_xdg_config_that_commands_then_find(places: Places) -> None:
    """Relative paths in it are relative to its folder, wherever the command runs."""
    written = CliRunner().invoke(app, ["config", "init", "--user", "--json"])
    assert written.exit_code == 0, written.stderr
    assert json.loads(written.stdout) == {"wrote": str(places.xdg)}
    made = CliRunner().invoke(app, ["init"])
    assert made.exit_code == 0 and "wrote" not in made.stdout, made.stderr
    assert (places.xdg.parent / "var" / "coalition.sqlite3").is_file()
    assert list(places.folder.iterdir()) == []


def test_config_init_system_writes_to_etc(places: Places) -> None:
    result = CliRunner().invoke(app, ["config", "init", "--system"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"wrote {places.system}: ")
    assert places.system.read_text() == (ROOT / "config.toml").read_text()


@pytest.mark.parametrize("args", [
    pytest.param(["--user", "--system"], id="user-and-system"),
    pytest.param(["--user", "here.toml"], id="user-and-path"),
])
def test_config_init_takes_one_place(places: Places, args: list[str]) -> None:
    result = CliRunner().invoke(app, ["config", "init", *args])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert not places.xdg.exists() and not places.system.exists()
