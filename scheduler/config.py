"""config.toml, read once with tomllib and checked against one schema into typed settings.

Every error is reported, each on one line naming the file, the table and the key; unknown keys
are errors too (a misspelled key would otherwise be silently ignored). Relative paths in the file
are relative to the file's own folder, so the service behaves the same from any working folder.
Secrets are never in the file: it names environment variables that hold them.

Each option is declared once, as an attribute of its table's settings class: its type, then
`option(converter, default, help)`. The schema is those classes, in the order they are declared.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields
from email.utils import parseaddr
from pathlib import Path
from typing import Any, TypeVar, dataclass_transform
from urllib.parse import urlsplit

from limits import parse as parse_rate
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from scheduler import channels, resources
from scheduler.channels import EMAIL, FORUM
from scheduler.core.plan import Rule, parse_offset
from scheduler.core.zones import get_zone
from scheduler.delivery.catalogs import Catalogs
from scheduler.delivery.render import CHANNELS, TEMPLATES
from scheduler.errors import ConfigError, InvalidZone

log = logging.getLogger(__name__)

ENV_CONFIG = "COALITION_CONFIG"
BUILTIN_TEMPLATES = resources.templates()
DEFAULT_CONFIG = Path("config.toml")

T = TypeVar("T")


def from_environment(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The value of the environment variable `name` (in `os.environ` unless `environ` is given);
    "" when it is unset, or when `name` is "" (the file names no variable)."""
    if not name:
        return ""
    return (os.environ if environ is None else environ).get(name, "")


# --- converters: each takes the raw TOML value and returns the typed one or raises ValueError


def string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


def env_name(value: Any) -> str:
    text = string(value)
    if text and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        raise ValueError(f"{text!r} is not an environment variable name")
    return text


DATABASES = "sqlite:///path/to/file.sqlite3 or postgresql://user@host/dbname"


def sqlalchemy_url(text: str) -> URL:
    """The URL SQLAlchemy is given: `postgresql://` (and the old `postgres://`) use psycopg 3.
    Raises `ValueError` for a URL that does not parse, names a kind of database SQLAlchemy does
    not know, or whose driver is not installed; the message never repeats the URL (it may
    hold a password)."""
    try:
        url = make_url(text)
    except ArgumentError as e:
        raise ValueError(f"not a database URL ({DATABASES})") from e
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        raise ValueError(f"unknown database kind {url.drivername!r} (use {DATABASES})") from None
    try:
        dialect.import_dbapi()
    except ImportError as e:
        raise ValueError(f"the driver for {url.drivername!r} is not installed ({e}); use "
                         f"{DATABASES}") from None
    return url


def database_url(value: Any) -> str:
    text = string(value)
    sqlalchemy_url(text)
    return text


def is_network(text: str) -> bool:
    """An IP address or network ("127.0.0.1", "::1", "10.0.0.0/8"): what a proxy is named by."""
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def proxy_list(value: Any) -> tuple[str, ...]:
    """["127.0.0.1", "::1", "10.0.0.0/8"]: addresses or networks, each checked."""
    if not isinstance(value, list):
        raise ValueError('expected a list of addresses, such as ["127.0.0.1", "::1"]')
    proxies = []
    for item in value:
        text = string(item).strip()
        if not is_network(text):
            raise ValueError(f"{text!r} is not an IP address or network (such as "
                             "'127.0.0.1' or '10.0.0.0/8')")
        proxies.append(text)
    return tuple(proxies)


def positive_int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"must be positive, got {value}")
    return value


def non_negative_int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"expected a whole number of 0 or more, got {value!r}")
    return value


def tcp_port(value: Any) -> int:
    number = positive_int(value)
    if number > 65535:
        raise ValueError(f"{number} is not a TCP port (1-65535)")
    return number


def one_of(*choices: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = string(value)
        if text not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(map(repr, choices))}")
        return text
    return convert


