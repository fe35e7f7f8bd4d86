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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from sqlmodel import Session
from typer.core import TyperGroup

from scheduler import __version__, config, daemon, organizer, present
from scheduler import doctor as doctor_checks
from scheduler import log as log_setup
from scheduler.core import inputs
from scheduler.delivery import feeds, followups, invites, planning, preview, sender
from scheduler.errors import DatabaseError, SchedulerError
from scheduler.store import backup as backups
from scheduler.store import calls, db, subscribers
from scheduler.store.models import Call

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
            typer.echo(f"internal error: {type(e).__name__}: {e} (run with --verbose for the "
                       "traceback, and please report it)", err=True)
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


@dataclass
class State:
    config_path: Path
    named: bool  # given by --config or $COALITION_CONFIG, not the default ./config.toml


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
        help="config file [default: ./config.toml]"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log progress; show tracebacks"),
    _version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                  help="print the version and exit"),
) -> None:
    global _verbose
    _verbose = verbose
    log_setup.setup(verbose)
    ctx.obj = State(config_path=config.config_path(config_file), named=config_file is not None)


def _settings(ctx: typer.Context) -> config.Settings:
    state: State = ctx.obj
    return config.load(state.config_path)


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


def _owed(owed: organizer.Owed) -> None:
    """Say what a stored change did after it was stored: a late notice, invitation updates; then
    raise what stopped it (status 2, or 1 when it was not a user's error), or exit 1 when an
    invitation update was not sent."""
    if owed.notice:
        typer.echo(f"less than 48 hours ahead: change notice queued for the forum and "
                   f"{owed.notice - 1} members")
    if owed.updates.sent:
        typer.echo(f"calendar update sent to {len(owed.updates.sent)} invited")
    for failure in owed.updates.failed:
        typer.echo(f"error: calendar update not sent to {failure} (the change itself is saved)",
                   err=True)
    if owed.failure is not None:
        raise owed.failure
    if owed.updates.failed:
        raise typer.Exit(1)


def _json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


# --- the database


@config_app.command("init")
def config_init(path: Path = typer.Argument(
        Path("config.toml"), help="where to write it (a folder gets config.toml inside)")) -> None:
    """Write a commented config.toml with every default; never replaces an existing file.

    Example: coalition config init /etc/coalition/config.toml
    """
    written = config.write_example(path)
    typer.echo(f"wrote {written}: the defaults, each with a comment; relative paths in it are "
               "relative to its folder")


@app.command()
def init(ctx: typer.Context) -> None:
    """Create the database, or upgrade its schema to this version.

    In a folder without a config file (and with no --config or $COALITION_CONFIG naming one),
    first writes ./config.toml with the defaults, as `config init` does.
    """
    given: State = ctx.obj
    if not given.named and not given.config_path.exists():
        written = config.write_example(given.config_path)
        typer.echo(f"wrote {written} (the defaults, commented: edit it to suit)")
    settings = _settings(ctx)
    engine = db.make_engine(settings.database_url())
    try:
        schema = db.migrate(engine)
    finally:
        engine.dispose()
    where = engine.url.render_as_string(hide_password=True)
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
) -> None:
    """Copy the SQLite database, consistently, even while the daemon runs, and the secret kept
    beside it. (PostgreSQL: use pg_dump.)"""
    for line in backups.backup(_settings(ctx).database_url(), file).lines():
        typer.echo(line)


# --- calls

TITLE = typer.Option(None, "--title", help="the call's name, as members see it")
SLUG = typer.Option(None, "--slug", help="short name used in commands and URLs [default: from "
                    "the title]")
DESCRIPTION = typer.Option(None, "--description", help="agenda or other details")
TZ = typer.Option(None, "--tz", "--timezone", help="IANA zone the start is in, e.g. "
                  "America/New_York")
START = typer.Option(None, "--start", help="wall time of the first occurrence in --tz, "
                     "e.g. '2018-11-13 10:00'")
DURATION = typer.Option(None, "--duration", help="minutes [default: from config.toml]")
RRULE = typer.Option(None, "--rrule", help="RFC 5545 rule, e.g. 'FREQ=MONTHLY;BYDAY=2TU'; "
                     "none (or '' in edit) for a one-off")
