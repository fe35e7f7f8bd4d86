"""The organizer's command line. Thin: parse, call one function of `scheduler`, print.

Only this module knows about Typer, exit codes, stdout and the clock. Every error a user can act
on arrives as a `SchedulerError` and leaves as one line on stderr with exit status 2 (`run-once`
says more with its status: see its help).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import available_timezones

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, TextColumn
from sqlmodel import Session
from typer.core import TyperGroup

from scheduler import __version__, config, organizer, present
from scheduler import doctor as doctor_checks
from scheduler import log as log_setup
from scheduler.core import inputs
from scheduler.core.recurrence import Status
from scheduler.delivery import feeds, followups, invites, planning, preview, sender
from scheduler.errors import DatabaseError, NotFound, SchedulerError
from scheduler.store import backup as backups
from scheduler.store import calls, db, preferences, rsvp, subscribers
from scheduler.store.agendas import agendas_of
from scheduler.store.models import Call, DeliveryStatus, SubscriberStatus

EXIT_USAGE = 2


class OneLineErrors(TyperGroup):
    """Turns every failure into one line on stderr, never a traceback (unless --verbose)."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except SchedulerError as e:
            for line in str(e).splitlines():
                typer.echo(f"error: {line}", err=True)
            sys.exit(EXIT_USAGE)
        except typer.TyperException as e:  # usage errors: unknown option, bad integer, ...
            typer.echo(f"error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except typer.Abort:
            typer.echo("aborted", err=True)
            sys.exit(1)
        except Exception as e:
            if _verbose:
                raise
            # One line: a database error's next lines are its SQL statement and details.
            first = (str(e).splitlines() or [""])[0]
            typer.echo(f"internal error: {type(e).__name__}: {first} (run with --verbose for "
                       "the traceback, and please report it)", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


_verbose = False
app = typer.Typer(cls=OneLineErrors, no_args_is_help=True,
                  pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Recurring coalition calls: times in every zone, feeds and reminders.")
call_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="Add, change and look at recurring calls.")
app.add_typer(call_app, name="call")
subscriber_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                             help="The people who get reminders by email.")
app.add_typer(subscriber_app, name="subscriber")
feed_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="The .ics feeds members subscribe to.")
app.add_typer(feed_app, name="feed")
config_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                         help="The configuration file.")
app.add_typer(config_app, name="config")
# Piped output is not cut at 80 columns: slugs and times are meant to be copied.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def _print(renderable: Any) -> None:
    """A table (or a line) on stdout, without the spaces Rich pads each line with to the
    widest row: piped output is meant to be copied and compared."""
    with out.capture() as captured:
        out.print(renderable)
    for line in captured.get().splitlines():
        typer.echo(line.rstrip())


@dataclass
class State:
    config_option: Path | None  # --config, or $COALITION_CONFIG through it
    from_environment: bool  # the option's value came from $COALITION_CONFIG

    def found(self) -> config.Found | None:
        """The config file (`config.discover`): None when none is named and none exists."""
        return config.discover(self.config_option,
                               from_environment_variable=self.from_environment)


def now() -> datetime:
    """The clock: read here, at the edge, and handed to the library as `now`."""
    return datetime.now(UTC)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"coalition {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    config_file: Path | None = typer.Option(
        None, "--config", envvar=config.ENV_CONFIG, show_envvar=True,
        help="config file [default: the first of ./config.toml, "
        "$XDG_CONFIG_HOME/coalition/config.toml (~/.config/coalition/config.toml), "
        "/etc/coalition/config.toml]"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log progress; show tracebacks"),
    _version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                  help="print the version and exit"),
) -> None:
    global _verbose
    _verbose = verbose
    log_setup.setup(verbose)
    source = ctx.get_parameter_source("config_file")
    ctx.obj = State(config_option=config_file,
                    from_environment=source is not None and source.name == "ENVIRONMENT")


def _found(ctx: typer.Context) -> config.Found:
    """The config file, or the one-line error that lists the places looked at."""
    state: State = ctx.obj
    found = state.found()
    if found is None:
        return config.find(None)  # raises, naming them
    return found


def _settings(ctx: typer.Context) -> config.Settings:
    return config.load(_found(ctx).path)


@contextmanager
def _session(ctx: typer.Context) -> Iterator[tuple[config.Settings, Session]]:
    settings = _settings(ctx)
    engine = db.open_database(settings.database_url())
    try:
        # Objects stay readable after a commit; a pass commits once per message it sends.
        with Session(engine, expire_on_commit=False) as session:
            yield settings, session
    finally:
        engine.dispose()


def _owed(owed: organizer.Owed, json_out: bool = False) -> None:
    """Say what a stored change did after it was stored: a late notice, invitation updates (on
    stderr with --json, which keeps stdout for the JSON); then raise what stopped it (status
    2, or 1 when it was not a user's error), or exit 1 when an invitation update was not
    sent."""
    if owed.notice:
        typer.echo(f"less than 48 hours ahead: change notice queued for the forum and "
                   f"{owed.notice - 1} members", err=json_out)
    if owed.updates.sent:
        typer.echo(f"calendar update sent to {len(owed.updates.sent)} invited", err=json_out)
    for failure in owed.updates.failed:
        typer.echo(f"error: calendar update not sent to {failure} (the change itself is saved)",
                   err=True)
    if owed.failure is not None:
        raise owed.failure
    if owed.updates.failed:
        raise typer.Exit(1)


def _json(value: Any) -> None:
    """Indented for a person at a terminal; on one line for a program (Python's fast encoder:
    `call list --json` over 10,000 calls takes a third of the time)."""
    indent = 2 if sys.stdout.isatty() else None
    typer.echo(json.dumps(value, indent=indent, ensure_ascii=False))


# --- terminal conventions: progress, standard input, choices, --on next