def transport_of(channel: str) -> Callable[[Any], str]:
    """The name of one of `channel`'s transports, as `scheduler.channels.TRANSPORTS` lists
    them when the file is read."""
    def convert(value: Any) -> str:
        return one_of(*channels.transport_names(channel))(value)
    return convert


def address(value: Any) -> str:
    """'Coalition calls <calls@example.org>' or 'calls@example.org', on one line."""
    text = string(value).strip()
    _, mail = parseaddr(text)
    if "@" not in mail or any(c in text for c in "\r\n"):
        raise ValueError(f"{text!r} is not an email address like 'Calls <calls@example.org>'")
    return text


def optional_address(value: Any) -> str:
    return address(value) if string(value).strip() else ""


def language(value: Any) -> str:
    text = string(value)
    if not re.fullmatch(r"[a-z]{2,3}", text):
        raise ValueError(f"{text!r} is not a two-letter language code such as 'en' or 'fr'")
    return text


def language_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError("expected a non-empty list of language codes")
    return tuple(language(v) for v in value)


def zone_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError("expected a non-empty list of IANA time zone names")
    zones = []
    for item in value:
        try:
            zones.append(get_zone(string(item)).key)
        except InvalidZone as e:
            raise ValueError(str(e)) from e
    return tuple(zones)


def rate(value: Any) -> str:
    """"10/hour", "3 per day": a rate limit as the `limits` library reads it."""
    text = string(value)
    try:
        amount = parse_rate(text).amount
    except ValueError as e:
        raise ValueError(f"{text!r} is not a rate such as '10/hour' or '3/day'") from e
    if amount < 1:
        raise ValueError(f"{text!r} allows nothing; the least is 1 per period")
    return text


def optional_rate(value: Any) -> str:
    """"14/second", or "" for no limit."""
    return rate(value) if string(value).strip() else ""


def http_url(value: Any) -> str:
    text = string(value).rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} must be an http:// or https:// address")
    if parts.query or parts.fragment:
        raise ValueError(f"{text!r} must not have a query or fragment")
    return text


def label_map(value: Any) -> dict[str, str]:
    """{"America/New_York" = "NYC"}: city labels that replace CLDR's names."""
    if not isinstance(value, dict):
        raise ValueError("expected a table of zone = label")
    labels = {}
    for zone, label in value.items():
        try:
            labels[get_zone(zone).key] = string(label).strip()
        except InvalidZone as e:
            raise ValueError(str(e)) from e
        if not labels[zone] or "\n" in labels[zone]:
            raise ValueError(f"the label for {zone} must be one non-empty line")
    return labels


DEFAULT_REMINDERS = [
    {"name": "announcement", "before": "7d", "channels": ["forum", "email"],
     "template": "announcement"},
    {"name": "tomorrow", "before": "1d", "channels": ["email"], "template": "tomorrow"},
    {"name": "starts-soon", "before": "30m", "channels": ["forum", "email"],
     "template": "starts-soon"},
]


def reminder_rules(value: Any) -> tuple[Rule, ...]:
    """[[reminders]] tables: name, before ("7d", "2h", "30m"), channels, template."""
    if not isinstance(value, list):
        raise ValueError("expected [[reminders]] tables")
    rules = []
    for number, table in enumerate(value, 1):
        where = f"#{number}"
        if not isinstance(table, dict):
            raise ValueError(f"{where}: expected a table")
        unknown = set(table) - {"name", "before", "channels", "template"}
        if unknown:
            raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r} (known: name, before, "
                             "channels, template)")
        name = string(table.get("name", ""))
        if not re.fullmatch(r"[a-z0-9-]+", name):
            raise ValueError(f"{where}: name {name!r} must be lowercase letters, digits, hyphens")
        days, delta = parse_offset(string(table.get("before", "")))
        channels = table.get("channels", [])
        if not isinstance(channels, list) or not channels or any(
                c not in CHANNELS for c in channels):
            raise ValueError(f"{where} ({name}): channels must be a list of {', '.join(CHANNELS)}")
        template = string(table.get("template", name))
        if template not in TEMPLATES:
            raise ValueError(f"{where} ({name}): unknown template {template!r} (known: "
                             f"{', '.join(TEMPLATES)})")
        rules.append(Rule(name=name, days=days, delta=delta, channels=tuple(channels),
                          template=template))
    if len({r.name for r in rules}) != len(rules):
        raise ValueError("two rules have the same name")
    return tuple(rules)


