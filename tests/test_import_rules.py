"""No rule is expanded without a bound. A daily rule listing every hour, minute and second
with an EXDATE in 2099 ran for more than 300 s; without the EXDATE it imported, and then
`call list --json` hung. A rule that makes more than one occurrence an hour is refused where
it is given and where it is read back, and every lookup in a rule starts near what it looks
for instead of stepping from the rule's first occurrence."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from scheduler import config
from scheduler.core import recurrence
from scheduler.core.recurrence import Series, normalize_rrule, occurrences, which_occur
from scheduler.errors import InvalidRecurrence
from scheduler.store import db
from scheduler.store.models import Call
from tests.conftest import DATA, Coalition

CALENDARS = DATA / "calendars"
BRUSSELS = ZoneInfo("Europe/Brussels")
EVERY_HOUR = "FREQ=DAILY;BYHOUR=" + ",".join(str(h) for h in range(24))
EVERY_SECOND = (EVERY_HOUR + ";BYMINUTE=" + ",".join(str(m) for m in range(60))
                + ";BYSECOND=" + ",".join(str(s) for s in range(60)))


def test_rule_with_many_occurrences_an_hour_is_skipped_and_the_rest_listed(
    coalition: Coalition,
) -> None:
    """The hourly rule beside it, with the same EXDATE in 2099, is imported and listed."""
    ran = coalition("import", str(CALENDARS / "every_second_rule.ics"))
    assert ran.exit_code == 0, ran.stderr
    assert "makes 3600 occurrences an hour (BYMINUTE x BYSECOND); a call happens at most " \
           "once an hour" in ran.stdout
    listed = json.loads(coalition("call", "list", "--json").stdout)
    assert [(c["slug"], c["error"]) for c in listed] == [("round-the-clock-watch", None)]
    found = json.loads(coalition("call", "occurrences", "round-the-clock-watch", "--json",
                                 "--from", "2098-12-31", "--to", "2099-01-01").stdout)
    assert [o["status"] for o in found][23:26] == ["confirmed", "cancelled", "confirmed"]


def test_stored_rule_with_many_occurrences_an_hour_is_listed_as_not_servable(
    coalition: Coalition,
) -> None:
    """A row an older version stored with such a rule: the list names it and goes on."""
    engine = db.make_engine(config.load(coalition.config).database_url())
    now = datetime(2027, 1, 1, tzinfo=UTC)
    with Session(engine) as session:
        session.add(Call(slug="every-second", title="Every second", timezone="Europe/Brussels",
                         start_local="2019-01-01T00:00:00", duration_minutes=1,
                         rrule=EVERY_SECOND, language="en", created_at=now, updated_at=now))
        session.commit()
    engine.dispose()
    ran = coalition("call", "list", "--json")
    assert ran.exit_code == 0, ran.stderr
    (listed,) = json.loads(ran.stdout)
    assert "a call happens at most once an hour" in listed["error"]


@pytest.mark.parametrize(("rule", "message"), [
    pytest.param("FREQ=DAILY;BYMINUTE=0,30", "makes 2 occurrences an hour", id="half-hourly"),
    pytest.param(EVERY_SECOND, "makes 3600 occurrences an hour", id="every-second"),
    pytest.param("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "yields no occurrence",
                 id="daily-on-february-30"),
    pytest.param("FREQ=MONTHLY;BYYEARDAY=100", "only with FREQ=YEARLY", id="monthly-yearday"),
])
def test_rule_that_no_loop_would_finish_is_refused_where_it_is_given(
    rule: str, message: str,
) -> None:
    with pytest.raises(InvalidRecurrence, match=message):
        normalize_rrule(rule, datetime(2027, 1, 1, 0, tzinfo=BRUSSELS))


def test_hourly_rule_from_1900_finds_its_last_occurrences_in_2199() -> None:
    """Found from a period just before them, not by stepping through 2.6 million hours; the
    last is 23:00 on 31 December 2199 in Brussels, where the years this service handles end."""
    series = Series(start=datetime(1900, 1, 1, tzinfo=BRUSSELS), duration=timedelta(minutes=30),
                    rrule=EVERY_HOUR)
    found = occurrences(series, {}, start=datetime(2199, 12, 31, 20, tzinfo=UTC), count=5)
    assert [o.local_start.hour for o in found] == [21, 22, 23]


def test_checking_dates_of_a_count_rule_stops_at_its_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rule with a COUNT can only be stepped from its start: the check refuses to step
    further than `MAX_STEPS` instead of running for minutes."""
    monkeypatch.setattr(recurrence, "MAX_STEPS", 100)
    series = Series(start=datetime(2027, 1, 1, tzinfo=BRUSSELS), duration=timedelta(hours=1),
                    rrule=EVERY_HOUR + ";COUNT=1000000")
    assert which_occur(series, [datetime(2027, 1, 1, 3, tzinfo=BRUSSELS)]) == {
        datetime(2027, 1, 1, 2, tzinfo=UTC)}
    with pytest.raises(InvalidRecurrence, match="more than 100 occurrences"):
        which_occur(series, [datetime(2099, 1, 1, tzinfo=BRUSSELS)])


RULES = ["FREQ=DAILY", "FREQ=DAILY;INTERVAL=3", "FREQ=WEEKLY", "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH",
         "FREQ=WEEKLY;INTERVAL=3;WKST=SU;BYDAY=SU,SA", "FREQ=MONTHLY", "FREQ=MONTHLY;BYDAY=2TU",
         "FREQ=MONTHLY;INTERVAL=5;BYDAY=-1FR", "FREQ=MONTHLY;BYMONTHDAY=31", "FREQ=YEARLY",
         "FREQ=YEARLY;INTERVAL=4", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
         "FREQ=YEARLY;BYWEEKNO=53;BYDAY=MO", "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
         "FREQ=DAILY;BYHOUR=9,17", "FREQ=WEEKLY;UNTIL=20400101T000000Z",
         "FREQ=MONTHLY;INTERVAL=2;BYMONTHDAY=-1;BYHOUR=1,23"]
ZONES = ["America/New_York", "Europe/Brussels", "Australia/Lord_Howe", "America/Havana",
         "Asia/Kathmandu"]


@settings(max_examples=300, deadline=None)
@given(rule=st.sampled_from(RULES), zone=st.sampled_from(ZONES),
       start=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2030, 12, 31)),
       later=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20_000)))
def test_lookup_far_from_the_start_finds_what_stepping_from_the_start_finds(
    rule: str, zone: str, start: datetime, later: timedelta,
) -> None:
    """A rule without a COUNT is begun at a period boundary just before the moment looked
    for: the occurrences from that moment on are the same as dateutil's from the start."""
    anchor = start.replace(second=0, microsecond=0, tzinfo=ZoneInfo(zone))
    series = Series(start=anchor, duration=timedelta(hours=1), rrule=rule)
    after = (anchor + later).astimezone(UTC)
    plain = rrulestr(rule, dtstart=anchor).xafter(after, inc=True)
    expected = [o for o in itertools.islice(plain, 8) if o.year < 2200]
    assert [(o, o.utcoffset()) for o in itertools.islice(series.originals(after), 8)] == [
        (o, o.utcoffset()) for o in expected]