def _terminal() -> bool:
    """Whether standard error is a terminal, someone watching: progress is shown only there."""
    return sys.stderr.isatty()


def _no_progress(done: int) -> None:
    """Progress where none is shown: piped, redirected or --json."""


@contextmanager
def _progress(what: str, *, json_out: bool = False,
              unit: str = "") -> Iterator[Callable[[int], None]]:
    """While the block runs, `what` with a spinner on standard error, and with `unit` the
    count the function it gives adds to ("1,234 answered"). Only when standard error is a
    terminal and the output is not --json: otherwise (piped, in scripts and tests) nothing
    at all. It disappears when the block ends, leaving the output as it would be without."""
    if json_out or not _terminal():
        yield _no_progress
        return
    columns: list[ProgressColumn | str] = [SpinnerColumn(), TextColumn("{task.description}"),
                                           BarColumn()]
    if unit:
        columns.append(TextColumn(f"{{task.completed:,.0f}} {unit}"))
    bar = Progress(*columns, console=Console(stderr=True, force_terminal=True),
                   transient=True, redirect_stdout=False)
    with bar:
        task = bar.add_task(what, total=None)
        yield lambda done: bar.advance(task, done)


def _read_bytes(path: Path, *, limit: int = -1) -> tuple[str, bytes]:
    """What the file `path` holds (`-`: standard input, named <stdin> in messages): all of
    it, or with a `limit` one byte more at most, so that the reader can say it is too big."""
    if str(path) == "-":
        return "<stdin>", sys.stdin.buffer.read(limit + 1 if limit >= 0 else -1)
    try:
        with path.open("rb") as f:
            return str(path), f.read(limit + 1 if limit >= 0 else -1)
    except FileNotFoundError as e:
        raise SchedulerError(f"{path}: no such file") from e
    except IsADirectoryError as e:
        raise SchedulerError(f"{path}: is a folder, not a file") from e
    except OSError as e:
        raise SchedulerError(f"{path}: cannot read: {e.strerror or e}") from e


class Template(StrEnum):
    """`render --template`: the messages (as `scheduler.delivery.render.TEMPLATES`)."""

    ANNOUNCEMENT = "announcement"
    TOMORROW = "tomorrow"
    TODAY = "today"
    STARTS_SOON = "starts-soon"
    FOLLOWUP = "followup"
    CHANGED = "changed"


class Channel(StrEnum):
    """`render --channel` (as `scheduler.delivery.render.CHANNELS`)."""

    FORUM = "forum"
    EMAIL = "email"


Choice = TypeVar("Choice", bound=StrEnum)


def _choice(kind: type[Choice], what: str) -> Callable[[str], Choice]:
    """A Typer parser for one of `kind`'s words: --help lists them and completion offers them;
    another word is refused as the library refuses it ("unknown channel 'sms'; choose one of
    forum, email")."""
    def parse(text: str) -> Choice:
        try:
            return kind(text)
        except ValueError:
            raise typer.BadParameter(f"unknown {what} {text!r}; choose one of "
                                     f"{', '.join(kind)}") from None
    return parse


def _complete_language(ctx: typer.Context, incomplete: str) -> list[str]:
    """Completion for --lang: the languages the config file allows ([calls] languages)."""
    option = ctx.find_root().params.get("config_file")
    try:
        languages = config.load(config.find(option).path).calls.languages
    except SchedulerError:
        return []
    return [code for code in languages if code.startswith(incomplete)]


def _complete_zone(incomplete: str) -> list[str]:
    """Completion for a zone option: the IANA names (from tzdata) that start so."""
    return sorted(zone for zone in available_timezones() if zone.startswith(incomplete))


def _on(session: Session, slug: str, on: str) -> str:
    """`--on` as `scheduler` reads it: a date (as given); for `today`, today's date in the
    call's zone; for `next`, the original wall time of the call's next occurrence from now
    (or, when none is to come, an error naming the nearest ones)."""
    word = inputs.occurrence_word(on)
    if word is None:
        return on
    call = calls.get_call(session, slug)
    moment = now()
    if word == inputs.TODAY:
        return inputs.today_in(calls.zone_of(call), moment).isoformat()
    coming = calls.next_occurrence(session, call, moment)
    if coming is not None:
        return coming.original_local.replace(tzinfo=None).isoformat()
    wall = moment.astimezone(calls.zone_of(call)).replace(tzinfo=None, microsecond=0)
    try:
        calls.locate(session, call, wall.isoformat())
    except NotFound as e:
        raise NotFound(f"--on next: {e}") from e
    return wall.isoformat()


# --- the database


JSON = typer.Option(False, "--json", help="print JSON instead of text (shapes: README, "
                    "Command line)")


@config_app.command("init")
def config_init(
    path: Path | None = typer.Argument(
        None, help="where to write it (a folder gets config.toml inside) [default: "
        "./config.toml]"),
    user: bool = typer.Option(False, "--user", help="write it to "
                              "$XDG_CONFIG_HOME/coalition/config.toml (default "
                              "~/.config/coalition/config.toml)"),
    system: bool = typer.Option(False, "--system", help="write it to "
                                "/etc/coalition/config.toml (as root)"),
    json_out: bool = JSON,
) -> None:
    """Write a commented config.toml with every default; never replaces an existing file.

    Commands read the file --config or $COALITION_CONFIG names, else the first that exists of
    ./config.toml, the user's (--user) and the system's (--system).

    \b
    Example:
      coalition config init --system
    """
    if path is not None and (user or system):
        raise typer.BadParameter("give PATH, --user or --system: one of them")
    written = config.write_example(path if path is not None else
                                   config.init_target(user=user, system=system))
    if json_out:
        return _json({"wrote": str(written)})
    typer.echo(f"wrote {written}: the defaults, each with a comment; relative paths in it are "
               "relative to its folder")