# --- the schema: one settings class per table, one attribute per option


@dataclass(frozen=True)
class Option:
    """How one key is read: `convert` takes the file's value, or `default` when the key is
    absent (written as it would be in the file); `key` is the key where it is not the
    attribute's name."""

    convert: Callable[[Any], Any]
    default: Any
    help: str
    key: str = ""


def option(convert: Callable[[Any], T], default: Any, help: str, /, *, key: str = "") -> T:
    """Declare an option as an attribute of a settings class (`port: int = option(...)`).

    It returns the dataclass field carrying the `Option`; it is typed as what `convert` returns
    so that mypy checks the converter against the attribute's type. The default is only
    `parse`'s: the class itself has none, so every setting is given when it is built (the
    arguments are positional so that `@section`'s dataclass_transform never reads `default`
    as the class's own).
    """
    spec: T = field(metadata={"option": Option(convert, default, help, key)})
    return spec


SCHEMA: dict[str, type[Any]] = {}
"""Each table, e.g. "email.smtp", with its settings class, in the order problems are reported.
`Settings` holds each one under the table's last name (`settings.smtp`)."""


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(option,))
def section(table: str) -> Callable[[type[T]], type[T]]:
    """Make the class a frozen, keyword-only dataclass that reads `[table]`, and add it to
    `SCHEMA`."""
    def register(cls: type[T]) -> type[T]:
        kind = dataclass(frozen=True, kw_only=True)(cls)
        SCHEMA[table] = kind
        return kind
    return register


def keys(kind: type[Any]) -> dict[str, Field[Any]]:
    """The keys of a settings class's table, in order, each with the field it fills."""
    return {f.metadata["option"].key or f.name: f for f in fields(kind)}


@section("database")
class DatabaseSettings:
    url: str = option(database_url, "sqlite:///var/coalition.sqlite3",
                      "SQLAlchemy URL; a relative SQLite path is relative to this file")
    url_env: str = option(env_name, "COALITION_DATABASE_URL",
                          "environment variable that, when set, overrides url (for passwords)")


@section("calls")
class CallSettings:
    default_zones: tuple[str, ...] = option(
        zone_list, ["America/New_York", "Europe/Brussels", "Africa/Cairo", "Africa/Addis_Ababa",
                    "Asia/Jakarta"],
        "zones shown for a call that names none")
    default_language: str = option(language, "en", "language of a call that names none")
    languages: tuple[str, ...] = option(
        language_list, ["en", "fr", "es", "ar", "pt"], "languages the coalition offers (calls, "
        "the members' page, sign-up, reminders); each needs a translation catalog: ar, es, fr "
        "and pt ship, and a templates folder may add one (README, Languages)")
    default_duration: int = option(positive_int, 60, "minutes, for a call that names none")