REGISTER = typer.Option(None, "--register-url", help="registration page (http or https)")
JOIN = typer.Option(None, "--join-url", help="where to join the call (http or https)")
TOPIC = typer.Option(None, "--forum-topic", help="Discourse topic id (0 in edit removes it)")
LANG = typer.Option(None, "--language", "--lang", help="language of the call's texts")
ZONES = typer.Option(None, "--zones", help="comma-separated IANA zones to show times in "
                     "[default: from config.toml; '' in edit restores it]")
JSON = typer.Option(False, "--json", help="print JSON instead of a table")


@call_app.command("add")
def call_add(ctx: typer.Context, title: str | None = TITLE, slug: str | None = SLUG,
             description: str | None = DESCRIPTION, tz: str | None = TZ,
             start: str | None = START, duration: int | None = DURATION,
             rrule: str | None = RRULE, register_url: str | None = REGISTER,
             join_url: str | None = JOIN, forum_topic: int | None = TOPIC,
             language: str | None = LANG, zones: str | None = ZONES,
             json_out: bool = JSON) -> None:
    """Add a call: a first start in its zone, and a rule for the ones after it."""
    data = calls.CallInput(
        title=title, slug=slug, description=description, timezone=tz, start=start,
        duration=duration, rrule=rrule, register_url=register_url, join_url=join_url,
        forum_topic=forum_topic, language=language, zones=zones)
    with _session(ctx) as (settings, session):
        done = organizer.add_call(session, settings, data, now=now())
        if done.owed.feeds is not None:  # else they failed: that error is all there is to say
            _show_call(session, settings, done.call, json_out, f"added {done.call.slug}")
        _owed(done.owed)


@call_app.command("edit")
def call_edit(ctx: typer.Context, slug_: str = typer.Argument(..., metavar="SLUG"),
              title: str | None = TITLE, slug: str | None = SLUG,
              description: str | None = DESCRIPTION, tz: str | None = TZ,
              start: str | None = START, duration: int | None = DURATION,
              rrule: str | None = RRULE, register_url: str | None = REGISTER,
              join_url: str | None = JOIN, forum_topic: int | None = TOPIC,
              language: str | None = LANG, zones: str | None = ZONES,
              json_out: bool = JSON) -> None:
    """Change any field of a call; moves and cancellations follow it by date."""
    data = calls.CallInput(
        title=title, slug=slug, description=description, timezone=tz, start=start,
        duration=duration, rrule=rrule, register_url=register_url, join_url=join_url,
        forum_topic=forum_topic, language=language, zones=zones)
    with _session(ctx) as (settings, session):
        done = organizer.edit_call(session, settings, slug_, data, now=now())
        if done.owed.feeds is not None:  # else they failed: that error is all there is to say
            _show_call(session, settings, done.call, json_out, f"changed {done.call.slug}")
        _owed(done.owed)


def _show_call(session: Session, settings: config.Settings, call: Call, json_out: bool,
               headline: str | None = None) -> None:
    next_one = calls.next_occurrence(session, call, now())
    if json_out:
        return _json(present.call_dict(call, settings, next_one))
    if headline:
        typer.echo(headline)
    out.print(present.call_table(call, settings, next_one))


@call_app.command("list")
def call_list(ctx: typer.Context, json_out: bool = JSON) -> None:
    """All calls, with their next occurrence (or why a call cannot be served)."""
    with _session(ctx) as (settings, session):
        rows = present.listing(session, now())
        if json_out:
            return _json([present.call_dict(r.call, settings, r.next, error=r.error)
                          for r in rows])
        out.print(present.calls_table(rows) if rows else "no calls yet")


@call_app.command("show")
def call_show(ctx: typer.Context, slug: str, json_out: bool = JSON) -> None:
    """One call's fields."""
    with _session(ctx) as (settings, session):
        _show_call(session, settings, calls.get_call(session, slug), json_out)


@call_app.command("occurrences")
def call_occurrences(
    ctx: typer.Context, slug: str,
    start: str | None = typer.Option(None, "--from", help="first date, in the call's zone "
                                     "[default: now]"),
    end: str | None = typer.Option(None, "--to", help="last date (inclusive)"),
    count: int | None = typer.Option(None, "--count", help="at most this many [default: 10 "
                                     "when --to is not given]"),
    json_out: bool = JSON,
) -> None:
    """A call's occurrences, moved and cancelled ones marked, with local time and UTC."""
    with _session(ctx) as (_, session):
        call = calls.get_call(session, slug)
        found = calls.call_occurrences(session, call, now=now(), start=start, end=end,
                                       count=count)
        if json_out:
            return _json([present.occurrence_dict(o) for o in found])
        out.print(present.occurrences_table(found) if found else "no occurrences in that window")