@app.command()
def init(ctx: typer.Context, json_out: bool = JSON) -> None:
    """Create the database, or upgrade its schema to this version.

    Where no config file is found (none named by --config or $COALITION_CONFIG, none in
    ./config.toml, the user's or the system's config folder), first writes ./config.toml with
    the defaults, as `config init` does.

    \b
    Example:
      coalition init
    """
    given: State = ctx.obj
    written = None
    if given.found() is None:
        written = config.write_example(config.DEFAULT_CONFIG)
        if not json_out:
            typer.echo(f"wrote {written} (the defaults, commented: edit it to suit)")
    settings = _settings(ctx)
    engine = db.make_engine(settings.database_url())
    try:
        schema = db.migrate(engine)
    finally:
        engine.dispose()
    where = engine.url.render_as_string(hide_password=True)
    if json_out:
        done = ("created" if schema.before is None else
                "upgraded" if schema.changed else "up to date")
        return _json({"config": str(settings.path),
                      "wrote_config": str(written) if written is not None else None,
                      "database": where, "done": done, "schema_before": schema.before,
                      "schema": schema.after})
    if schema.before is None:
        typer.echo(f"created database {where} (schema {schema.after})")
    elif schema.changed:
        typer.echo(f"upgraded database {where} from schema {schema.before} to {schema.after}")
    else:
        typer.echo(f"database {where} is up to date (schema {schema.after})")


@app.command("backup")
def backup_database(
    ctx: typer.Context,
    file: Path = typer.Argument(..., metavar="FILE",
                                help="the copy to write (a new file; FILE.secret too)"),
    json_out: bool = JSON,
) -> None:
    """Copy the SQLite database, consistently, even while the daemon runs, and the secret kept
    beside it. (PostgreSQL: use pg_dump.)

    \b
    Example:
      coalition backup /var/backups/coalition/coalition-2026-11-30.sqlite3
    """
    done = backups.backup(_settings(ctx).database_url(), file)
    if json_out:
        return _json(present.backup_dict(done))
    for line in done.lines():
        typer.echo(line)


# --- calls


def _plain_text(field: str) -> Callable[[str | None], str | None]:
    """A Typer callback: the option's text, refused (one line naming it) if it holds a control
    character; for options that no `scheduler.core.inputs` converter sees on the way in."""
    def check(value: str | None) -> str | None:
        return None if value is None else inputs.plain_text(value, field=field)
    return check


TITLE = typer.Option(None, "--title", help="the call's name, as members see it")
SLUG = typer.Option(None, "--slug", help="short name used in commands and URLs [default: from "
                    "the title]")
DESCRIPTION = typer.Option(None, "--description", help="agenda or other details",
                           callback=_plain_text("--description"))
TZ = typer.Option(None, "--tz", "--timezone", help="IANA zone the start is in, e.g. "
                  "America/New_York", autocompletion=_complete_zone)
START = typer.Option(None, "--start", help="wall time of the first occurrence in --tz, "
                     "e.g. '2018-11-13 10:00'")
DURATION = typer.Option(None, "--duration", help="minutes [default: from config.toml]")
RRULE = typer.Option(None, "--rrule", help="RFC 5545 rule, e.g. 'FREQ=MONTHLY;BYDAY=2TU'; "
                     "none (or '' in edit) for a one-off")
REGISTER = typer.Option(None, "--register-url", help="registration page (http or https)")
JOIN = typer.Option(None, "--join-url", help="where to join the call (http or https)")
TOPIC = typer.Option(None, "--forum-topic", help="Discourse topic id (0 in edit removes it)")
LANG = typer.Option(None, "--language", "--lang", help="language of the call's texts, one of "
                    "[calls] languages [default: [calls] default_language]",
                    autocompletion=_complete_language)
ZONES = typer.Option(None, "--zones", help="comma-separated IANA zones to show times in "
                     "[default: from config.toml; '' in edit restores it]")
# `call add` needs these three: marked in --help; the library names every one missing at once.
TITLE_NEW = typer.Option(None, "--title", help="the call's name, as members see it [required]")
TZ_NEW = typer.Option(None, "--tz", "--timezone", help="IANA zone the start is in, e.g. "
                      "America/New_York [required]", autocompletion=_complete_zone)
START_NEW = typer.Option(None, "--start", help="wall time of the first occurrence in --tz, "
                         "e.g. '2018-11-13 10:00' [required]")
SLUG_ARG = typer.Argument(..., metavar="SLUG", help="the call's short name, as `coalition call "
                          "list` shows it")


@call_app.command("add")
def call_add(ctx: typer.Context, title: str | None = TITLE_NEW, slug: str | None = SLUG,
             description: str | None = DESCRIPTION, tz: str | None = TZ_NEW,
             start: str | None = START_NEW, duration: int | None = DURATION,
             rrule: str | None = RRULE, register_url: str | None = REGISTER,
             join_url: str | None = JOIN, forum_topic: int | None = TOPIC,
             language: str | None = LANG, zones: str | None = ZONES,
             json_out: bool = JSON) -> None:
    """Add a call: a first start in its zone, and a rule for the ones after it.

    \b
    Example:
      coalition call add --title "Justice For All coalition call" \\
          --start "2026-12-08 10:00" --tz America/New_York --rrule "FREQ=MONTHLY;BYDAY=2TU"
    """
    data = calls.CallInput(
        title=title, slug=slug, description=description, timezone=tz, start=start,
        duration=duration, rrule=rrule, register_url=register_url, join_url=join_url,
        forum_topic=forum_topic, language=language, zones=zones)
    with _session(ctx) as (settings, session):
        done = organizer.add_call(session, settings, data, now=now())
        if done.owed.feeds is not None:  # else they failed: that error is all there is to say
            _show_call(session, settings, done.call, json_out, f"added {done.call.slug}")
        _owed(done.owed, json_out)