@section("web")
class WebSettings:
    base_url: str = option(http_url, "http://127.0.0.1:8080",
                           "public address of the web server, used in links in every message")
    host: str = option(string, "127.0.0.1", "address the web server listens on")
    port: int = option(tcp_port, 8080, "port the web server listens on")
    secret_env: str = option(env_name, "COALITION_WEB_SECRET",
                             "environment variable holding the secret that signs sign-up "
                             "links and forms (every replica needs the same one)")
    confirm_hours: int = option(positive_int, 48, "how long a sign-up confirmation link works")
    signup_per_ip: str = option(rate, "10/hour", "sign-ups one address on the internet may "
                                "make, e.g. 10/hour")
    signup_per_address: str = option(rate, "3/hour", "confirmation emails one email address "
                                     "may be sent, e.g. 3/hour")
    trusted_proxies: tuple[str, ...] = option(
        proxy_list, [], 'reverse proxies whose X-Forwarded-For and X-Forwarded-Proto the daemon '
        'believes, e.g. ["127.0.0.1", "::1"] behind nginx on this machine; from anyone else '
        'those headers are ignored')
    max_connections: int = option(positive_int, 200, "connections the web server holds at "
                                  "once; more are answered 503")

    def secret(self, environ: Mapping[str, str] | None = None) -> str:
        return from_environment(self.secret_env, environ)


@section("feeds")
class FeedSettings:
    folder: str = option(string, "calendars", "where .ics feeds are written, relative to this "
                         "file (a static web server can publish it)")
    name: str = option(string, "Coalition calls", "the name of the feed of all calls")
    refresh_minutes: int = option(positive_int, 360, "how often calendar apps should refresh "
                                  "(REFRESH-INTERVAL; Google ignores it)")


@section("email")
class EmailSettings:
    transport: str = option(transport_of(EMAIL), "maildir",
                            " or ".join(channels.transport_names(EMAIL)))
    sender: str = option(address, "Coalition calls <calls@example.org>", "sender and organizer",
                         key="from")  # a Python keyword
    maildir: str = option(string, "var/mail", "the Maildir for transport = maildir")
    unsubscribe_mailto: str = option(optional_address, "", "an address that unsubscribes "
                                     "whoever writes to it, offered in List-Unsubscribe too")
    reply_to: str = option(optional_address, "", "where replies to every email go (Reply-To), "
                           "e.g. the organizers; \"\" for the sender address")


@section("forum")
class ForumSettings:
    transport: str = option(transport_of(FORUM), "files",
                            "files (Markdown files in folder) or discourse (its API)")
    folder: str = option(string, "var/forum", "where forum posts are written (files)")
    url: str = option(http_url, "https://forum.example.org", "the Discourse forum")
    api_username: str = option(string, "system", "the user the API posts as")
    api_key_env: str = option(env_name, "COALITION_DISCOURSE_API_KEY",
                              "environment variable holding the Discourse API key")
    category: int = option(non_negative_int, 0, "category for new topics (calls without a "
                           "topic)")

    def api_key(self, environ: Mapping[str, str] | None = None) -> str:
        return from_environment(self.api_key_env, environ)


@section("daemon")
class DaemonSettings:
    interval_seconds: int = option(positive_int, 60, "how often the daemon looks for new calls, "
                                   "subscribers and expired leases (it also wakes when "
                                   "something falls due)")
    lease_seconds: int = option(positive_int, 120, "how long a claimed delivery is held "
                                "at most: a killed daemon's claims are taken over within "
                                "seconds, one gone without closing its database connection "
                                "after this (a live one renews its own while sending)")
    batch: int = option(positive_int, 500, "deliveries claimed at a time")
    retry_seconds: int = option(positive_int, 30, "first wait after a temporary failure; it "
                                "doubles with each attempt, up to 30 minutes")
    queue_minutes: int = option(positive_int, 15, "how long before a reminder falls due its "
                                "deliveries, one per recipient, are written to the outbox")