ON = typer.Option(..., "--on", help="the occurrence's date in the call's zone, e.g. 2019-02-12")


def _said(result: organizer.OccurrenceDone, done: str, already: str) -> None:
    o = result.occurrence
    when = f"{o.original_local:%a %Y-%m-%d %H:%M %Z}"
    typer.echo(f"{result.call.slug}: {when} {done if result.changed else already}")


@call_app.command("move")
def call_move(ctx: typer.Context, slug: str, on: str = ON,
              to: str = typer.Option(..., "--to", help="new wall time in the call's zone"),
              duration: int | None = typer.Option(None, "--duration", help="new length in "
                                                  "minutes")) -> None:
    """Move one occurrence; it keeps its id (its original start)."""
    with _session(ctx) as (settings, session):
        done = organizer.move(session, settings, slug, on=on, to=to, duration=duration,
                              now=now())
        _owed(done.owed)
        o = done.occurrence
        target = (f"moved to {o.local_start:%a %Y-%m-%d %H:%M %Z} ({present.iso_utc(o.start)})"
                  if done.off_schedule else "is back at its usual time")
        _said(done, target, "was already there")


@call_app.command("cancel")
def call_cancel(ctx: typer.Context, slug: str, on: str = ON) -> None:
    """Cancel one occurrence."""
    with _session(ctx) as (settings, session):
        done = organizer.cancel(session, settings, slug, on=on, now=now())
        _said(done, "cancelled", "was already cancelled")
        _owed(done.owed)


@call_app.command("restore")
def call_restore(ctx: typer.Context, slug: str, on: str = ON) -> None:
    """Undo a move or cancellation of one occurrence."""
    with _session(ctx) as (settings, session):
        done = organizer.restore(session, settings, slug, on=on, now=now())
        _said(done, "restored", "was neither moved nor cancelled")
        _owed(done.owed)


@call_app.command("delete")
def call_delete(ctx: typer.Context, slug: str,
                yes: bool = typer.Option(False, "--yes", "-y", help="do not ask")) -> None:
    """Delete a call and its changes."""
    if not yes and sys.stdin.isatty():
        typer.confirm(f"delete {slug} and all its moves and cancellations?", abort=True)
    with _session(ctx) as (settings, session):
        done = organizer.delete_call(session, settings, slug, now=now())
        typer.echo(f"deleted {done.call.slug} ({done.call.title})")
        _owed(done.owed)


# --- feeds and the daemon


