"""`coalition run-once` tells cron and systemd timers what became of its pass: 0 all sent (or
nothing due, or only what was owed no more cancelled), 1 something failed for good or expired
unsent, 75 (EX_TEMPFAIL) something waits for a retry or the database cannot be reached, 2 a
database that needs `coalition init` (or bad input)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
import time_machine
from sqlalchemy.exc import OperationalError

from scheduler.store import outbox
from tests.conftest import Coalition, SmtpSink, free_port, use_smtp
from tests.test_cli_calls import SLUG

ANNOUNCE = "2019-03-05T15:00:00Z"  # ada's and bea's emails and the forum post are due
REFUSED = "550 5.1.1 no such mailbox"
BUSY = "451 4.3.2 try again later"
QUEUED = "2019-03-05T14:50:00Z"  # the announcement is queued (due within 15 minutes), not due
TOMORROW = "2019-03-11T14:00:00Z"  # the reminder a day ahead is due; the announcement expires
AFTER = "2019-03-12T16:00:00Z"  # the 2019-03-12 call is over: a follow-up can be sent


@pytest.fixture
def members(organizer: Callable[[str], Coalition], smtp_sink: tuple[SmtpSink, int]) -> Coalition:
    with time_machine.travel("2019-03-01T12:00:00Z", tick=False):
        coalition = organizer("reminders")
    use_smtp(coalition.config, smtp_sink[1])
    return coalition


@pytest.mark.parametrize(("refuse", "status"), [
    pytest.param({}, 0, id="all-sent"),
    pytest.param({"ada@example.org": REFUSED}, 1, id="one-failed-for-good"),
    pytest.param({"ada@example.org": BUSY}, 75, id="one-to-retry"),
    pytest.param({"ada@example.org": REFUSED, "bea@example.org": BUSY}, 1,
                 id="failed-and-to-retry"),
])
def test_run_once_exit_status_says_what_became_of_the_pass(
        members: Coalition, smtp_sink: tuple[SmtpSink, int], refuse: dict[str, str],
        status: int) -> None:
    smtp_sink[0].refuse = refuse
    ran = members("run-once", "--now", ANNOUNCE)
    assert ran.exit_code == status
    if status:
        failed, waiting = sum(a.startswith("5") for a in refuse.values()), \
            sum(a.startswith("4") for a in refuse.values())
        assert ran.stderr == (f"error: {failed} deliveries failed for good, {waiting} will be "
                              "retried; see `coalition deliveries`\n")
    else:
        assert ran.stderr == "" and "sent: 3 sent" in ran.stdout


def test_run_once_exits_0_when_nothing_is_due(members: Coalition) -> None:
    ran = members("run-once", "--now", "2019-03-05T14:00:00Z")
    assert ran.exit_code == 0 and "none due" in ran.stdout


def test_a_failure_counts_in_the_pass_it_happened_in_only(
        members: Coalition, smtp_sink: tuple[SmtpSink, int]) -> None:
    """The next pass has nothing to do with the old failure: cron hears of it once."""
    smtp_sink[0].refuse = {"ada@example.org": REFUSED}
    assert members("run-once", "--now", ANNOUNCE).exit_code == 1
    assert members("run-once", "--now", "2019-03-05T15:30:00Z").exit_code == 0


def test_run_once_help_gives_the_meaning_of_each_exit_status(members: Coalition) -> None:
    text = " ".join(members("run-once", "--help").stdout.split())
    for meaning in ("0 when every delivery due was sent, or none was due",
                    "as when the member left or the occurrence was cancelled, is cancelled: "
                    "nothing failed",
                    "1 when at least one failed for good in this pass",
                    "or expired before it could be sent",
                    "75 (EX_TEMPFAIL) when none failed for good but some failed for now and "
                    "will be retried", "or when the database cannot be reached or stops answering",
                    "2 for bad input or configuration, or a database that needs `coalition init`"):
        assert meaning in text


def deliveries(coalition: Coalition, rule: str) -> dict[str, dict[str, Any]]:
    """The deliveries of one rule, by recipient ('topic' for the forum)."""
    return {d["recipient"]: d for d in coalition.deliveries() if d["rule"] == rule}


def test_a_reminder_that_expires_unsent_counts_as_failed(
        members: Coalition, smtp_sink: tuple[SmtpSink, int]) -> None:
    """Ada's announcement waits for a retry that no pass makes before the next reminder is
    due: it is given up on (missed), and the pass that records it says so, like a failure."""
    smtp_sink[0].refuse = {"ada@example.org": BUSY}
    assert members("run-once", "--now", ANNOUNCE).exit_code == 75
    smtp_sink[0].refuse = {}
    ran = members("run-once", "--now", TOMORROW)
    assert ran.exit_code == 1
    assert "expired as missed: 1" in ran.stdout and "sent: 2 sent" in ran.stdout
    assert ran.stderr == ("error: 1 deliveries failed for good, 0 will be retried; see "
                          "`coalition deliveries`\n")
    assert deliveries(members, "announcement")["ada@example.org"]["status"] == "missed"


def drop_the_announcement_rule(coalition: Coalition) -> None:
    """The admin takes the announcement out of config.toml while some are queued."""
    assert coalition("run-once", "--now", QUEUED).exit_code == 0
    config = coalition.config
    rule = ('[[reminders]]\nname = "announcement"\nbefore = "7d"\n'
            'channels = ["forum", "email"]\ntemplate = "announcement"\n')
    assert rule in config.read_text()
    config.write_text(config.read_text().replace(rule, ""))


def queue_a_followup(coalition: Coalition) -> None:
    with time_machine.travel(AFTER, tick=False):
        ran = coalition("followup", SLUG, "--on", "2019-03-12", "--recording",
                        "https://example.org/recording")
    assert ran.exit_code == 0, ran.stderr


def bea_leaves_behind_the_outbox(coalition: Coalition) -> None:
    """She left after the follow-up was queued, and her delivery was not cancelled then (as
    when she unsubscribes while a pass holds it)."""
    queue_a_followup(coalition)
    folder = coalition.config.parent
    with sqlite3.connect(folder / "var" / "coalition.sqlite3") as database:
        database.execute("UPDATE subscriber SET status = 'unsubscribed' "
                         "WHERE email = 'bea@example.org'")


def the_occurrence_is_cancelled_after_its_followup(coalition: Coalition) -> None:
    queue_a_followup(coalition)
    with time_machine.travel(AFTER, tick=False):
        assert coalition("call", "cancel", SLUG, "--on", "2019-03-12").exit_code == 0


@pytest.mark.parametrize(("before", "moment", "rule", "cancelled", "reason"), [
    pytest.param(drop_the_announcement_rule, ANNOUNCE, "announcement",
                 {"topic", "ada@example.org", "bea@example.org"},
                 "no such call or rule any more", id="rule-gone"),
    pytest.param(bea_leaves_behind_the_outbox, AFTER, "followup", {"bea@example.org"},
                 "not subscribed", id="member-left"),
    pytest.param(the_occurrence_is_cancelled_after_its_followup, AFTER, "followup",
                 {"topic", "ada@example.org", "bea@example.org"},
                 "the occurrence is cancelled", id="occurrence-cancelled"),
])
def test_a_delivery_owed_no_more_is_cancelled_with_its_reason_and_exits_0(
        members: Coalition, before: Callable[[Coalition], None], moment: str, rule: str,
        cancelled: set[str], reason: str) -> None:
    """Housekeeping, not a failure: nobody is paged because a member unsubscribed."""
    before(members)
    ran = members("run-once", "--now", moment)
    assert (ran.exit_code, ran.stderr) == (0, "")
    found = deliveries(members, rule)
    sent = len(found) - len(cancelled)
    assert f"sent: {len(cancelled)} cancelled" + (f", {sent} sent" if sent else "") in ran.stdout
    assert {who: row["status"] for who, row in found.items()} == {
        who: "cancelled" if who in cancelled else "sent" for who in found}
    assert {found[who]["last_error"] for who in cancelled} == {reason}


def test_a_database_that_cannot_be_reached_exits_75_for_a_later_run(
        members: Coalition, monkeypatch: pytest.MonkeyPatch) -> None:
    """An outage, not bad input: cron and systemd timers retry on EX_TEMPFAIL."""
    monkeypatch.setenv("COALITION_DATABASE_URL",
                       f"postgresql://coalition@127.0.0.1:{free_port()}/coalition")
    ran = members("run-once", "--now", ANNOUNCE)
    assert ran.exit_code == 75 and ran.stdout == ""
    assert ran.stderr.startswith("error: cannot open database postgresql+psycopg://coalition@")
    assert ran.stderr.count("\n") == 1


def test_a_database_that_stops_answering_midway_exits_75(
        members: Coalition, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> int:
        raise OperationalError("UPDATE delivery", {}, sqlite3.OperationalError("disk I/O error"))

    monkeypatch.setattr(outbox, "expire", broken)
    ran = members("run-once", "--now", ANNOUNCE)
    assert ran.exit_code == 75 and ran.stdout == ""
    assert ran.stderr.startswith("error: database sqlite:///")
    assert ran.stderr.endswith("coalition.sqlite3 stopped the pass: disk I/O error\n")
    assert ran.stderr.count("\n") == 1


def test_a_database_that_needs_coalition_init_exits_2(coalition_before_init: Coalition) -> None:
    """The admin's to fix: retrying will not help."""
    ran = coalition_before_init("run-once", "--now", ANNOUNCE)
    assert ran.exit_code == 2 and ran.stderr.count("\n") == 1
    assert "run `coalition init`" in ran.stderr