@section("email.smtp")
class SmtpSettings:
    host: str = option(string, "127.0.0.1", "SMTP server")
    port: int = option(tcp_port, 25, "SMTP port (587 for starttls, 465 for tls)")
    security: str = option(one_of("none", "starttls", "tls"), "none", "none, starttls or tls")
    username: str = option(string, "", "login, if the server needs one")
    password_env: str = option(env_name, "COALITION_SMTP_PASSWORD",
                               "environment variable holding the SMTP password")
    timeout: int = option(positive_int, 30, "seconds to wait for each of the server's replies")
    connections: int = option(positive_int, 4, "connections a fan-out uses at once (ask your "
                              "provider how many it allows)")
    rate: str = option(optional_rate, "", "messages the server takes, e.g. 14/second (a "
                       "relay's published limit), kept over all connections; empty: no limit")
    messages_per_connection: int = option(non_negative_int, 0, "messages sent on a connection "
                                          "before it is closed and another opened; 0: no limit")

    def password(self, environ: Mapping[str, str] | None = None) -> str:
        return from_environment(self.password_env, environ)


@section("templates")
class TemplateSettings:
    folder: str = option(string, "", "folder of your own templates, relative to this file; "
                         "a template found there replaces the built-in one of the same name")


@dataclass(frozen=True, kw_only=True)
class Settings:
    path: Path
    database: DatabaseSettings
    calls: CallSettings
    web: WebSettings
    templates: TemplateSettings
    feeds: FeedSettings
    email: EmailSettings
    smtp: SmtpSettings
    forum: ForumSettings
    daemon: DaemonSettings
    labels: dict[str, str]
    reminders: tuple[Rule, ...]

    @property
    def calendars(self) -> Path:
        return self.folder / self.feeds.folder

    @property
    def maildir(self) -> Path:
        return self.folder / self.email.maildir

    @property
    def forum_folder(self) -> Path:
        return self.folder / self.forum.folder

    @property
    def template_folders(self) -> list[Path]:
        """The organizers' folder (if any, relative to this file), then the built-in one."""
        own = [self.folder / self.templates.folder] if self.templates.folder else []
        return [*own, BUILTIN_TEMPLATES]

    def feed_url(self, slug: str) -> str:
        return f"{self.web.base_url}/calendars/{slug}.ics"

    @property
    def folder(self) -> Path:
        return self.path.parent

    def database_url(self, environ: Mapping[str, str] | None = None) -> str:
        """The SQLAlchemy URL: from the named environment variable if set, else from the file.

        A relative SQLite path is taken relative to the config file; `postgresql://` URLs use
        psycopg 3.
        """
        given = from_environment(self.database.url_env, environ)
        try:
            url = sqlalchemy_url(given or self.database.url)
        except ValueError as e:  # the file's URL was checked when it was read: the variable's
            raise ConfigError(f"{self.path}: [database] url_env: ${self.database.url_env}: "
                              f"{e}") from None
        if url.drivername.startswith("sqlite") and url.database not in (None, "", ":memory:"):
            path = Path(url.database)
            if not path.is_absolute():
                url = url.set(database=str(self.folder / path))
        return url.render_as_string(hide_password=False)


def config_path(option: Path | None, environ: Mapping[str, str] | None = None) -> Path:
    """--config, else $COALITION_CONFIG, else ./config.toml (`discover` also looks further)."""
    if option is not None:
        return option
    named = from_environment(ENV_CONFIG, environ)
    return Path(named) if named else DEFAULT_CONFIG


# --- where the config file is found (and where `config init` writes it)

SYSTEM_CONFIG = Path("/etc/coalition/config.toml")
FROM_OPTION, FROM_ENVIRONMENT = "--config", f"${ENV_CONFIG}"
FROM_FOLDER, FROM_XDG, FROM_HOME, FROM_SYSTEM = (
    "./config.toml", "$XDG_CONFIG_HOME", "~/.config", "/etc")


@dataclass(frozen=True, kw_only=True)
class Found:
    """The config file to read, and how it was found (one of the FROM_* names above)."""

    path: Path
    source: str