@feed_app.command("build")
def feed_build(ctx: typer.Context) -> None:
    """Write calendars/<slug>.ics and calendars/all.ics (only files that changed)."""
    with _session(ctx) as (settings, session):
        result = feeds.build(session, settings)
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
    (which let the messages being sent finish first)."""
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
        daemon.run(settings, engine, host=listen_host, port=listen_port, worker=_worker(),
                   on_ready=lambda url: typer.echo(f"ready: listening on {url} (feeds from "
                                                   f"{settings.calendars})", err=True))
    finally:
        engine.dispose()


@app.command()
def invite(
    ctx: typer.Context, slug: str,
    to: list[str] = typer.Option(..., "--to", help="an address to invite (repeat for more)"),
) -> None:
    """Email a calendar invitation for the whole series; later changes follow by themselves.

    Every address is checked before anything is sent; one that cannot be used stops them all.
    """
    with _session(ctx) as (settings, session):
        report = invites.invite(session, settings, slug, to, now=now())
        for address in report.sent:
            typer.echo(f"invited {address}")
        for failure in report.failed:
            typer.echo(f"error: invitation not sent to {failure}", err=True)
        if report.failed:
            raise typer.Exit(1)


@app.command("import")
def import_ics(
    ctx: typer.Context, file: Path = typer.Argument(..., help="an .ics file, e.g. a Google "
                                                    "Calendar export"),
    dry_run: bool = typer.Option(False, "--dry-run", help="check and show, store nothing"),
) -> None:
    """Create calls from the events of an .ics file, with their moves and cancellations."""
    with _session(ctx) as (settings, session):
        done = organizer.import_calls(session, settings, file, now=now(), dry_run=dry_run)
        for item in done.plans:
            moved = sum(1 for c in item.changes if not c.cancelled)
            cancelled = len(item.changes) - moved
            typer.echo(f"{'would import' if dry_run else 'imported'} "
                       f"{item.call.slug or item.call.title}: {item.call.start_local[:16]} "
                       f"{item.call.timezone}, {item.call.rrule or 'once'} ({moved} moved, "
                       f"{cancelled} cancelled)")
        _owed(done.owed)


# --- subscribers and reminders


@subscriber_app.command("add")
def subscriber_add(
    ctx: typer.Context, email: str,
    name: str = typer.Option("", "--name"),
    lang: str | None = typer.Option(None, "--lang", help="[default: from config.toml]"),
    tz: str | None = typer.Option(None, "--tz", help="their IANA zone [default: the first of "
                                  "[calls] default_zones]"),
) -> None:
    """Add someone who asked for reminders (confirmed at once)."""
    with _session(ctx) as (settings, session):
        added = subscribers.add(session, settings, subscribers.NewSubscriber(
            email=email, name=name, language=lang, timezone=tz), now=now())
        typer.echo(f"subscribed {added.email} ({added.language}, {added.timezone})")


@subscriber_app.command("import")
def subscriber_import(ctx: typer.Context, file: Path) -> None:
    """Add everyone in a CSV file of email,name,language,timezone (all of them, or none)."""
    with _session(ctx) as (settings, session):
        count = subscribers.import_csv(session, settings, file, now=now())
        typer.echo(f"subscribed {count} from {file}")


@subscriber_app.command("list")
def subscriber_list(
    ctx: typer.Context, status: str | None = typer.Option(None, "--status"),
    json_out: bool = JSON,
) -> None:
    """Everyone who subscribed, with their language, zone and status."""
    with _session(ctx) as (_, session):
        found = [subscribers.as_dict(s) for s in subscribers.listing(session, status)]
    if json_out:
        return _json(found)
    out.print(present.dict_table(found, ["email", "name", "language", "timezone", "status"])
              if found else "no subscribers yet")


@subscriber_app.command("remove")
def subscriber_remove(ctx: typer.Context, email: str) -> None:
    """Stop all reminders to an address; what was still to be sent is cancelled."""
    with _session(ctx) as (_, session):
        removed = subscribers.unsubscribe(session, email, now=now())
        typer.echo(f"unsubscribed {removed.email}")


@app.command("run-once")
def run_once(
    ctx: typer.Context,
    at: str | None = typer.Option(None, "--now", help="pretend it is this moment, e.g. "
                                  "2019-03-12T13:31:00Z [default: now]"),
) -> None:
    """One planning and sending pass (for cron, or to preview a moment).

    Exit status: 0 when every delivery due was sent, or none was due (one owed no more since
    it was queued, as when the member left or the occurrence was cancelled, is cancelled:
    nothing failed); 1 when at least one failed for good in this pass, failed with no time
    left to retry it, or expired before it could be sent (`coalition deliveries` says why),
    or on an internal error; 75 (EX_TEMPFAIL) when none failed for good but some failed for
    now and will be retried by a later pass, or when the database cannot be reached or stops
    answering; 2 for bad input or configuration, or a database that needs `coalition init`
    or a newer coalition (nothing is sent).
    """
    moment = inputs.instant(at, field="--now") if at else now()
    try:
        with _session(ctx) as (settings, session):  # on the real clock unless a preview
            report = sender.run_once(session, settings, now=moment, worker=_worker(),
                                     clock=None if at else now)
    except db.SchemaMismatch:
        raise  # the admin's to fix, with `coalition init` or an upgrade: status 2
    except DatabaseError as e:  # an outage: a later run retries
        typer.echo(f"error: {str(e).splitlines()[0]}", err=True)
        raise typer.Exit(75) from e
    for line in report.lines():
        typer.echo(line)
    if report.failed or report.to_retry:
        typer.echo(f"error: {report.failed} deliveries failed for good, {report.to_retry} will "
                   "be retried; see `coalition deliveries`", err=True)
        raise typer.Exit(1 if report.failed else 75)  # 75: EX_TEMPFAIL, as in sysexits.h


@app.command()
def followup(
    ctx: typer.Context, slug: str,
    on: str = typer.Option(..., "--on", help="the occurrence's date, e.g. 2019-03-12"),
    recording: str | None = typer.Option(None, "--recording", help="the recording's URL"),
    notes: Path | None = typer.Option(None, "--notes", help="a file with the notes (Markdown)"),
) -> None:
    """After a call: send its recording and notes to the forum and to the members."""
    notes_text = _read_text(notes, "--notes") if notes else ""
    with _session(ctx) as (_, session):
        count = followups.add(session, slug, on=on, recording=recording, notes=notes_text,
                              now=now())
    typer.echo(f"follow-up queued: {count} messages (the forum post and {count - 1} emails); "
               "the daemon or `coalition run-once` sends them")


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@app.command()
def deliveries(
    ctx: typer.Context,
    status: str | None = typer.Option(None, "--status", help="pending, sent, failed, missed "
                                      "or cancelled"),
    upcoming: bool = typer.Option(False, "--upcoming", help="instead, the reminders planned "
                                  "but not queued yet: one line each, with its recipients"),
    at: str | None = typer.Option(None, "--now", help="with --upcoming: as planned at this "
                                  "moment, e.g. 2019-03-12T13:31:00Z [default: now]"),
    days: int | None = typer.Option(None, "--days", min=1, max=366, help="with --upcoming: "
                                    f"how many days ahead [default: {planning.UPCOMING_DAYS}]"),
    json_out: bool = JSON,
) -> None:
    """The outbox: every reminder queued, and what became of it."""
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
    out.print(present.dict_table(rows, columns))
    if not upcoming:
        for line in present.delivery_summary(rows):
            typer.echo(line)


# --- times and messages


@app.command()
def times(
    ctx: typer.Context, slug: str, on: str = typer.Option(..., "--on", help="the occurrence's "
                                                          "date, e.g. 2018-11-13"),
    zones: str | None = typer.Option(None, "--zones", help="comma-separated IANA zones "
                                     "[default: the call's]"),
    lang: str | None = typer.Option(None, "--lang", help="language [default: the call's]"),
    json_out: bool = JSON,
) -> None:
    """One occurrence's local time in several zones."""
    with _session(ctx) as (settings, session):
        rows = preview.zone_times(session, settings, slug, on=on, zones=zones, lang=lang)
        if json_out:
            return _json([row.as_dict() for row in rows])
        out.print(present.zone_table(rows))