@call_app.command("edit")
def call_edit(ctx: typer.Context, slug_: str = SLUG_ARG,
              title: str | None = TITLE, slug: str | None = SLUG,
              description: str | None = DESCRIPTION, tz: str | None = TZ,
              start: str | None = START, duration: int | None = DURATION,
              rrule: str | None = RRULE, register_url: str | None = REGISTER,
              join_url: str | None = JOIN, forum_topic: int | None = TOPIC,
              language: str | None = LANG, zones: str | None = ZONES,
              json_out: bool = JSON) -> None:
    """Change any field of a call; moves and cancellations follow it by date.

    \b
    Example:
      coalition call edit justice-for-all-coalition-call --start "2026-12-08 11:00"
    """
    data = calls.CallInput(
        title=title, slug=slug, description=description, timezone=tz, start=start,
        duration=duration, rrule=rrule, register_url=register_url, join_url=join_url,
        forum_topic=forum_topic, language=language, zones=zones)
    with _session(ctx) as (settings, session):
        done = organizer.edit_call(session, settings, slug_, data, now=now())
        if done.owed.feeds is not None:  # else they failed: that error is all there is to say
            _show_call(session, settings, done.call, json_out, f"changed {done.call.slug}")
        _owed(done.owed, json_out)


def _show_call(session: Session, settings: config.Settings, call: Call, json_out: bool,
               headline: str | None = None) -> None:
    next_one = calls.next_occurrence(session, call, now())
    agendas = agendas_of(session, call.id)
    if json_out:
        return _json(present.call_dict(call, settings, next_one, agendas=agendas))
    if headline:
        typer.echo(headline)
    _print(present.call_table(call, settings, next_one, agendas))


@call_app.command("list")
def call_list(ctx: typer.Context, json_out: bool = JSON) -> None:
    """All calls, with their next occurrence (or why a call cannot be served).

    \b
    Example:
      coalition call list --json
    """
    with _session(ctx) as (settings, session):
        rows = present.listing(session, now())
        if json_out:
            return _json([present.call_dict(r.call, settings, r.next, error=r.error,
                                            agendas=r.agendas) for r in rows])
        _print(present.calls_table(rows) if rows else "no calls yet")


@call_app.command("show")
def call_show(ctx: typer.Context, slug: str = SLUG_ARG, json_out: bool = JSON) -> None:
    """One call's fields.

    \b
    Example:
      coalition call show justice-for-all-coalition-call
    """
    with _session(ctx) as (settings, session):
        _show_call(session, settings, calls.get_call(session, slug), json_out)


@call_app.command("occurrences")
def call_occurrences(
    ctx: typer.Context, slug: str = SLUG_ARG,
    start: str | None = typer.Option(None, "--from", help="first date, in the call's zone "
                                     "[default: now]"),
    end: str | None = typer.Option(None, "--to", help="last date (inclusive)"),
    count: int | None = typer.Option(None, "--count", help="at most this many [default: 10 "
                                     "when --to is not given]"),
    json_out: bool = JSON,
) -> None:
    """A call's occurrences, moved and cancelled ones marked, with local time and UTC.

    \b
    Example:
      coalition call occurrences justice-for-all-coalition-call --from 2026-12-01 --count 6
    """
    with _session(ctx) as (_, session):
        call = calls.get_call(session, slug)
        found = calls.call_occurrences(session, call, now=now(), start=start, end=end,
                                       count=count)
        if json_out:
            return _json([present.occurrence_dict(o) for o in found])
        _print(present.occurrences_table(found) if found else "no occurrences in that window")


ON_HELP = ("the occurrence's date in the call's zone, e.g. 2019-02-12; or 'next' (the next one "
           "from now) or 'today'")
ON = typer.Option(..., "--on", help=ON_HELP)


def _said(result: organizer.OccurrenceDone, done: str, already: str) -> None:
    o = result.occurrence
    when = f"{o.original_local:%a %Y-%m-%d %H:%M %Z}"
    typer.echo(f"{result.call.slug}: {when} {done if result.changed else already}")


@call_app.command("move")
def call_move(ctx: typer.Context, slug: str = SLUG_ARG, on: str = ON,
              to: str = typer.Option(..., "--to", help="new wall time in the call's zone"),
              duration: int | None = typer.Option(None, "--duration", help="new length in "
                                                  "minutes"),
              json_out: bool = JSON) -> None:
    """Move one occurrence; it keeps its id (its original start). A cancelled one is refused:
    run `call restore` first.

    \b
    Example:
      coalition call move justice-for-all-coalition-call --on next --to "2026-12-15 10:00"
    """
    with _session(ctx) as (settings, session):
        done = organizer.move(session, settings, slug, on=_on(session, slug, on), to=to,
                              duration=duration, now=now())
        if json_out:
            _json(present.occurrence_done_dict(done))
            return _owed(done.owed, json_out)
        _owed(done.owed)
        o = done.occurrence
        target = (f"moved to {o.local_start:%a %Y-%m-%d %H:%M %Z} ({present.iso_utc(o.start)})"
                  if done.off_schedule else "is back at its usual time")
        _said(done, target, "was already there")


@call_app.command("cancel")
def call_cancel(ctx: typer.Context, slug: str = SLUG_ARG, on: str = ON,
                json_out: bool = JSON) -> None:
    """Cancel one occurrence.

    \b
    Example:
      coalition call cancel justice-for-all-coalition-call --on 2026-12-08
    """
    with _session(ctx) as (settings, session):
        done = organizer.cancel(session, settings, slug, on=_on(session, slug, on), now=now())
        if json_out:
            _json(present.occurrence_done_dict(done))
        else:
            _said(done, "cancelled", "was already cancelled")
        _owed(done.owed, json_out)