def user_config(environ: Mapping[str, str] | None = None) -> Found:
    """$XDG_CONFIG_HOME/coalition/config.toml, or ~/.config/coalition/config.toml when that
    variable is unset or not an absolute path (as the XDG Base Directory spec says)."""
    xdg = from_environment("XDG_CONFIG_HOME", environ)
    if xdg and Path(xdg).is_absolute():
        return Found(path=Path(xdg) / "coalition" / DEFAULT_CONFIG.name, source=FROM_XDG)
    return Found(path=Path.home() / ".config" / "coalition" / DEFAULT_CONFIG.name,
                 source=FROM_HOME)


def searched(environ: Mapping[str, str] | None = None) -> list[Found]:
    """The places looked at, in order, when neither --config nor $COALITION_CONFIG names a
    file: ./config.toml, the user's config folder, /etc/coalition/config.toml."""
    return [Found(path=DEFAULT_CONFIG, source=FROM_FOLDER), user_config(environ),
            Found(path=SYSTEM_CONFIG, source=FROM_SYSTEM)]


def discover(option: Path | None, *, from_environment_variable: bool = False,
             environ: Mapping[str, str] | None = None) -> Found | None:
    """The config file: the one --config names (`from_environment_variable` when its value
    came from $COALITION_CONFIG), else the one $COALITION_CONFIG names, else the first of
    `searched` that exists; None when none does. A named file is returned whether or not it
    exists (`load` then says it does not): a misspelt name must not fall back to another."""
    if option is not None:
        return Found(path=option,
                     source=FROM_ENVIRONMENT if from_environment_variable else FROM_OPTION)
    named = from_environment(ENV_CONFIG, environ)
    if named:
        return Found(path=Path(named), source=FROM_ENVIRONMENT)
    return next((place for place in searched(environ) if place.path.exists()), None)


def find(option: Path | None, *, from_environment_variable: bool = False,
         environ: Mapping[str, str] | None = None) -> Found:
    """`discover`, or `ConfigError` in one line listing the places looked at."""
    found = discover(option, from_environment_variable=from_environment_variable,
                     environ=environ)
    if found is None:
        places = ", ".join(str(place.path) if place.path.is_absolute() else f"./{place.path}"
                           for place in searched(environ))
        raise ConfigError(f"no config file: looked for {places} (write one with `coalition "
                          f"config init`, or give --config PATH or set {ENV_CONFIG})")
    return found


def init_target(*, user: bool = False, system: bool = False,
                environ: Mapping[str, str] | None = None) -> Path:
    """Where `config init` writes when given no path: the user's config folder (`user`),
    /etc/coalition (`system`), else ./config.toml."""
    if user and system:
        raise ConfigError("give --user or --system, not both")
    if user:
        return user_config(environ).path
    return SYSTEM_CONFIG if system else DEFAULT_CONFIG


def write_example(path: Path) -> Path:
    """Write the example configuration (every option with its default and a comment) to `path`,
    or to `path`/config.toml when it is a folder; refuse to replace a file that exists.

    The file appears whole or not at all: it is written beside its place, then linked there,
    which fails if a file took that place meanwhile.
    """
    if path.is_dir():
        path = path / DEFAULT_CONFIG.name
    if path.exists():
        raise ConfigError(f"{path}: already exists; not overwritten (move it away first, or "
                          "edit it)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = resources.example_config().read_text(encoding="utf-8")
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            # Readable like any other file the umask allows: the file holds no secrets.
            with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644),
                           "w", encoding="utf-8") as f:
                f.write(text)
            os.link(partial, path)
        finally:
            partial.unlink(missing_ok=True)
    except FileExistsError:
        raise ConfigError(f"{path}: already exists; not overwritten") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot write: {e.strerror}") from e
    log.info("wrote the example configuration to %s", path)
    return path


def load(path: Path) -> Settings:
    """Read and check the file; raise `ConfigError` listing every problem, one per line."""
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError as e:
        raise ConfigError(
            f"{path}: no such config file (write one with `coalition config init`, or give "
            f"--config PATH or set {ENV_CONFIG})"
        ) from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    return parse(raw, path.resolve())


