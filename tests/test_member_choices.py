"""Issue 19: members choose which calls and which reminders they get, and the planner honours
their choices at its next pass, cancelling what is queued but no longer owed. Every clock is a
`now` argument."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from scheduler import config
from scheduler.core.plan import EVERY_CALL, CallOccurrences, Recipient, Rule, plan
from scheduler.core.recurrence import Occurrence, Status
from scheduler.core.zones import get_zone
from scheduler.delivery import followups, planning, sender
from scheduler.store import calls, db, preferences, rsvp, subscribers
from scheduler.store.models import Delivery, DeliveryStatus, RsvpAnswer, Subscriber
from tests.conftest import DATA, Coalition, ConfigCase

START = datetime(2026, 1, 5, 12, tzinfo=UTC)  # Monday noon; the call is Tuesdays 15:00 UTC
FIRST = datetime(2026, 1, 6, 15, tzinfo=UTC)
NOTHING = {"added": 0, "missed": 0, "retimed": 0, "cancelled": 0}


@dataclass
class World:
    settings: config.Settings
    session: Session

    def member(self, email: str) -> Subscriber:
        return subscribers.find(self.session, email)

    def choose(self, email: str, *, calls: tuple[str, ...] | None = None,
               reminders: dict[str, tuple[str, ...]] | None = None) -> None:
        member = self.member(email)
        preferences.apply(self.session, self.settings, member, preferences.Choices(
            name=member.name, language=member.language, timezone=member.timezone,
            calls=calls, reminders=reminders or {}), now=START)

    def pending(self) -> set[tuple[str, str]]:
        """(rule, recipient) of the pending email deliveries."""
        return {(d.rule, d.recipient) for d in self.session.exec(select(Delivery).where(
            Delivery.status == DeliveryStatus.PENDING, Delivery.channel == "email")).all()}


@pytest.fixture
def world(config_case: ConfigCase) -> Iterator[World]:
    """A weekly call on Tuesdays at 15:00 UTC from 6 January 2026 ("weekly") and another
    ("other"); two members, a month subscribed, who never chose anything."""
    settings = config.load(config_case("example"))
    engine = db.open_database(settings.database_url())
    with Session(engine, expire_on_commit=False) as session:
        for title in ("Weekly", "Other"):
            calls.add_call(session, settings, calls.CallInput(
                title=title, start="2026-01-06 15:00", timezone="UTC", rrule="FREQ=WEEKLY"),
                now=START - timedelta(days=30))
        for name in ("ada", "bea"):
            subscribers.add(session, settings, subscribers.NewSubscriber(
                email=f"{name}@example.org"), now=START - timedelta(days=30))
        yield World(settings, session)
    engine.dispose()


def test_a_member_who_never_chose_gets_every_reminder_as_before(world: World) -> None:
    ada = world.member("ada@example.org")
    assert ada.reminders_off is None
    assert all(preferences.gets(ada, "weekly", name)
               for name in preferences.choosable(world.settings))
    planning.plan_pass(world.session, world.settings, now=START)
    # each call's announcement, to each of them
    assert len([d for d in world.session.exec(select(Delivery).where(
        Delivery.channel == "email")).all() if d.rule == "announcement"]) == 4


def test_tomorrow_turned_off_is_never_queued(world: World) -> None:
    world.choose("ada@example.org", reminders={"weekly": ("announcement", "starts-soon",
                                                          "followup")})
    planning.plan_pass(world.session, world.settings, now=START + timedelta(hours=2, minutes=50))
    tomorrow = {(d.call_id, d.recipient) for d in world.session.exec(select(Delivery).where(
        Delivery.rule == "tomorrow")).all()}
    weekly = calls.get_call(world.session, "weekly").id
    other = calls.get_call(world.session, "other").id
    # ada still gets "tomorrow" for the other call: her choice was for "weekly" alone
    assert tomorrow == {(weekly, "bea@example.org"), (other, "ada@example.org"),
                        (other, "bea@example.org")}


def test_a_call_no_longer_followed_has_its_queued_reminder_cancelled_at_the_next_pass(
        world: World) -> None:
    """Between two passes ada stops following "weekly": its announcement, queued for her at
    the first pass, is cancelled at the second (with the daemon's memo too), never sent."""
    memo: dict[str, object] = {}
    assert planning.plan_pass(world.session, world.settings, now=START, memo=memo)["added"] == 6
    world.choose("ada@example.org", calls=("other",))
    done = planning.plan_pass(world.session, world.settings, now=START + timedelta(minutes=1),
                              memo=memo)
    assert done == {**NOTHING, "cancelled": 1}
    weekly = calls.get_call(world.session, "weekly").id
    cancelled = world.session.exec(select(Delivery).where(
        Delivery.status == DeliveryStatus.CANCELLED)).one()
    assert (cancelled.call_id, cancelled.rule, cancelled.recipient) == (
        weekly, "announcement", "ada@example.org")
    report = sender.run_once(world.session, world.settings, now=START + timedelta(minutes=2),
                             worker="t")
    assert report.planned == NOTHING
    sent = {(d.call_id, d.recipient) for d in world.session.exec(select(Delivery).where(
        Delivery.status == DeliveryStatus.SENT, Delivery.channel == "email")).all()}
    assert (weekly, "ada@example.org") not in sent and (weekly, "bea@example.org") in sent


def test_a_reminder_turned_back_on_is_queued_again_at_the_next_pass(world: World) -> None:
    world.choose("ada@example.org", reminders={"weekly": ()})
    planning.plan_pass(world.session, world.settings, now=START)
    assert ("announcement", "ada@example.org") in world.pending()  # the other call's
    world.choose("ada@example.org", reminders={"weekly": ("announcement",)})
    planning.plan_pass(world.session, world.settings, now=START + timedelta(minutes=1))
    weekly = calls.get_call(world.session, "weekly").id
    assert world.session.exec(select(Delivery).where(
        Delivery.call_id == weekly, Delivery.recipient == "ada@example.org")).one().status \
        == DeliveryStatus.PENDING


def test_cant_make_it_means_no_starts_soon_for_that_occurrence_only(world: World) -> None:
    """bea says she cannot make 6 January after "starts-soon" was queued: it is cancelled at
    the next pass; the next week's is still planned for her."""
    weekly = calls.get_call(world.session, "weekly")
    at = FIRST - timedelta(minutes=40)
    planning.plan_pass(world.session, world.settings, now=at)
    assert ("starts-soon", "bea@example.org") in world.pending()
    rsvp.record(world.session, world.member("bea@example.org"), weekly, FIRST, RsvpAnswer.NO,
                now=at)
    assert planning.plan_pass(world.session, world.settings,
                              now=at + timedelta(minutes=1))["cancelled"] == 1
    assert world.session.exec(select(Delivery).where(
        Delivery.call_id == weekly.id, Delivery.rule == "starts-soon",
        Delivery.recipient == "bea@example.org")).one().status == DeliveryStatus.CANCELLED
    ahead = planning.upcoming(world.session, world.settings, now=at + timedelta(minutes=2))
    next_week = [row for row in ahead if row["call"] == "weekly"
                 and row["occurrence_id"] == FIRST + timedelta(days=7)
                 and row["rule"] == "starts-soon" and row["channel"] == "email"]
    assert next_week[0]["recipients"] == 2


def test_ill_be_there_changes_nothing_and_changing_ones_mind_brings_it_back(
        world: World) -> None:
    weekly = calls.get_call(world.session, "weekly")
    bea = world.member("bea@example.org")
    at = FIRST - timedelta(minutes=40)
    rsvp.record(world.session, bea, weekly, FIRST, RsvpAnswer.NO, now=at)
    planning.plan_pass(world.session, world.settings, now=at)
    assert world.session.exec(select(Delivery).where(
        Delivery.call_id == weekly.id, Delivery.rule == "starts-soon",
        Delivery.recipient == "bea@example.org")).first() is None
    rsvp.record(world.session, bea, weekly, FIRST, RsvpAnswer.YES, now=at)
    planning.plan_pass(world.session, world.settings, now=at + timedelta(minutes=1))
    assert world.session.exec(select(Delivery).where(
        Delivery.call_id == weekly.id, Delivery.rule == "starts-soon",
        Delivery.recipient == "bea@example.org")).one().status == DeliveryStatus.PENDING


def test_the_follow_up_goes_only_to_those_who_want_it(world: World) -> None:
    world.choose("ada@example.org", reminders={"weekly": ("announcement",)})
    queued = followups.add(world.session, "weekly", on="2026-01-06", recording=None,
                           notes="Notes", now=FIRST + timedelta(hours=2))
    assert queued == 2  # the forum and bea
    assert {d.recipient for d in world.session.exec(select(Delivery).where(
        Delivery.rule == "followup", Delivery.channel == "email")).all()} == {"bea@example.org"}


def test_the_follow_up_name_is_the_one_followups_use() -> None:
    assert followups.RULE.name == preferences.FOLLOWUP


def _occurrence(start: datetime) -> Occurrence:
    return Occurrence(id=start, start=start, end=start + timedelta(hours=1),
                      zone=get_zone("UTC"), status=Status.CONFIRMED)


@pytest.mark.parametrize(("off", "wanted"), [
    pytest.param((), {"soon", "week"}, id="never-chose"),
    pytest.param(((EVERY_CALL, frozenset({"week"})),), {"soon"}, id="every-call"),
    pytest.param(((EVERY_CALL, frozenset({"week"})), ("c", frozenset({"soon"}))), {"week"},
                 id="the-calls-own-choice-wins"),
    pytest.param((("other", frozenset({"soon", "week"})),), {"soon", "week"},
                 id="another-calls-choice"),
])
def test_plan_honours_each_members_choice_of_reminders(
        off: tuple[tuple[str, frozenset[str]], ...], wanted: set[str]) -> None:
    rules = [Rule(name="week", days=7, channels=("email",), template="announcement"),
             Rule(name="soon", delta=timedelta(minutes=30), channels=("email",),
                  template="starts-soon")]
    call = CallOccurrences(call_id=1, slug="c", created=START, occurrences=[_occurrence(FIRST)])
    member = Recipient(address="a@example.org", since=START - timedelta(days=30), off=off)
    assert {p.rule for p in plan([call], rules, [member])} == wanted


# --- the migration


def test_members_from_before_keep_every_reminder_after_the_upgrade(
        config_case: ConfigCase) -> None:
    """A database at revision 0007 with a member: `coalition init` (0008) leaves them with no
    choice stored, which the planner reads as every reminder of every call they follow."""
    path = config_case("example", database=False)
    settings = config.load(path)
    engine = db.make_engine(settings.database_url())
    db.migrate(engine, revision="0007")
    with engine.begin() as connection:  # as the older code wrote it: without the new column
        connection.execute(text(
            "INSERT INTO subscriber (email, name, language, timezone, status, token, "
            "created_at, confirmed_at) VALUES ('old@example.org', '', 'en', 'UTC', "
            "'confirmed', 'an-old-token-of-24-chars', '2025-01-01 00:00:00', "
            "'2025-01-01 00:00:00')"))
    assert db.migrate(engine).after == db.head_revision() == "0008"
    with Session(engine, expire_on_commit=False) as session:
        old = subscribers.find(session, "old@example.org")
        assert old.reminders_off is None
        assert all(preferences.gets(old, "any-call", n) for n in preferences.choosable(settings))
    engine.dispose()


# --- the command line


@pytest.fixture
def with_calls(coalition: Coalition) -> Coalition:
    for title in ("Weekly", "Other"):
        ran = coalition("call", "add", "--title", title, "--start", "2026-01-06 15:00", "--tz",
                        "UTC", "--rrule", "FREQ=WEEKLY")
        assert ran.exit_code == 0, ran.stderr
    return coalition


def test_subscriber_show_lists_the_choices(with_calls: Coalition) -> None:
    ran = with_calls("subscriber", "import", str(DATA / "csv" / "members_with_choices.csv"))
    assert ran.exit_code == 0, ran.stderr
    ran = with_calls("subscriber", "show", "ADA@example.org", "--json")
    assert ran.exit_code == 0, ran.stderr
    shown = json.loads(ran.stdout)
    assert shown["calls"] == ["weekly"]
    assert shown["reminders"] == {"weekly": ["announcement", "starts-soon"]}
    assert shown["reminders_off"] == {"*": ["tomorrow", "followup"]}
    bea = json.loads(with_calls("subscriber", "show", "bea@example.org", "--json").stdout)
    assert bea["calls"] is None and bea["reminders_off"] == {}
    assert bea["reminders"]["other"] == ["announcement", "tomorrow", "starts-soon", "followup"]
    text = with_calls("subscriber", "show", "ada@example.org").stdout
    assert "calls: weekly" in text and "  weekly: announcement, starts-soon" in text


def test_subscriber_show_of_someone_unknown_is_one_line(with_calls: Coalition) -> None:
    ran = with_calls("subscriber", "show", "nobody@example.org")
    assert (ran.exit_code, ran.stderr) == (2, "error: no subscriber 'nobody@example.org'\n")


def test_import_refuses_an_unknown_reminder_and_writes_nothing(with_calls: Coalition) -> None:
    ran = with_calls("subscriber", "import", str(DATA / "csv" / "members_unknown_reminder.csv"))
    assert ran.exit_code == 2
    assert ran.stderr.startswith("error: ") and "line 3" in ran.stderr
    assert "'yesterday'" in ran.stderr and len(ran.stderr.splitlines()) == 1
    assert with_calls("subscriber", "list", "--json").stdout.strip() == "[]"


def test_import_without_the_new_columns_keeps_earlier_choices(with_calls: Coalition) -> None:
    with_calls("subscriber", "import", str(DATA / "csv" / "members_with_choices.csv"))
    with_calls("subscriber", "remove", "ada@example.org")
    ran = with_calls("subscriber", "import", str(DATA / "csv" / "members.csv"))
    assert ran.exit_code == 2  # bea is still subscribed: all or none
    shown = json.loads(with_calls("subscriber", "show", "ada@example.org", "--json").stdout)
    assert shown["calls"] == ["weekly"]