def five_members_in_batches_of_two(coalition: Coalition) -> None:
    with time_machine.travel("2019-03-01T12:00:00Z", tick=False):
        for name in ("cy", "dee", "eve"):
            assert coalition("subscriber", "add", f"{name}@example.org").exit_code == 0
    config = coalition.config
    config.write_text(config.read_text().replace("batch = 500", "batch = 2"))


def test_run_once_sends_everything_due_batch_after_batch(
        members: Coalition, smtp_sink: tuple[SmtpSink, int]) -> None:
    """A cron job sends the whole fan-out each run, not one `[daemon] batch` of it."""
    five_members_in_batches_of_two(members)
    ran = members("run-once", "--now", ANNOUNCE)
    assert (ran.exit_code, ran.stderr) == (0, "")
    assert "sent: 6 sent" in ran.stdout  # five emails and the forum post
    assert sorted(smtp_sink[0].recipients()) == [
        f"{name}@example.org" for name in ("ada", "bea", "cy", "dee", "eve")]


def test_run_once_stops_at_a_mail_server_it_cannot_reach(
        members: Coalition, smtp_sink: tuple[SmtpSink, int]) -> None:
    """Bounded: the batch that finds the server down is the last to try it; the other emails
    wait for it, untried, and the forum post goes. A later run retries (75)."""
    five_members_in_batches_of_two(members)
    config = members.config  # a port where nothing listens
    config.write_text(config.read_text().replace(f"port = {smtp_sink[1]}",
                                                 f"port = {free_port()}"))
    ran = members("run-once", "--now", ANNOUNCE)
    assert ran.exit_code == 75
    found = deliveries(members, "announcement")
    assert found.pop("topic")["status"] == "sent"
    assert {row["status"] for row in found.values()} == {"pending"}
    assert sum(row["attempts"] for row in found.values()) <= 2  # one batch of two at most