@call_app.command("restore")
def call_restore(ctx: typer.Context, slug: str = SLUG_ARG, on: str = ON,
                 json_out: bool = JSON) -> None:
    """Undo a move or cancellation of one occurrence (exit status 2 when there is none).

    \b
    Example:
      coalition call restore justice-for-all-coalition-call --on 2026-12-08
    """
    with _session(ctx) as (settings, session):
        done = organizer.restore(session, settings, slug, on=_on(session, slug, on), now=now())
        if json_out:
            _json(present.occurrence_done_dict(done))
        else:
            _said(done, "restored", "was neither moved nor cancelled")
        _owed(done.owed, json_out)


@call_app.command("agenda")
def call_agenda(ctx: typer.Context, slug: str = SLUG_ARG, on: str = ON,
                file: Path | None = typer.Option(None, "--file", help="the agenda, a Markdown "
                                                 "file in UTF-8; - for standard input"),
                clear: bool = typer.Option(False, "--clear", help="remove the agenda: the "
                                           "call's description stands for it again"),
                json_out: bool = JSON) -> None:
    """Give one occurrence its own agenda, shown in every message about it, on the members'
    page and in calendars in place of the call's description. It is no change of time: no
    change notice, no new announcement.

    \b
    Example:
      coalition call agenda justice-for-all-coalition-call --on 2018-12-11 --file agenda.md
    """
    if (file is None) == (not clear):
        raise SchedulerError("give either --file (the agenda; - for standard input) or "
                             "--clear, not both" if clear else "give --file FILE (the "
                             "agenda; - for standard input), or --clear to remove it")
    text, field = None, "the agenda"
    if file is not None:
        limit = inputs.MAX_AGENDA * 4  # bytes: UTF-8 takes at most four for a character
        source, data = _read_bytes(file, limit=limit)
        field = f"--file {source}"
        if len(data) > limit:
            raise SchedulerError(f"{field}: more than an agenda holds ({inputs.MAX_AGENDA:,} "
                                 "characters)")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise SchedulerError(f"{field}: not UTF-8 text (byte {e.start + 1} is "
                                 f"0x{data[e.start]:02x}); save it as UTF-8") from e
    with _session(ctx) as (settings, session):
        done = organizer.agenda(session, settings, slug, on=_on(session, slug, on), text=text,
                                now=now(), field=field)
        if json_out:
            _json(present.occurrence_done_dict(done))
        else:
            _said(done, "has its own agenda" if text is not None else "has no agenda of its "
                  "own any more (the call's description stands for it)",
                  "already has that agenda" if text is not None else "had no agenda of its own")
        _owed(done.owed, json_out)


@call_app.command("delete")
def call_delete(ctx: typer.Context, slug: str = SLUG_ARG,
                yes: bool = typer.Option(False, "--yes", "-y", help="do not ask"),
                json_out: bool = JSON) -> None:
    """Delete a call and its changes.

    \b
    Example:
      coalition call delete justice-for-all-coalition-call --yes
    """
    if not yes and sys.stdin.isatty():
        typer.confirm(f"delete {slug} and all its moves and cancellations?", abort=True)
    with _session(ctx) as (settings, session):
        done = organizer.delete_call(session, settings, slug, now=now())
        if json_out:
            _json({"deleted": done.call.slug, "title": done.call.title,
                   **present.owed_dict(done.owed)})
        else:
            typer.echo(f"deleted {done.call.slug} ({done.call.title})")
        _owed(done.owed, json_out)


# --- feeds and the daemon


@feed_app.command("build")
def feed_build(ctx: typer.Context, json_out: bool = JSON) -> None:
    """Write calendars/<slug>.ics and calendars/all.ics (only files that changed).

    \b
    Example:
      coalition feed build
    """
    with _session(ctx) as (settings, session), _progress("building feeds", json_out=json_out):
        result = feeds.build(session, settings)
    if json_out:
        return _json(present.feeds_dict(result, settings.calendars))
    for path in result.written:
        typer.echo(f"wrote {path}")
    for path in result.removed:
        typer.echo(f"removed {path}")
    left_out = f"{len(result.skipped)} left out (see the warnings), " if result.skipped else ""
    typer.echo(f"{len(result.written)} written, {result.unchanged} unchanged, "
               f"{len(result.removed)} removed, {left_out}in {settings.calendars}")


@app.command("daemon")
def run_daemon(
    ctx: typer.Context,
    host: str | None = typer.Option(None, "--host", help="[default: [web] host in config]"),
    port: int | None = typer.Option(None, "--port", help="[default: [web] port in config]"),
) -> None:
    """Run the service: send reminders when due and serve the feeds, until Ctrl-C or SIGTERM
    (which let the messages being sent finish first).

    \b
    Example:
      coalition daemon --host 127.0.0.1 --port 8080
    """
    settings = _settings(ctx)
    problems = doctor_checks.check_templates(settings)  # fail now, not when a reminder is due
    if problems:
        for problem in problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(EXIT_USAGE)
    log_setup.for_daemon()
    engine = db.open_database(settings.database_url())
    listen_host = host if host is not None else settings.web.host
    listen_port = port if port is not None else settings.web.port
    try:
        from scheduler import daemon  # the web server and scheduler: only this command

        daemon.run(settings, engine, host=listen_host, port=listen_port, worker=_worker(),
                   on_ready=lambda url: typer.echo(f"ready: listening on {url} (feeds from "
                                                   f"{settings.calendars})", err=True))
    finally:
        engine.dispose()


