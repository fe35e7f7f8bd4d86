"""config.toml: the example runs as is; every mistake is one line naming file, table and key."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scheduler import config, resources
from scheduler.errors import ConfigError
from tests.conftest import cli_runner

ConfigCase = Callable[[str], Path]


def test_example_config_loads_with_the_coalitions_five_zones(config_case: ConfigCase) -> None:
    settings = config.load(config_case("example"))
    assert settings.calls.default_zones == (
        "America/New_York", "Europe/Brussels", "Africa/Cairo", "Africa/Addis_Ababa",
        "Asia/Jakarta",
    )
    assert settings.calls.languages == ("en", "fr", "es", "ar", "pt")



def test_example_config_spells_out_every_option_at_its_default(tmp_path: Path) -> None:
    """The schema is the one declaration of the options; the commented example an organizer
    starts from must name each of them, with the value the schema gives when it is left out."""
    example = tomllib.loads(resources.example_config().read_text(encoding="utf-8"))
    missing = []
    for table, kind in config.SCHEMA.items():
        written: Any = example
        for part in table.split("."):
            written = written[part]
        missing += [f"[{table}] {key}" for key in config.keys(kind) if key not in written]
    assert missing == []
    path = tmp_path / "config.toml"
    assert config.parse(example, path) == config.parse({}, path)

@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param("unknown_key", "[database] unknown key 'ulr_env'", id="unknown-key"),
        pytest.param("wrong_type", "[calls] default_duration: expected a whole number, got str",
                     id="wrong-type"),
        pytest.param("misspelled_zone", "did you mean Europe/Brussels", id="misspelled-zone"),
        pytest.param("not_toml", "not valid TOML", id="syntax-error"),
        pytest.param("unknown_database", "[database] url: unknown database kind 'nosuchdb'",
                     id="issue-16-unknown-database"),
    ],
)
def test_bad_config_is_one_line_naming_file_and_key(
    config_case: ConfigCase, case: str, expected: str
) -> None:
    path = config_case(case)
    with pytest.raises(ConfigError) as raised:
        config.load(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path.resolve()}: ")
    assert expected in message


def test_every_error_in_a_config_is_reported_at_once(config_case: ConfigCase) -> None:
    with pytest.raises(ConfigError) as raised:
        config.load(config_case("several_errors"))
    lines = str(raised.value).splitlines()
    assert len(lines) == 2
    assert "unknown table [mail]" in lines[0]
    assert "[calls] default_duration: must be positive, got -5" in lines[1]


def test_default_language_must_be_among_the_languages(config_case: ConfigCase) -> None:
    path = config_case("example")
    path.write_text(path.read_text().replace('default_language = "en"',
                                             'default_language = "de"'))
    with pytest.raises(ConfigError, match=r"default_language: 'de' is not in languages"):
        config.load(path)


def test_reminders_must_be_queued_before_the_daemon_looks_again(config_case: ConfigCase) -> None:
    """A reminder queued later than the daemon's next look could be found after its time."""
    path = config_case("example")
    path.write_text(path.read_text().replace("queue_minutes = 15", "queue_minutes = 1"))
    with pytest.raises(ConfigError, match=r"\[daemon\] queue_minutes: 1 is too short for "
                       r"interval_seconds = 60"):
        config.load(path)


def test_missing_config_file_says_how_to_name_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no such config file.*--config.*COALITION_CONFIG"):
        config.load(tmp_path / "absent.toml")


def test_relative_sqlite_path_is_relative_to_the_config_file(config_case: ConfigCase) -> None:
    path = config_case("relative_sqlite")
    url = config.load(path).database_url(environ={})
    assert url == f"sqlite:///{path.parent.resolve()}/state/calls.db"


def test_database_url_from_the_named_environment_variable_wins(config_case: ConfigCase) -> None:
    settings = config.load(config_case("relative_sqlite"))
    url = settings.database_url(environ={"MY_DATABASE_URL": "postgresql://u:secret@db/calls"})
    assert url == "postgresql+psycopg://u:secret@db/calls"


def test_postgresql_url_uses_psycopg_3(config_case: ConfigCase) -> None:
    url = config.load(config_case("postgres")).database_url(environ={})
    assert url.startswith("postgresql+psycopg://")


def test_config_path_comes_from_option_then_environment_then_default() -> None:
    assert config.config_path(Path("a.toml"), {"COALITION_CONFIG": "b.toml"}) == Path("a.toml")
    assert config.config_path(None, {"COALITION_CONFIG": "b.toml"}) == Path("b.toml")
    assert config.config_path(None, {}) == Path("config.toml")


def test_secrets_come_from_the_environment_variables_the_file_names(tmp_path: Path) -> None:
    settings = config.parse({"web": {"secret_env": "S"}, "forum": {"api_key_env": "K"},
                             "email": {"smtp": {"password_env": "P"}}}, tmp_path / "config.toml")
    environ = {"S": "signing secret", "K": "api key", "P": "smtp password"}
    assert settings.web.secret(environ) == "signing secret"
    assert settings.forum.api_key(environ) == "api key"
    assert settings.smtp.password(environ) == "smtp password"


def test_an_empty_variable_name_means_no_secret(tmp_path: Path) -> None:
    """`secret_env = ""` says there is no such variable, whatever the defaults' variables hold."""
    settings = config.parse({"web": {"secret_env": ""}, "forum": {"api_key_env": ""},
                             "email": {"smtp": {"password_env": ""}}}, tmp_path / "config.toml")
    environ = {"COALITION_WEB_SECRET": "s", "COALITION_DISCOURSE_API_KEY": "k",
               "COALITION_SMTP_PASSWORD": "p"}
    assert (settings.web.secret(environ), settings.forum.api_key(environ),
            settings.smtp.password(environ)) == ("", "", "")


def test_issue_16_an_unknown_database_is_a_config_error_of_every_command(
        config_case: ConfigCase) -> None:
    """It was "internal error: NoSuchModuleError" and exit status 1."""
    path = config_case("unknown_database")
    ran = cli_runner(path)("call", "list")
    assert ran.exit_code == 2 and ran.stderr.count("\n") == 1, ran.stderr
    assert ran.stderr.startswith(f"error: {path.resolve()}: [database] url: unknown database "
                                 "kind 'nosuchdb' (use sqlite:///")


def test_issue_16_an_unknown_database_in_the_environment_names_the_variable(
        config_case: ConfigCase) -> None:
    settings = config.load(config_case("relative_sqlite"))
    with pytest.raises(ConfigError, match=r"\[database\] url_env: \$MY_DATABASE_URL: unknown "
                       r"database kind 'nosuchdb'") as raised:
        settings.database_url(environ={"MY_DATABASE_URL": "nosuchdb://user:s3cr3tpass@x/y"})
    assert "s3cr3tpass" not in str(raised.value)