@app.command()
def render(
    ctx: typer.Context, slug: str,
    on: str = typer.Option(..., "--on", help="the occurrence's date, e.g. 2018-11-13"),
    template: str = typer.Option(..., "--template", help="announcement, tomorrow, today, "
                                 "starts-soon or followup"),
    channel: str = typer.Option("forum", "--channel", help="forum or email"),
    lang: str | None = typer.Option(None, "--lang", help="language [default: the call's]"),
    tz: str | None = typer.Option(None, "--tz", help="the reader's zone, shown first "
                                  "[default: the call's]"),
    at: str | None = typer.Option(None, "--now", help="the moment of sending, e.g. "
                                  "2018-11-13T14:30:00Z [default: now]"),
    recording: str | None = typer.Option(None, "--recording", help="recording URL (followup)"),
    notes: Path | None = typer.Option(None, "--notes", help="file with notes (followup)"),
) -> None:
    """Preview a message exactly as it would be sent."""
    moment = inputs.instant(at, field="--now") if at else now()
    notes_text = _read_text(notes, "--notes") if notes else None
    with _session(ctx) as (settings, session):
        message = preview.render_message(
            session, settings, slug, on=on, template=template, channel=channel, now=moment,
            lang=lang, reader_zone=tz, recording_url=recording, notes=notes_text)
    if message.subject is None:
        typer.echo(message.text, nl=False)
    else:
        typer.echo(f"Subject: {message.subject}\n\n{message.text}\n--- HTML ---\n{message.html}",
                   nl=False)


def _read_text(path: Path, field: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise SchedulerError(f"{field} {path}: cannot read: {e}") from e


@app.command()
def doctor(ctx: typer.Context) -> None:
    """Check config, database, templates, the mail server login and the forum's API key."""
    failed = False
    for result in doctor_checks.run(_settings(ctx)):
        failed |= not result.ok
        line = f"{result.name}: {'ok' if result.ok else 'error'}: {result.detail}"
        typer.echo(line, err=not result.ok)
    if failed:
        raise typer.Exit(EXIT_USAGE)


@app.command()
def check(ctx: typer.Context) -> None:
    """Check config.toml and render every template in every language with sample data."""
    settings = _settings(ctx)
    typer.echo(f"{settings.path}: ok")
    problems = doctor_checks.check_templates(settings)
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        raise typer.Exit(EXIT_USAGE)
    folders = ", ".join(str(f) for f in settings.template_folders)
    typer.echo(f"templates in {folders}: ok")


if __name__ == "__main__":
    app()