@app.command()
def invite(
    ctx: typer.Context, slug: str = SLUG_ARG,
    to: list[str] = typer.Option(..., "--to", help="an address to invite (repeat for more)"),
    lang: str | None = typer.Option(None, "--lang", help="language of the invitations "
                                    "[default: each subscriber's own, else the call's]",
                                    autocompletion=_complete_language),
    json_out: bool = JSON,
) -> None:
    """Email a calendar invitation for the whole series; later changes follow by themselves.

    Every address is checked before anything is sent; one that cannot be used stops them all.

    \b
    Example:
      coalition invite justice-for-all-coalition-call --to ada@example.org
    """
    with _session(ctx) as (settings, session):
        report = invites.invite(session, settings, slug, to, now=now(), lang=lang)
        if json_out:
            _json({"call": slug, "sent": list(report.sent), "failed": list(report.failed)})
        else:
            for address in report.sent:
                typer.echo(f"invited {address}")
        for failure in report.failed:
            typer.echo(f"error: invitation not sent to {failure}", err=True)
        if report.failed:
            raise typer.Exit(1)


@app.command("import")
def import_ics(
    ctx: typer.Context, file: Path = typer.Argument(..., help="an .ics file, e.g. a Google "
                                                    "Calendar export; - for standard input"),
    dry_run: bool = typer.Option(False, "--dry-run", help="check and show what would be "
                                 "imported and what skipped, store nothing"),
    strict: bool = typer.Option(False, "--strict", help="all or nothing: refuse the file if "
                                "any event cannot be a call"),
    json_out: bool = JSON,
) -> None:
    """Create calls from the events of an .ics file, with their moves and cancellations.

    Events that cannot be calls (all-day or floating ones, to-dos, ...) are skipped, each
    listed with its reason; with --strict, any of them refuses the whole file.

    \b
    Example:
      coalition import --dry-run calendar.ics
      curl -s https://example.org/calls.ics | coalition import --json -
    """
    from scheduler import importer  # only this command needs it

    def show(result: importer.ImportResult) -> None:
        if json_out:
            return _json(present.import_dict(result, dry_run=dry_run))
        for line in present.import_lines(result, dry_run=dry_run):
            typer.echo(line)

    source, data = _read_bytes(file, limit=importer.MAX_BYTES)
    with _session(ctx) as (settings, session), _progress("importing", json_out=json_out):
        try:
            done = organizer.import_calls(session, settings, data, source=source, now=now(),
                                          dry_run=dry_run, strict=strict)
        except importer.NothingToImport as e:
            show(e.result)
            raise
    show(done.plans)
    _owed(done.owed)


# --- subscribers and reminders


EMAIL_ARG = typer.Argument(..., metavar="EMAIL", help="their email address")


@subscriber_app.command("add")
def subscriber_add(
    ctx: typer.Context, email: str = EMAIL_ARG,
    name: str = typer.Option("", "--name", help="their name, as emails greet them"),
    lang: str | None = typer.Option(None, "--lang", help="the language of their reminders "
                                    "[default: from config.toml]",
                                    autocompletion=_complete_language),
    tz: str | None = typer.Option(None, "--tz", help="their IANA zone [default: the first of "
                                  "[calls] default_zones]", autocompletion=_complete_zone),
    json_out: bool = JSON,
) -> None:
    """Add someone who asked for reminders (confirmed at once).

    \b
    Example:
      coalition subscriber add ada@example.org --name Ada --lang fr --tz Africa/Kinshasa
    """
    with _session(ctx) as (settings, session):
        added = subscribers.add(session, settings, subscribers.NewSubscriber(
            email=email, name=name, language=lang, timezone=tz), now=now())
        if json_out:
            return _json(subscribers.as_dict(added))
        typer.echo(f"subscribed {added.email} ({added.language}, {added.timezone})")


@subscriber_app.command("import")
def subscriber_import(
    ctx: typer.Context,
    file: Path = typer.Argument(..., metavar="FILE", help="a CSV file of "
                                "email,name,language,timezone[,calls,reminders] (a header "
                                "line is optional); - for standard input"),
    json_out: bool = JSON,
) -> None:
    """Add everyone in a CSV file of email,name,language,timezone (all of them, or none).

    Two optional columns follow: calls (slugs, separated by spaces; empty: every call) and
    reminders (names, separated by spaces; empty: every one), as `subscriber show` lists them.

    \b
    Example:
      coalition subscriber import members.csv
      export-members | coalition subscriber import -
    """
    source, data = _read_bytes(file)
    with _session(ctx) as (settings, session), _progress("subscribing", json_out=json_out):
        count = subscribers.import_csv(session, settings, data, source=source, now=now())
    if json_out:
        return _json({"subscribed": count, "source": str(source)})
    typer.echo(f"subscribed {count} from {source}")


@subscriber_app.command("list")
def subscriber_list(
    ctx: typer.Context,
    status: SubscriberStatus | None = typer.Option(
        None, "--status", help="only those pending (not confirmed yet), confirmed or "
        "unsubscribed [default: everyone]", parser=_choice(SubscriberStatus, "status")),
    json_out: bool = JSON,
) -> None:
    """Everyone who subscribed, with their language, zone and status.

    \b
    Example:
      coalition subscriber list --status confirmed --json
    """
    with _session(ctx) as (_, session):
        found = [subscribers.as_dict(s) for s in subscribers.listing(session, status)]
    if json_out:
        return _json(found)
    _print(present.dict_table(found, ["email", "name", "language", "timezone", "status"])
           if found else "no subscribers yet")


@subscriber_app.command("show")
def subscriber_show(ctx: typer.Context, email: str = EMAIL_ARG, json_out: bool = JSON) -> None:
    """One member and what they chose: language, zone, calls, and each call's reminders.

    \b
    Example:
      coalition subscriber show ada@example.org --json
    """
    with _session(ctx) as (settings, session):
        shown = preferences.show(session, settings, email)
    if json_out:
        return _json(shown)
    for line in preferences.show_lines(shown):
        typer.echo(line)


