"""Reminders by email and on the forum: due on time, valid until the next one, each once."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

import pytest
import time_machine

from tests.conftest import DATA, Coalition, SmtpSink, free_port, use_smtp

SLUG = "justice-for-all-coalition-call"
ANNOUNCE = "2019-03-05T15:00:00Z"  # a week before 10:00 EDT on 12 March is 10:00 EST
SOON = "2019-03-12T13:31:00Z"
JOINED = "2019-03-01T12:00:00Z"


def run(coalition: Coalition, moment: str, status: int = 0) -> str:
    """A pass, and its exit status: 1 when a delivery failed for good, 75 when one waits."""
    ran = coalition("run-once", "--now", moment)
    assert ran.exit_code == status, ran.stderr
    return ran.stdout


@pytest.fixture
def members(organizer: Callable[[str], Coalition]) -> Coalition:
    with time_machine.travel(JOINED, tick=False):  # they joined before the month's call
        return organizer("reminders")


def test_announcement_goes_out_a_week_before_at_the_anchor_wall_time(members: Coalition) -> None:
    run(members, "2019-03-05T14:59:00Z")
    assert members.inbox() == []
    run(members, ANNOUNCE)
    subjects = sorted(str(m["Subject"]) for m in members.inbox())
    assert subjects == [
        "Justice For All coalition call : mardi 12 mars 2019, 15:00 (Kinshasa)",
        "Justice For All coalition call: Tuesday, March 12, 2019, 9:00 PM Jakarta",
    ]
    post = (members.folder / "var" / "forum" / SLUG / "20190312T1400Z-announcement.md").read_text()
    assert "10:00 AM New York // 3:00 PM Brussels // 4:00 PM Cairo" in post


def test_after_downtime_the_stale_reminder_is_missed_and_the_valid_one_sent(
    members: Coalition,
) -> None:
    run(members, ANNOUNCE)
    run(members, SOON)  # nobody ran the service on the 11th
    statuses = {(d["rule"], d["channel"], d["recipient"]): d["status"]
                for d in members.deliveries()}
    assert statuses[("tomorrow", "email", "ada@example.org")] == "missed"
    assert statuses[("starts-soon", "email", "ada@example.org")] == "sent"
    soon = [m for m in members.inbox() if "30 minutes" in str(m["Subject"])]
    assert sorted(str(m["Subject"]) for m in soon) == [
        "Justice For All coalition call : début dans 30 minutes",
        "Justice For All coalition call starts in 30 minutes",
    ]


def test_running_again_sends_nothing_twice(members: Coalition) -> None:
    for moment in (ANNOUNCE, ANNOUNCE, SOON, SOON, "2019-03-12T14:30:00Z"):
        run(members, moment)
    per_person = Counter((m["To"], str(m["Subject"])) for m in members.inbox())
    assert set(per_person.values()) == {1} and len(per_person) == 4
    assert [p.name for p in members.forum_posts(SLUG)] == ["20190312T1400Z-announcement.md",
                                                           "20190312T1400Z-starts-soon.md"]


def test_each_email_can_be_unsubscribed_in_one_click(members: Coalition) -> None:
    run(members, ANNOUNCE)
    for message in members.inbox():
        assert str(message["List-Unsubscribe"]).startswith("<http://127.0.0.1:8080/unsubscribe/")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message.get_content_type() == "multipart/alternative"


def test_moved_occurrence_takes_its_reminders_along(members: Coalition) -> None:
    run(members, "2019-03-05T14:50:00Z")  # the announcement is queued, not due yet
    assert members("call", "move", SLUG, "--on", "2019-03-12", "--to",
                   "2019-03-14 10:00").exit_code == 0
    run(members, "2019-03-05T14:55:00Z")
    due = {(d["rule"], d["recipient"]): d["due"] for d in members.deliveries("--status", "pending")}
    assert due == {("announcement", "ada@example.org"): "2019-03-07T15:00:00Z",
                   ("announcement", "bea@example.org"): "2019-03-07T15:00:00Z",
                   ("announcement", "topic"): "2019-03-07T15:00:00Z"}
    # the later ones are queued 15 minutes before they fall due; until then they are planned
    later = {(d["rule"], d["channel"]): (d["due"], d["recipients"])
             for d in members.deliveries("--upcoming", "--now", "2019-03-05T14:55:00Z")
             if d["occurrence_id"] == "2019-03-12T14:00:00Z"}  # its id: where it was
    assert later == {("tomorrow", "email"): ("2019-03-13T14:00:00Z", 2),
                     ("starts-soon", "email"): ("2019-03-14T13:30:00Z", 2),
                     ("starts-soon", "forum"): ("2019-03-14T13:30:00Z", 1)}


def test_upcoming_looks_as_far_ahead_as_asked(members: Coalition) -> None:
    """Three weeks before the 12 March call its reminders are planned, none queued yet."""
    def planned(days: str) -> set[tuple[str, str, str]]:
        return {(d["occurrence_id"], d["rule"], d["channel"]) for d in members.deliveries(
            "--upcoming", "--now", "2019-02-20T12:00:00Z", "--days", days)}

    march = "2019-03-12T14:00:00Z"
    assert {(rule, channel) for occurrence, rule, channel in planned("35")
            if occurrence == march} == {("announcement", "forum"), ("announcement", "email"),
                                        ("tomorrow", "email"), ("starts-soon", "forum"),
                                        ("starts-soon", "email")}
    assert not any(occurrence == march for occurrence, _, _ in planned("7"))
    assert members.deliveries() == []


def test_cancelled_occurrence_cancels_its_reminders(members: Coalition) -> None:
    run(members, "2019-03-05T14:50:00Z")  # the announcement is queued
    assert members("call", "cancel", SLUG, "--on", "2019-03-12").exit_code == 0
    run(members, ANNOUNCE)
    assert {d["status"] for d in members.deliveries()
            if d["occurrence_id"].startswith("2019-03-12")} \
        == {"cancelled"}
    assert members.inbox() == []


def test_unsubscribed_member_gets_nothing_more(members: Coalition) -> None:
    run(members, ANNOUNCE)
    assert members("subscriber", "remove", "ada@example.org").exit_code == 0
    run(members, SOON)
    assert [str(m["Subject"]) for m in members.inbox() if m["To"] == "Ada <ada@example.org>"] \
        == ["Justice For All coalition call : mardi 12 mars 2019, 15:00 (Kinshasa)"]


def test_deliveries_json_gives_the_key_status_and_attempts(members: Coalition) -> None:
    run(members, ANNOUNCE)
    row = next(d for d in members.deliveries("--status", "sent") if d["channel"] == "email")
    assert set(row) >= {"call", "occurrence_id", "rule", "channel", "recipient", "status", "due",
                        "attempts", "last_error"}
    assert (row["occurrence_id"], row["attempts"]) == ("2019-03-12T14:00:00Z", 1)


def test_smtp_answers_permanent_and_temporary_failures_differently(
    members: Coalition, smtp_sink: tuple[SmtpSink, int]
) -> None:
    sink, port = smtp_sink
    use_smtp(members.config, port)
    sink.refuse = {"ada@example.org": "550 5.1.1 no such mailbox",
                   "bea@example.org": "451 4.3.2 try again later"}
    run(members, ANNOUNCE, status=1)
    rows = {d["recipient"]: d for d in members.deliveries() if d["rule"] == "announcement"}
    assert rows["ada@example.org"]["status"] == "failed"
    assert rows["ada@example.org"]["last_error"].startswith("550")
    assert rows["bea@example.org"]["status"] == "pending"
    assert rows["bea@example.org"]["last_error"].startswith("451")
    sink.refuse = {}
    run(members, "2019-03-05T16:00:00Z")  # the server takes mail again
    rows = {d["recipient"]: d for d in members.deliveries() if d["rule"] == "announcement"}
    assert (rows["bea@example.org"]["status"], rows["bea@example.org"]["attempts"]) == ("sent", 2)
    assert rows["ada@example.org"]["status"] == "failed"  # never retried
    assert [m["To"] for m in sink.received] == ["Bea <bea@example.org>"]


def test_subscribers_from_a_csv_file(coalition: Coalition) -> None:
    ran = coalition("subscriber", "import", str(DATA / "csv" / "members.csv"))
    assert ran.exit_code == 0 and "subscribed 3" in ran.stdout
    found = json.loads(coalition("subscriber", "list", "--json").stdout)
    assert [(s["email"], s["language"], s["timezone"], s["status"]) for s in found] == [
        ("ada@example.org", "fr", "Africa/Kinshasa", "confirmed"),
        ("bea@example.org", "en", "Asia/Jakarta", "confirmed"),
        ("carl@example.org", "en", "America/New_York", "confirmed"),
    ]


def test_csv_with_a_bad_line_names_it_and_adds_nobody(coalition: Coalition) -> None:
    ran = coalition("subscriber", "import", str(DATA / "csv" / "members_bad_zone.csv"))
    assert ran.exit_code == 2
    assert "members_bad_zone.csv line 3: unknown time zone 'Europe/Lodnon'" in ran.stderr
    assert json.loads(coalition("subscriber", "list", "--json").stdout) == []


@pytest.mark.parametrize(("args", "message"), [
    (["subscriber", "add", "not-an-address"], "is not an email address"),
    (["subscriber", "add", "x@example.org", "--tz", "Mars/Olympus"], "unknown time zone"),
    (["subscriber", "add", "x@example.org", "--lang", "de"], "language 'de' is not one of"),
    (["subscriber", "remove", "nobody@example.org"], "no subscriber"),
    (["run-once", "--now", "yesterday"], "--now 'yesterday'"),
    (["deliveries", "--status", "lost"], "unknown status 'lost'"),
    (["deliveries", "--now", "2019-03-05T14:30:00Z"], "--now and --days go with --upcoming"),
    (["deliveries", "--days", "7"], "--now and --days go with --upcoming"),
    (["deliveries", "--upcoming", "--days", "0"], "--days"),
    (["deliveries", "--upcoming", "--status", "sent"], "--status and --upcoming do not go"),
    (["deliveries", "--upcoming", "--now", "soon"], "--now 'soon'"),
])
def test_bad_input_is_one_line(coalition: Coalition, args: list[str], message: str) -> None:
    ran = coalition(*args)
    assert ran.exit_code == 2 and ran.stderr.count("\n") == 1 and message in ran.stderr


def test_mailto_is_offered_beside_the_link_when_configured(members: Coalition) -> None:
    config = members.config
    config.write_text(config.read_text().replace('unsubscribe_mailto = ""',
                                                 'unsubscribe_mailto = "leave@example.org"'))
    run(members, ANNOUNCE)
    header = str(members.inbox()[0]["List-Unsubscribe"])
    assert header.startswith("<http://127.0.0.1:8080/unsubscribe/")
    assert header.endswith(", <mailto:leave@example.org?subject=unsubscribe>")


def test_421_answer_is_temporary(members: Coalition, smtp_sink: tuple[SmtpSink, int]) -> None:
    sink, port = smtp_sink
    use_smtp(members.config, port)
    sink.refuse = {"ada@example.org": "421 4.7.0 try again later"}
    run(members, ANNOUNCE, status=75)
    row = next(d for d in members.deliveries() if d["recipient"] == "ada@example.org")
    assert (row["status"], str(row["last_error"])[:3]) == ("pending", "421")


def test_mail_server_down_then_back_loses_nothing(members: Coalition) -> None:
    """Nothing listens on the port at first; when a server does, the retry delivers."""
    from aiosmtpd.controller import Controller

    port = free_port()
    use_smtp(members.config, port)
    run(members, ANNOUNCE, status=75)
    rows = [d for d in members.deliveries()
            if d["channel"] == "email" and d["rule"] == "announcement"]
    assert [d["status"] for d in rows] == ["pending", "pending"]
    assert all("cannot reach 127.0.0.1" in str(d["last_error"]) for d in rows)
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        run(members, "2019-03-05T15:30:00Z")
    finally:
        controller.stop()
    assert sorted(sink.recipients()) == ["ada@example.org", "bea@example.org"]
    assert {d["status"] for d in members.deliveries()
            if d["channel"] == "email" and d["rule"] == "announcement"} == {"sent"}


@pytest.mark.postgres
def test_reminders_on_postgresql(organizer: Callable[[str], Coalition], postgres_url: str,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The outbox's PostgreSQL path: INSERT .. ON CONFLICT on the key, SKIP LOCKED claims."""
    monkeypatch.setenv("COALITION_DATABASE_URL", postgres_url)
    with time_machine.travel(JOINED, tick=False):
        members = organizer("reminders")
    for moment in (ANNOUNCE, ANNOUNCE, SOON, SOON):
        run(members, moment)
    statuses = {(d["rule"], d["channel"], d["recipient"]): d["status"]
                for d in members.deliveries()}
    assert statuses[("announcement", "email", "ada@example.org")] == "sent"
    assert statuses[("tomorrow", "email", "bea@example.org")] == "missed"
    assert statuses[("starts-soon", "forum", "topic")] == "sent"
    assert len(members.inbox()) == 4
    assert not (members.folder / "var" / "coalition.sqlite3").exists()


def test_issue_5_a_single_pass_at_13_31_sends_starts_in_30_minutes(
    organizer: Callable[[str], Coalition],
) -> None:
    """The issue's own example: `run-once --now 2019-03-12T13:31:00Z`, nothing run before,
    the members added just now. 29 minutes before reads "in 30 minutes", as a person says it
    (issue 17)."""
    members = organizer("reminders")
    run(members, SOON)
    assert sorted(str(m["Subject"]) for m in members.inbox()) == [
        "Justice For All coalition call : début dans 30 minutes",
        "Justice For All coalition call starts in 30 minutes",
    ]
    assert {d["status"] for d in members.deliveries()} == {"sent"}  # no "missed" for newcomers
