"""Issue 17: what the organizer's commands say about one occurrence, and how they print.

Each test runs the commands as an organizer types them, on the seed's monthly call."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Coalition, Ran

SLUG = "justice-for-all-coalition-call"
ADD = ["call", "add", "--title", "Justice For All coalition call", "--start", "2018-11-13 10:00",
       "--tz", "America/New_York", "--rrule", "FREQ=MONTHLY;BYDAY=2TU", "--duration", "60",
       "--register-url", "https://example.org/register", "--forum-topic", "77"]


def ok(ran: Ran) -> Ran:
    assert ran.exit_code == 0, ran.stderr
    return ran


@pytest.fixture
def with_call(coalition: Coalition) -> Coalition:
    ok(coalition(*ADD))
    return coalition


def test_issue_17_times_of_a_cancelled_occurrence_say_it_is_cancelled(
        with_call: Coalition) -> None:
    ok(with_call("call", "cancel", SLUG, "--on", "2019-01-08"))
    shown = ok(with_call("times", SLUG, "--on", "2019-01-08"))
    assert shown.stdout.splitlines()[0] == (
        f"{SLUG}: the occurrence of 2019-01-08 is cancelled; the times it had:")
    rows = ok(with_call("times", SLUG, "--on", "2019-01-08", "--json"))
    assert '"cancelled": true' in rows.stdout
    assert "cancelled" not in ok(with_call("times", SLUG, "--on", "2019-02-12")).stdout


def test_issue_17_moving_a_cancelled_occurrence_is_refused_until_it_is_restored(
        with_call: Coalition) -> None:
    """A move used to restore it silently, saying only "moved to"."""
    ok(with_call("call", "cancel", SLUG, "--on", "2019-01-08"))
    ran = with_call("call", "move", SLUG, "--on", "2019-01-08", "--to", "2019-01-09 10:00")
    assert ran.exit_code == 2
    assert ran.stderr == (f"error: {SLUG}: the occurrence of 2019-01-08 is cancelled; run "
                          f"`call restore {SLUG} --on 2019-01-08` first, then move it\n")
    listed = ok(with_call("call", "occurrences", SLUG, "--from", "2019-01-01", "--count", "1",
                          "--json"))
    assert '"status": "cancelled"' in listed.stdout
    ok(with_call("call", "restore", SLUG, "--on", "2019-01-08"))
    ok(with_call("call", "move", SLUG, "--on", "2019-01-08", "--to", "2019-01-09 10:00"))


def test_issue_17_restoring_an_unchanged_occurrence_exits_2(with_call: Coalition) -> None:
    """The README: every command answers bad input with one line and exit status 2."""
    ran = with_call("call", "restore", SLUG, "--on", "2019-02-12")
    assert ran.exit_code == 2
    assert ran.stderr == (f"error: {SLUG}: nothing to restore: the occurrence of 2019-02-12 was "
                          "neither moved nor cancelled\n")


def test_issue_17_render_changed_of_an_occurrence_that_never_moved_is_refused(
        with_call: Coalition) -> None:
    """It rendered "Moved: ... now takes place on" the same date."""
    ran = with_call("render", SLUG, "--on", "2019-02-12", "--template", "changed",
                    "--channel", "email", "--now", "2019-02-10T12:00:00Z")
    assert ran.exit_code == 2
    assert ran.stderr == (f"error: {SLUG}: the occurrence on 2019-02-12 was neither moved nor "
                          "cancelled\n")
    ok(with_call("call", "move", SLUG, "--on", "2019-02-12", "--to", "2019-02-13 10:00"))
    moved = ok(with_call("render", SLUG, "--on", "2019-02-12", "--template", "changed",
                         "--channel", "email", "--now", "2019-02-10T12:00:00Z"))
    assert moved.stdout.startswith("Subject: Moved:")


def test_render_previews_the_notice_of_a_cancelled_occurrence(with_call: Coalition) -> None:
    """The cancellation notice is the one message a cancelled occurrence still gets; every
    other template of it is refused."""
    ok(with_call("call", "cancel", SLUG, "--on", "2019-02-12"))
    notice = ok(with_call("render", SLUG, "--on", "2019-02-12", "--template", "changed",
                          "--channel", "email", "--now", "2019-02-11T12:00:00Z"))
    assert notice.stdout.startswith("Subject: Cancelled:")
    ran = with_call("render", SLUG, "--on", "2019-02-12", "--template", "tomorrow",
                    "--now", "2019-02-11T12:00:00Z")
    assert ran.exit_code == 2 and "is cancelled; restore it first" in ran.stderr


def test_issue_17_render_offers_only_the_templates_it_can_render(with_call: Coalition) -> None:
    """The invitation's texts need an invitation: `render` does not offer them."""
    ran = with_call("render", SLUG, "--on", "2019-02-12", "--template", "cancellation",
                    "--channel", "email")
    assert ran.exit_code == 2 and "'invite' is undefined" not in ran.stderr
    assert "choose one of announcement, tomorrow, today, starts-soon, followup, changed" \
        in ran.stderr


def test_issue_17_tables_have_no_trailing_spaces_when_piped(with_call: Coalition) -> None:
    for args in (["call", "show", SLUG], ["call", "list"],
                 ["call", "occurrences", SLUG, "--from", "2019-01-01", "--count", "3"],
                 ["times", SLUG, "--on", "2019-01-08"]):
        lines = ok(with_call(*args)).stdout.splitlines()
        assert lines and [line for line in lines if line != line.rstrip()] == [], args


def test_issue_17_csv_errors_name_the_line_a_row_starts_on(
        coalition: Coalition, tmp_path: Path) -> None:
    """A quoted name may hold a line break: the error names the row's first line (line_num
    is its last)."""
    members = tmp_path / "members.csv"
    members.write_text('email,name,language,timezone\ngus at example.org,"Gus\nMiller",en,\n')
    ran = coalition("subscriber", "import", str(members))
    assert ran.exit_code == 2
    assert "members.csv line 2: 'gus at example.org' is not an email address" in ran.stderr