@subscriber_app.command("remove")
def subscriber_remove(ctx: typer.Context, email: str = EMAIL_ARG,
                      json_out: bool = JSON) -> None:
    """Stop all reminders to an address; what was still to be sent is cancelled.

    \b
    Example:
      coalition subscriber remove ada@example.org
    """
    with _session(ctx) as (_, session):
        removed = subscribers.unsubscribe(session, email, now=now())
        if json_out:
            return _json(subscribers.as_dict(removed))
        typer.echo(f"unsubscribed {removed.email}")


@app.command("run-once")
def run_once(
    ctx: typer.Context,
    at: str | None = typer.Option(None, "--now", help="pretend it is this moment, e.g. "
                                  "2019-03-12T13:31:00Z [default: now]"),
    json_out: bool = JSON,
) -> None:
    """Plan, then send everything that is due, batch after batch (for cron, or to preview a
    moment).

    Exit status: 0 when every delivery due was sent, or none was due (one owed no more since
    it was queued, as when the member left or the occurrence was cancelled, is cancelled:
    nothing failed); 1 when at least one failed for good in this pass, failed with no time
    left to retry it, or expired before it could be sent (`coalition deliveries` says why),
    or on an internal error; 75 (EX_TEMPFAIL) when none failed for good but some failed for
    now and will be retried by a later pass, or when the database cannot be reached or stops
    answering; 2 for bad input or configuration, or a database that needs `coalition init`
    or a newer coalition (nothing is sent).

    \b
    Example:
      coalition run-once --now 2019-03-12T13:31:00Z
    """
    moment = inputs.instant(at, field="--now") if at else now()
    try:
        with (_progress("planning and sending", json_out=json_out, unit="answered") as advance,
              _session(ctx) as (settings, session)):  # on the real clock unless a preview
            report = sender.run_once(session, settings, now=moment, worker=_worker(),
                                     clock=None if at else now, progress=advance)
    except db.SchemaMismatch:
        raise  # the admin's to fix, with `coalition init` or an upgrade: status 2
    except DatabaseError as e:  # an outage: a later run retries
        typer.echo(f"error: {str(e).splitlines()[0]}", err=True)
        raise typer.Exit(75) from e
    if json_out:
        _json(present.pass_dict(report))
    else:
        for line in report.lines():
            typer.echo(line)
    if report.failed or report.to_retry:
        typer.echo(f"error: {report.failed} deliveries failed for good, {report.to_retry} will "
                   "be retried; see `coalition deliveries`", err=True)
        raise typer.Exit(1 if report.failed else 75)  # 75: EX_TEMPFAIL, as in sysexits.h


@app.command()
def followup(
    ctx: typer.Context, slug: str = SLUG_ARG,
    on: str = typer.Option(..., "--on", help="the occurrence's date, e.g. 2019-03-12; or "
                           "'today'"),
    recording: str | None = typer.Option(None, "--recording", help="the recording's URL"),
    notes: Path | None = typer.Option(None, "--notes", help="a file with the notes "
                                      "(Markdown); - for standard input"),
    json_out: bool = JSON,
) -> None:
    """After a call: send its recording and notes to the forum and to the members.

    \b
    Example:
      coalition followup justice-for-all-coalition-call --on today \\
          --recording https://example.org/rec --notes notes.md
    """
    notes_text = _read_text(notes, "--notes") if notes else ""
    with _session(ctx) as (_, session):
        count = followups.add(session, slug, on=_on(session, slug, on), recording=recording,
                              notes=notes_text, now=now())
    if json_out:
        return _json({"call": slug, "queued": count, "forum": 1, "emails": count - 1})
    typer.echo(f"follow-up queued: {count} messages (the forum post and {count - 1} emails); "
               "the daemon or `coalition run-once` sends them")


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@app.command()
def deliveries(
    ctx: typer.Context,
    status: DeliveryStatus | None = typer.Option(
        None, "--status", help="only those pending, sent, failed, missed or cancelled "
        "[default: all]", parser=_choice(DeliveryStatus, "status")),
    upcoming: bool = typer.Option(False, "--upcoming", help="instead, the reminders planned "
                                  "but not queued yet: one line each, with its recipients"),
    at: str | None = typer.Option(None, "--now", help="with --upcoming: as planned at this "
                                  "moment, e.g. 2019-03-12T13:31:00Z [default: now]"),
    days: int | None = typer.Option(None, "--days", min=1, max=366, help="with --upcoming: "
                                    f"how many days ahead [default: {planning.UPCOMING_DAYS}]"),
    json_out: bool = JSON,
) -> None:
    """The outbox: every reminder queued, and what became of it.

    \b
    Example:
      coalition deliveries --status failed
    """
    if upcoming:
        if status is not None:
            raise typer.BadParameter("--status and --upcoming do not go together")
        moment = inputs.instant(at, field="--now") if at else now()
        with _session(ctx) as (settings, session):
            rows = present.upcoming(planning.upcoming(session, settings, now=moment,
                                                      days=days or planning.UPCOMING_DAYS))
        columns = ["call", "occurrence_id", "rule", "channel", "due", "recipients"]
        empty = "nothing planned beyond the queue"
    else:
        if at is not None or days is not None:
            raise typer.BadParameter("--now and --days go with --upcoming")
        with _session(ctx) as (_, session):
            rows = present.deliveries(session, status)
        columns = ["call", "occurrence_id", "rule", "channel", "recipient", "status", "due",
                   "attempts", "last_error"]
        empty = "no deliveries"
    if json_out:
        return _json(rows)
    if not rows:
        typer.echo(empty)
        return
    _print(present.dict_table(rows, columns))
    if not upcoming:
        for line in present.delivery_summary(rows):
            typer.echo(line)


# --- times and messages