def parse(raw: Mapping[str, Any], path: Path) -> Settings:
    """Check the file's tables against the schema; raise `ConfigError` listing every problem."""
    errors: list[str] = []
    sections: dict[str, Any] = {}  # each table's settings, under its attribute in `Settings`
    top = {table.split(".")[0] for table in SCHEMA}
    for name in raw:
        if name not in top and name not in ("labels", "reminders"):
            errors.append(f"{path}: unknown table [{name}] (known: {', '.join(sorted(top))}, "
                          "labels)")
    labels: dict[str, str] = {}
    try:
        labels = label_map(raw.get("labels", {}))
    except ValueError as e:
        errors.append(f"{path}: [labels] {e}")
    reminders: tuple[Rule, ...] = ()
    try:
        reminders = reminder_rules(raw.get("reminders", DEFAULT_REMINDERS))
    except ValueError as e:
        errors.append(f"{path}: [[reminders]] {e}")
    for table, kind in SCHEMA.items():
        values: Any = raw
        for part in table.split("."):
            values = values.get(part, {}) if isinstance(values, dict) else None
        if not isinstance(values, dict):
            errors.append(f"{path}: {table} must be a table ([{table}])")
            values = {}
        settings, problems = read_table(table, kind, values)
        errors.extend(f"{path}: {problem}" for problem in problems)
        if settings is not None:
            sections[table.rsplit(".", 1)[-1]] = settings
    calls = sections.get("calls")
    if calls is not None and calls.default_language not in calls.languages:
        errors.append(f"{path}: [calls] default_language: {calls.default_language!r} "
                      f"is not in languages {list(calls.languages)}")
    daemon = sections.get("daemon")
    if daemon is not None and daemon.queue_minutes * 60 < 2 * daemon.interval_seconds:
        errors.append(f"{path}: [daemon] queue_minutes: {daemon.queue_minutes} is too short "
                      f"for interval_seconds = {daemon.interval_seconds}: deliveries must be "
                      "queued at least two intervals before they fall due")
    if errors:
        raise ConfigError("\n".join(errors))
    log.info("loaded config %s", path)
    folder = sections["templates"].folder
    if folder and not (path.parent / folder).is_dir():
        raise ConfigError(f"{path}: [templates] folder: {path.parent / folder} is not a folder")
    settings = Settings(path=path, labels=labels, reminders=reminders, **sections)
    offered_languages(settings)
    return settings


def offered_languages(settings: Settings) -> tuple[str, ...]:
    """`[calls] languages`, each of which must have a translation catalog in the template
    folders (English is the templates' own); raises `ConfigError` naming those that do."""
    available = Catalogs(settings.template_folders).languages()
    missing = [lang for lang in settings.calls.languages if lang not in available]
    if missing:
        raise ConfigError(
            f"{settings.path}: [calls] languages: no translation catalog for "
            f"{', '.join(repr(lang) for lang in missing)} (locale/<lang>/LC_MESSAGES/messages.po "
            f"in a templates folder); available: {', '.join(available)}")
    return settings.calls.languages


def read_table(table: str, kind: type[T], values: Mapping[str, Any]) -> tuple[T | None, list[str]]:
    """The settings `kind` from the keys of `[table]`, and the table's problems, each one line
    starting "[table] "; no settings when there is a problem."""
    known = keys(kind)
    nested = {t.split(".", 1)[1] for t in SCHEMA if t.startswith(f"{table}.")}
    problems = [f"[{table}] unknown key {key!r} (known: {', '.join(known)})"
                for key in values if key not in known and key not in nested]
    settings: dict[str, Any] = {}
    for key, spec in known.items():
        option: Option = spec.metadata["option"]
        try:
            settings[spec.name] = option.convert(values.get(key, option.default))
        except ValueError as e:
            problems.append(f"[{table}] {key}: {e}")
    return (None if problems else kind(**settings)), problems
