"""The command line as people who live in terminals expect it: --json on every command that
reports, `-` for standard input, progress only on a terminal, choices that --help lists and
completion offers, an example in every command's help, and `--on next` / `--on today`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import time_machine
import typer
from typer.testing import CliRunner

import cli
from scheduler import config
from scheduler.core import inputs
from scheduler.delivery import render
from tests.conftest import DATA, Coalition, Ran, SmtpSink, use_smtp
from tests.test_cli_calls import ADD, SLUG, ok

ROOT = Path(__file__).resolve().parent.parent
ANNOUNCE = "2019-03-05T15:00:00Z"  # in tests/data/calls/reminders.txt: two emails, one post


def run(config_file: Path, *args: str, stdin: str | None = None) -> Ran:
    """`coalition --config config_file ARGS...` with `stdin` as its standard input."""
    result = CliRunner().invoke(cli.app, ["--config", str(config_file), *args], input=stdin)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def with_call(coalition: Coalition) -> Coalition:
    ok(coalition(*ADD))
    return coalition


# --- JSON: one shape per command, as the README lists them


class Each:
    """A JSON object whose keys are data (a rule's name, a status), each value of `shape`."""

    def __init__(self, shape: Any) -> None:
        self.shape = shape


def mismatches(value: Any, shape: Any, where: str = "$") -> list[str]:
    """Where `value` differs from `shape`: a dict of keys to shapes (exactly those keys), a
    one-item list (every item), a tuple (any of them), `Each`, or a type."""
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [f"{where}: {value!r} is not an object"]
        if value.keys() != shape.keys():
            return [f"{where}: keys {sorted(value)} are not {sorted(shape)}"]
        return [m for key, sub in shape.items() for m in mismatches(value[key], sub,
                                                                      f"{where}.{key}")]
    if isinstance(shape, Each):
        if not isinstance(value, dict):
            return [f"{where}: {value!r} is not an object"]
        return [m for key, item in value.items() for m in mismatches(item, shape.shape,
                                                                       f"{where}.{key}")]
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{where}: {value!r} is not a list"]
        return [m for i, item in enumerate(value) for m in mismatches(item, shape[0],
                                                                        f"{where}[{i}]")]
    if isinstance(shape, tuple):
        if any(not mismatches(value, one, where) for one in shape):
            return []
        return [f"{where}: {value!r} is none of {shape}"]
    if shape is int and isinstance(value, bool):
        return [f"{where}: {value!r} is not a number"]
    return [] if isinstance(value, shape) else [f"{where}: {value!r} is not {shape.__name__}"]


TEXT = (str, type(None))
OCCURRENCE = {"id": str, "start": str, "end": str, "start_utc": str, "end_utc": str,
              "timezone": str, "status": str, "original_start": str, "agenda": TEXT}
CALL = {"slug": str, "uid": str, "title": str, "description": TEXT, "timezone": str,
        "start": str, "start_utc": TEXT, "duration": int, "rrule": TEXT, "register_url": TEXT,
        "join_url": TEXT, "forum_topic": (int, type(None)), "language": str, "zones": [str],
        "zones_from_config": bool, "sequence": int, "next": (OCCURRENCE, type(None)),
        "created_at": str, "updated_at": str, "error": TEXT,
        "agendas": [{"id": str, "agenda": str}]}
OWED = {"notice": int, "updates_sent": [str], "updates_failed": [str]}
OCCURRENCE_DONE = {"call": str, "changed": bool, "occurrence": OCCURRENCE, **OWED}
SUBSCRIBER = {"email": str, "name": str, "language": str, "timezone": str, "status": str,
              "calls": ([str], type(None))}
DELIVERY = {"call": str, "occurrence_id": str, "rule": str, "channel": str, "recipient": str,
            "status": str, "due": str, "expires": str, "attempts": int, "last_error": TEXT,
            "sent_at": TEXT, "message_id": TEXT}
PLANNED = {"call": str, "occurrence_id": str, "rule": str, "channel": str, "due": str,
           "expires": str, "recipients": int}
ZONE_ROW = {"zone": str, "label": str, "local": str, "time": str, "date": str, "offset": str,
            "day": str, "other_day": TEXT}
CHECK = {"name": str, "ok": bool, "detail": str}

# Each command with --json: its arguments (given the service's folder) and its shape.
MEMBERS = ("subscriber", "add", "ada@example.org", "--name", "Ada")
JSON_COMMANDS: dict[str, tuple[Callable[[Path], list[list[str]]], Any]] = {
    "init": (lambda _: [["init"]],
             {"config": str, "wrote_config": TEXT, "database": str, "done": str,
              "schema_before": TEXT, "schema": str}),
    "config init": (lambda f: [["config", "init", str(f / "other")]], {"wrote": str}),
    "backup": (lambda f: [["backup", str(f / "copy.sqlite3")]],
               {"source": str, "target": str, "schema": TEXT, "secret": TEXT}),
    "check": (lambda _: [["check"]],
              {"config": str, "templates": [str], "problems": [str], "ok": bool}),
    "doctor": (lambda _: [["doctor"]],
               {"config": {"path": str, "source": str}, "checks": [CHECK], "ok": bool}),
    "call add": (lambda _: [[*ADD[:3], "Second call", *ADD[4:]]], CALL),
    "call edit": (lambda _: [["call", "edit", SLUG, "--duration", "90"]], CALL),
    "call list": (lambda _: [["call", "list"]], [CALL]),
    "call show": (lambda _: [["call", "show", SLUG]], CALL),
    "call occurrences": (lambda _: [["call", "occurrences", SLUG, "--count", "2"]],
                         [OCCURRENCE]),
    "call move": (lambda _: [["call", "move", SLUG, "--on", "2019-02-12", "--to",
                              "2019-02-19 10:00"]], OCCURRENCE_DONE),
    "call cancel": (lambda _: [["call", "cancel", SLUG, "--on", "2019-02-12"]],
                    OCCURRENCE_DONE),
    "call restore": (lambda _: [["call", "cancel", SLUG, "--on", "2019-02-12"],
                                ["call", "restore", SLUG, "--on", "2019-02-12"]],
                     OCCURRENCE_DONE),
    "call agenda": (lambda f: [["call", "agenda", SLUG, "--on", "2019-02-12", "--file",
                                str(DATA / "notes" / "march-2019.md")]], OCCURRENCE_DONE),
    "call delete": (lambda _: [["call", "delete", SLUG, "--yes"]],
                    {"deleted": str, "title": str, **OWED}),
    "feed build": (lambda _: [["feed", "build"]],
                   {"folder": str, "written": [str], "removed": [str], "unchanged": int,
                    "skipped": [{"slug": str, "reason": str}]}),
    "import": (lambda _: [["import", str(ROOT / "tests" / "data" / "ics" / "bad_date.ics")]],
               {"dry_run": bool, "imported": [{
                   "slug": TEXT, "uid": str, "title": str, "timezone": str, "start": str,
                   "rrule": TEXT, "duration": int, "moved": int, "cancelled": int,
                   "agendas": int, "line": int,
                   "notes": [str]}],
                "skipped": [{"what": str, "line": int, "reason": str}], "notes": [str]}),
    "invite": (lambda _: [["invite", SLUG, "--to", "ada@example.org"]],
               {"call": str, "sent": [str], "failed": [str]}),
    "subscriber add": (lambda _: [list(MEMBERS)], SUBSCRIBER),
    "subscriber import": (lambda _: [["subscriber", "import",
                                      str(DATA / "csv" / "members.csv")]],
                          {"subscribed": int, "source": str}),
    "subscriber list": (lambda _: [list(MEMBERS), ["subscriber", "list"]], [SUBSCRIBER]),
    "subscriber show": (lambda _: [list(MEMBERS), ["subscriber", "show", "ada@example.org"]],
                        {**SUBSCRIBER, "reminders": Each([str]), "reminders_off": Each([str])}),
    "rsvp list": (lambda _: [list(MEMBERS), ["rsvp", "list", SLUG, "--on", "2018-11-13"]],
                  {"call": str, "occurrence_id": str, "start": str, "status": str,
                   "coming": int, "not_coming": int,
                   "answers": [{"email": str, "name": str, "answer": str,
                                "answered_at": str}]}),
    "subscriber remove": (lambda _: [list(MEMBERS), ["subscriber", "remove",
                                                     "ada@example.org"]], SUBSCRIBER),
    "run-once": (lambda _: [list(MEMBERS), ["run-once", "--now", "2018-12-04T15:00:00Z"]],
                 {"planned": Each(int), "expired": int, "outcomes": Each(int), "failed": int,
                  "to_retry": int}),
    "followup": (lambda _: [["followup", SLUG, "--on", "2018-11-13", "--recording",
                             "https://example.org/rec"]],
                 {"call": str, "queued": int, "forum": int, "emails": int}),
    "deliveries": (lambda _: [list(MEMBERS), ["run-once", "--now", "2018-12-04T15:00:00Z"],
                              ["deliveries"]], [DELIVERY]),
    "deliveries --upcoming": (lambda _: [list(MEMBERS), ["deliveries", "--upcoming", "--now",
                                                         "2018-12-01T00:00:00Z"]], [PLANNED]),
    "times": (lambda _: [["times", SLUG, "--on", "2018-11-13"]], [ZONE_ROW]),
    "render": (lambda _: [["render", SLUG, "--on", "2018-11-13", "--template", "tomorrow",
                           "--channel", "email", "--now", "2018-11-12T15:00:00Z"]],
               {"subject": TEXT, "text": str, "html": TEXT}),
}


@pytest.mark.parametrize("command", JSON_COMMANDS)
def test_json_output_has_the_documented_shape(with_call: Coalition, command: str) -> None:
    """Scripts read these: each command's --json keeps one shape (listed in the README), and
    stdout holds that JSON and nothing else."""
    steps, shape = JSON_COMMANDS[command]
    *before, last = steps(with_call.folder)
    for step in before:
        ok(with_call(*step))
    ran = ok(with_call(*last, "--json"))
    value = json.loads(ran.stdout)
    assert mismatches(value, shape) == []
    assert value not in ([], {}), "the shape was checked against nothing"


def test_readme_lists_the_json_shape_of_every_command() -> None:
    section = (ROOT / "README.md").read_text().split("#### JSON output", 1)[1]
    section = re.split(r"\n#+ ", section, maxsplit=1)[0]
    for command in JSON_COMMANDS:
        assert f"`{command.split(' --')[0]}" in section, command


def test_json_keeps_stdout_for_json_when_a_change_owes_a_notice(with_call: Coalition) -> None:
    """A late change's notice is said on stderr with --json, so stdout still parses."""
    with time_machine.travel("2019-02-11T12:00:00Z", tick=False):
        ok(with_call(*MEMBERS))
        ok(with_call("run-once"))  # the announcement: the members hear of the call first
        ran = ok(with_call("call", "cancel", SLUG, "--on", "2019-02-12", "--json"))
    assert json.loads(ran.stdout)["notice"] == 2
    assert "change notice queued" in ran.stderr


def test_check_json_reports_problems_and_exits_2(coalition: Coalition) -> None:
    config_file = coalition.config
    (config_file.parent / "mine").mkdir()
    (config_file.parent / "mine" / "forum").mkdir()
    (config_file.parent / "mine" / "forum" / "today.en.md").write_text("{{ nope(\n")
    config_file.write_text(config_file.read_text().replace('folder = ""', 'folder = "mine"'))
    ran = coalition("check", "--json")
    assert ran.exit_code == 2
    found = json.loads(ran.stdout)
    assert not found["ok"] and any("today.en.md" in p for p in found["problems"])


# --- standard input


def test_subscriber_import_reads_standard_input(coalition: Coalition) -> None:
    csv = (DATA / "csv" / "members.csv").read_text()
    ran = run(coalition.config, "subscriber", "import", "-", stdin=csv)
    assert (ran.exit_code, ran.stdout) == (0, "subscribed 3 from <stdin>\n"), ran.stderr
    listed = json.loads(ok(coalition("subscriber", "list", "--json")).stdout)
    assert [s["email"] for s in listed] == ["ada@example.org", "bea@example.org",
                                            "carl@example.org"]


def test_subscriber_import_from_standard_input_names_the_bad_line(coalition: Coalition) -> None:
    csv = (DATA / "csv" / "members_bad_zone.csv").read_text()
    ran = run(coalition.config, "subscriber", "import", "-", stdin=csv)
    assert ran.exit_code == 2 and ran.stderr.startswith("error: <stdin> line 3: ")
    assert json.loads(ok(coalition("subscriber", "list", "--json")).stdout) == []


def test_followup_notes_from_standard_input(with_call: Coalition) -> None:
    notes = (DATA / "notes" / "march-2019.md").read_text()
    ran = run(with_call.config, "followup", SLUG, "--on", "2018-11-13", "--notes", "-",
              stdin=notes)
    assert ran.exit_code == 0, ran.stderr
    ok(with_call("run-once"))
    post = with_call.forum_posts(SLUG)[-1].read_text()
    assert "We agreed on three actions." in post


def test_render_notes_from_standard_input(with_call: Coalition) -> None:
    ran = run(with_call.config, "render", SLUG, "--on", "2018-11-13", "--template", "followup",
              "--notes", "-", "--now", "2018-11-14T10:00:00Z",
              stdin="We agreed on three actions.\n")
    assert ran.exit_code == 0 and "We agreed on three actions." in ran.stdout


# --- progress


def test_no_progress_where_nobody_watches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Piped or redirected standard error, or --json: the helper does nothing at all."""
    monkeypatch.setattr(cli, "_terminal", lambda: False)
    with cli._progress("working") as advance:
        assert advance is cli._no_progress
    monkeypatch.setattr(cli, "_terminal", lambda: True)
    with cli._progress("working", json_out=True) as advance:
        assert advance is cli._no_progress


def test_feed_build_shows_progress_on_a_terminal_only(
    with_call: Coalition, monkeypatch: pytest.MonkeyPatch
) -> None:
    piped = ok(with_call("feed", "build"))
    assert piped.stderr == ""
    monkeypatch.setattr(cli, "_terminal", lambda: True)
    watched = ok(with_call("feed", "build"))
    assert "building feeds" in watched.stderr
    assert watched.stdout == piped.stdout  # the report itself is the same
    as_json = ok(with_call("feed", "build", "--json"))
    assert as_json.stderr == "" and json.loads(as_json.stdout)["unchanged"] == 2


@pytest.fixture
def members(organizer: Callable[[str], Coalition], smtp_sink: tuple[SmtpSink, int]) -> Coalition:
    with time_machine.travel("2019-03-01T12:00:00Z", tick=False):
        coalition = organizer("reminders")
    use_smtp(coalition.config, smtp_sink[1])
    return coalition


def test_run_once_counts_each_answer_from_the_mail_server(
    members: Coalition, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sending pass reports each email the server answered: the progress moves once per
    recipient (ada and bea), and the report is unchanged."""
    counted: list[int] = []

    @contextmanager
    def recorded(what: str, *, json_out: bool = False,
                 unit: str = "") -> Iterator[Callable[[int], None]]:
        yield counted.append

    monkeypatch.setattr(cli, "_progress", recorded)
    ran = ok(members("run-once", "--now", ANNOUNCE))
    assert "sent: 3 sent" in ran.stdout
    assert counted == [1, 1]


def test_run_once_progress_is_drawn_on_a_terminal(
    members: Coalition, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "_terminal", lambda: True)
    ran = ok(members("run-once", "--now", ANNOUNCE))
    assert "planning and sending" in ran.stderr and "2 answered" in ran.stderr
    assert "sent: 3 sent" in ran.stdout


# --- choices, help, examples, completion


def commands() -> Iterator[tuple[str, Any]]:
    """Every command as `coalition` runs it ("call add"), with its Click command."""
    root = typer.main.get_command(cli.app)

    def walk(prefix: str, group: Any) -> Iterator[tuple[str, Any]]:
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from walk(f"{prefix}{name} ", command)
            else:
                yield f"{prefix}{name}", command

    return walk("", root)


MINE = [(name, command) for name, command in commands() if name != "import"]


@pytest.mark.parametrize(("name", "command"), MINE, ids=[name for name, _ in MINE])
def test_every_option_has_help_and_every_command_an_example(name: str, command: Any) -> None:
    assert "Example:" in (command.help or ""), name
    assert [p.name for p in command.params if not p.help] == []


def test_call_add_help_marks_its_required_options() -> None:
    """Marked in --help; the library still names every missing one at once."""
    params = dict(commands())["call add"].params
    required = {p.opts[0] for p in params if "[required]" in (p.help or "")}
    assert required == {"--title", "--tz", "--start"}


def test_help_lists_the_choices() -> None:
    text = CliRunner().invoke(cli.app, ["render", "--help"]).stdout
    assert "<announcement|tomorrow|today|starts-soon|followup|changed>" in text
    assert "<forum|email>" in text
    assert "<pending|sent|failed|missed|cancelled>" in CliRunner().invoke(
        cli.app, ["deliveries", "--help"]).stdout
    assert "<pending|confirmed|unsubscribed>" in CliRunner().invoke(
        cli.app, ["subscriber", "list", "--help"]).stdout


def test_choices_are_the_library_s() -> None:
    assert tuple(cli.Template) == render.TEMPLATES
    assert tuple(cli.Channel) == render.CHANNELS


def completions(words: str) -> list[str]:
    """What bash completion offers for the last of `words` ("coalition render --channel ")."""
    env = {"_COALITION_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split(" ")) - 1)}
    result = CliRunner().invoke(cli.app, [], prog_name="coalition", env=env)
    assert result.exit_code == 0, result.output
    return result.stdout.split()


def test_completion_offers_the_choices_languages_and_zones(coalition: Coalition) -> None:
    assert completions("coalition render --channel ") == ["forum", "email"]
    assert completions("coalition deliveries --status m") == ["missed"]
    assert completions(f"coalition --config {coalition.config} render x --lang ") == [
        "en", "fr", "es", "ar", "pt"]
    assert completions("coalition call add --tz America/New_Y") == ["America/New_York"]


def test_an_unknown_choice_is_refused_in_one_line_before_anything_runs(
        coalition: Coalition) -> None:
    ran = coalition("subscriber", "list", "--status", "lost")
    assert ran.exit_code == 2 and ran.stderr.count("\n") == 1
    assert "unknown status 'lost'; choose one of pending, confirmed, unsubscribed" in ran.stderr


# --- --on next, --on today


def test_on_words_are_recognised_in_any_case() -> None:
    assert [inputs.occurrence_word(w) for w in ("next", " Today ", "NEXT", "2019-02-12")] == [
        "next", "today", "next", None]


def test_on_next_is_the_next_occurrence_from_now(with_call: Coalition) -> None:
    with time_machine.travel("2019-02-01T12:00:00Z", tick=False):
        ran = ok(with_call("call", "cancel", SLUG, "--on", "next"))
    assert ran.stdout == f"{SLUG}: Tue 2019-02-12 10:00 EST cancelled\n"


def test_on_next_finds_a_moved_occurrence_by_its_new_time(with_call: Coalition) -> None:
    ok(with_call("call", "move", SLUG, "--on", "2019-02-12", "--to", "2019-02-19 10:00"))
    with time_machine.travel("2019-02-14T12:00:00Z", tick=False):
        rows = json.loads(ok(with_call("times", SLUG, "--on", "next", "--json")).stdout)
    assert rows[0]["local"] == "2019-02-19T10:00:00-05:00"


def test_on_today_is_today_in_the_call_s_zone(with_call: Coalition) -> None:
    """03:00 UTC on the 13th is still the 12th in New York."""
    with time_machine.travel("2019-02-13T03:00:00Z", tick=False):
        rows = json.loads(ok(with_call("times", SLUG, "--on", "today", "--json")).stdout)
    assert rows[0]["local"] == "2019-02-12T10:00:00-05:00"


def test_on_today_without_an_occurrence_names_the_nearest(with_call: Coalition) -> None:
    with time_machine.travel("2019-02-20T12:00:00Z", tick=False):
        ran = with_call("render", SLUG, "--on", "today", "--template", "today")
    assert ran.exit_code == 2 and "no occurrence on 2019-02-20" in ran.stderr
    assert "the one before is Tue 2019-02-12 10:00; the next is Tue 2019-03-12 10:00" in \
        ran.stderr


def test_on_next_after_the_last_occurrence_names_the_last(coalition: Coalition) -> None:
    ok(coalition("call", "add", "--title", "Once", "--start", "2018-11-13 10:00", "--tz",
                 "America/New_York"))
    with time_machine.travel("2019-02-20T12:00:00Z", tick=False):
        ran = coalition("times", "once", "--on", "next")
    assert ran.exit_code == 2 and ran.stderr.count("\n") == 1
    assert ran.stderr.startswith("error: --on next: once: no occurrence on 2019-02-20")
    assert "the one before is Tue 2018-11-13 10:00; none after it" in ran.stderr


def test_config_discovery_order_is_documented_in_help() -> None:
    text = " ".join(CliRunner().invoke(cli.app, ["--help"]).stdout.split())
    assert re.search(r"\./config\.toml, \$XDG_CONFIG_HOME/coalition/config\.toml", text)
    assert config.SYSTEM_CONFIG.as_posix() in text