@app.command()
def times(
    ctx: typer.Context, slug: str = SLUG_ARG, on: str = ON,
    zones: str | None = typer.Option(None, "--zones", help="comma-separated IANA zones "
                                     "[default: the call's]"),
    lang: str | None = typer.Option(None, "--lang", help="language [default: the call's]",
                                    autocompletion=_complete_language),
    json_out: bool = JSON,
) -> None:
    """One occurrence's local time in several zones.

    \b
    Example:
      coalition times justice-for-all-coalition-call --on next --zones Asia/Kathmandu
    """
    with _session(ctx) as (settings, session):
        day = _on(session, slug, on)
        rows = preview.zone_times(session, settings, slug, on=day, zones=zones, lang=lang)
        occurrence = preview.find_occurrence(session, calls.get_call(session, slug), day)
        cancelled = occurrence.status is Status.CANCELLED
        if json_out:
            return _json([row.as_dict() | ({"cancelled": True} if cancelled else {})
                          for row in rows])
        if cancelled:
            typer.echo(f"{slug}: the occurrence of {occurrence.original_local:%Y-%m-%d} is "
                       "cancelled; the times it had:")
        _print(present.zone_table(rows))


@app.command()
def render(
    ctx: typer.Context, slug: str = SLUG_ARG, on: str = ON,
    template: Template = typer.Option(..., "--template", help="which message",
                                      parser=_choice(Template, "template")),
    channel: Channel = typer.Option(Channel.FORUM, "--channel", help="as a forum post "
                                    "(Markdown) or as an email (subject, text and HTML)",
                                    parser=_choice(Channel, "channel")),
    lang: str | None = typer.Option(None, "--lang", help="language [default: the call's]",
                                    autocompletion=_complete_language),
    tz: str | None = typer.Option(None, "--tz", help="the reader's zone, shown first "
                                  "[default: the call's]", autocompletion=_complete_zone),
    at: str | None = typer.Option(None, "--now", help="the moment of sending, e.g. "
                                  "2018-11-13T14:30:00Z [default: now]"),
    recording: str | None = typer.Option(None, "--recording", help="recording URL (followup)"),
    notes: Path | None = typer.Option(None, "--notes", help="file with notes (followup); - "
                                      "for standard input"),
    json_out: bool = JSON,
) -> None:
    """Preview a message exactly as it would be sent.

    \b
    Example:
      coalition render justice-for-all-coalition-call --on next --template starts-soon \\
          --channel email --lang fr
    """
    moment = inputs.instant(at, field="--now") if at else now()
    notes_text = _read_text(notes, "--notes") if notes else None
    with _session(ctx) as (settings, session):
        day = _on(session, slug, on)
        message = preview.render_message(
            session, settings, slug, on=day, template=template,
            channel=channel, now=moment, lang=lang, reader_zone=tz, recording_url=recording,
            notes=notes_text)
    if json_out:
        return _json(present.message_dict(message))
    if message.subject is None:
        typer.echo(message.text, nl=False)
    else:
        typer.echo(f"Subject: {message.subject}\n\n{message.text}\n--- HTML ---\n{message.html}",
                   nl=False)


def _read_text(path: Path, field: str) -> str:
    """The text of the file `path` (`-`: standard input), checked as plain text."""
    source, data = _read_bytes(path)
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError as e:
        raise SchedulerError(f"{field} {source}: cannot read: {e}") from e
    return inputs.plain_text(text, field=f"{field} {source}")


@app.command()
def doctor(ctx: typer.Context, json_out: bool = JSON) -> None:
    """Check config, database, templates, the mail server login and the forum's API key.

    The config line says which file was read, and how it was found: --config,
    $COALITION_CONFIG, ./config.toml, $XDG_CONFIG_HOME (or ~/.config) or /etc.

    \b
    Example:
      coalition doctor
    """
    found = _found(ctx)
    settings = config.load(found.path)
    results = doctor_checks.run(settings)
    failed = not all(result.ok for result in results)
    if json_out:
        _json({"config": {"path": str(settings.path), "source": found.source},
               "checks": [present.check_dict(result) for result in results], "ok": not failed})
    else:
        for result in results:
            detail = result.detail
            if result.name == "config":
                detail += f" (from {found.source})"
            typer.echo(f"{result.name}: {'ok' if result.ok else 'error'}: {detail}",
                       err=not result.ok)
    if failed:
        raise typer.Exit(EXIT_USAGE)


@app.command()
def check(ctx: typer.Context, json_out: bool = JSON) -> None:
    """Check config.toml and render every template in every language with sample data.

    \b
    Example:
      coalition check
    """
    settings = _settings(ctx)
    if not json_out:
        typer.echo(f"{settings.path}: ok")
    problems = doctor_checks.check_templates(settings)
    if json_out:
        _json({"config": str(settings.path),
               "templates": [str(f) for f in settings.template_folders],
               "problems": problems, "ok": not problems})
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        raise typer.Exit(EXIT_USAGE)
    if not json_out:
        folders = ", ".join(str(f) for f in settings.template_folders)
        typer.echo(f"templates in {folders}: ok")


# --- who is coming (issue 19)

rsvp_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="Members' answers: who will be at a call.")
app.add_typer(rsvp_app, name="rsvp")


@rsvp_app.command("list")
def rsvp_list(ctx: typer.Context, slug: str = SLUG_ARG, on: str = ON,
              json_out: bool = JSON) -> None:
    """Who said "I'll be there" or "Can't make it" for one occurrence, and how many.

    \b
    Example:
      coalition rsvp list justice-for-all-coalition-call --on next --json
    """
    with _session(ctx) as (_, session):
        call = calls.get_call(session, slug)
        occurrence = preview.find_occurrence(session, call, _on(session, slug, on))
        found = rsvp.listing(session, call, occurrence)
    if json_out:
        return _json(found)
    for line in rsvp.listing_lines(found):
        typer.echo(line)


if __name__ == "__main__":
    app()
