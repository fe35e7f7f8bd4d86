"""`coalition import`: calls from calendar files; a file that cannot be read, or that holds
no event that can be a call, stores nothing. (What real exports hold: test_import_*.py.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import DATA, Coalition, ConfigCase

ICS = DATA / "ics"


def slugs(coalition: Coalition) -> list[str]:
    return [c["slug"] for c in json.loads(coalition("call", "list", "--json").stdout)]


def occurrences(coalition: Coalition, slug: str) -> list[tuple[str, str, str, str]]:
    found = json.loads(coalition("call", "occurrences", slug, "--json", "--from", "2018-01-01",
                                 "--to", "2024-12-31").stdout)
    return [(o["id"], o["start_utc"], o["end_utc"], o["status"]) for o in found]


def test_google_export_keeps_new_york_wall_time_through_x_wr_timezone(
    coalition: Coalition,
) -> None:
    """Google writes UTC times and names the zone in X-WR-TIMEZONE; read as plain UTC, the
    March 2019 call would drift to 11:00 New York."""
    ran = coalition("import", str(ICS / "google_export.ics"))
    assert ran.exit_code == 0, ran.stderr
    found = occurrences(coalition, "justice-for-all-coalition-call")[:5]
    assert found == [
        ("2018-11-13T15:00:00Z", "2018-11-13T15:00:00Z", "2018-11-13T16:00:00Z", "confirmed"),
        ("2018-12-11T15:00:00Z", "2018-12-11T15:00:00Z", "2018-12-11T16:00:00Z", "confirmed"),
        ("2019-01-08T15:00:00Z", "2019-01-08T15:00:00Z", "2019-01-08T16:00:00Z", "cancelled"),
        ("2019-02-12T15:00:00Z", "2019-02-19T15:00:00Z", "2019-02-19T16:00:00Z", "moved"),
        ("2019-03-12T14:00:00Z", "2019-03-12T14:00:00Z", "2019-03-12T15:00:00Z", "confirmed"),
    ]
    shown = json.loads(coalition("call", "show", "justice-for-all-coalition-call",
                                 "--json").stdout)
    assert (shown["timezone"], shown["uid"], shown["join_url"]) == (
        "America/New_York", "7kukuqrfedlm2f9t0vr42e4j0g@google.com",
        "https://meet.example.org/jfa")
    assert "brussels-workshop" in slugs(coalition)


def test_outlook_zone_names_become_iana_zones(coalition: Coalition) -> None:
    assert coalition("import", str(ICS / "outlook_export.ics")).exit_code == 0
    shown = json.loads(coalition("call", "show", "berlin-hub-call", "--json").stdout)
    assert (shown["timezone"], shown["start"]) == ("Europe/Berlin", "2019-03-20T17:00:00+01:00")
    assert occurrences(coalition, "berlin-hub-call")[-1][1] == "2019-04-10T15:00:00Z"  # CEST


def test_feed_we_built_imports_back_to_the_same_occurrences(
    organizer: Callable[[str], Coalition], config_case: ConfigCase,
) -> None:
    """Round trip: our all.ics, imported by a second, empty service, gives the same
    occurrences. A cancelled one-off has nothing to import, and a moved one-off is one event
    at its new time in a feed (no RECURRENCE-ID without a series): it keeps its times only."""
    coalition = organizer("across_dst")
    feed = coalition.config.parent / "calendars" / "all.ics"
    elsewhere = config_case("example", "second-service")

    def listed(slug: str, config: Path | None = None) -> list[tuple[str, str, str, str]]:
        found = json.loads(coalition("call", "occurrences", slug, "--json", "--from",
                                     "2018-01-01", "--to", "2024-12-31",
                                     config_path=config).stdout)
        return [(o["id"], o["start"], o["end"], o["status"]) for o in found]

    ran = coalition("import", str(feed), config_path=elsewhere)
    assert ran.exit_code == 0, ran.stderr
    imported = [c["slug"] for c in json.loads(coalition("call", "list", "--json",
                                                        config_path=elsewhere).stdout)]
    assert imported == [s for s in slugs(coalition) if s != "cancelled-one-off"]
    for slug in imported:
        if slug == "st-johns-one-off":
            assert [o[1:3] for o in listed(slug, elsewhere)] == [o[1:3] for o in listed(slug)]
            continue
        assert listed(slug, elsewhere) == listed(slug), slug


@pytest.mark.parametrize(
    ("case", "message"),
    [
        pytest.param("unknown_tzid", "did you mean Europe/Paris", id="unknown-tzid"),
        pytest.param("floating", "has no time zone", id="floating-time"),
        pytest.param("all_day", "is a whole day", id="all-day-event"),
        pytest.param("orphan_override", "which has no series", id="override-without-series"),
        pytest.param("not_a_calendar", "not an iCalendar file", id="not-a-calendar"),
        pytest.param("deeply_nested", "nested deeper than 8", id="deep-nesting"),
    ],
)
def test_bad_file_is_one_line_and_stores_nothing(
    coalition: Coalition, case: str, message: str
) -> None:
    ran = coalition("import", str(ICS / f"{case}.ics"))
    assert ran.exit_code == 2 and ran.stderr.count("\n") == 1, ran.stderr
    assert message in ran.stderr
    assert slugs(coalition) == []


def test_bad_event_after_a_good_one_is_skipped_with_its_line(coalition: Coalition) -> None:
    """One event with an impossible date no longer refuses the others (it used to)."""
    ran = coalition("import", str(ICS / "bad_date.ics"))
    assert ran.exit_code == 0, ran.stderr
    assert ("skipped event 'Thirteenth month' (line 10): DTSTART: '20191340T250000' is not a "
            "date or a date and time") in ran.stdout
    assert slugs(coalition) == ["a-fine-call"]


def test_huge_file_is_refused_before_it_is_read(coalition: Coalition, tmp_path: Path) -> None:
    huge = tmp_path / "huge.ics"
    with huge.open("wb") as f:
        f.truncate(100 * 2**20)  # 100 MB, sparse: nothing is written
    ran = coalition("import", str(huge))
    assert ran.exit_code == 2 and ran.stderr == f"error: {huge}: more than this imports (10 MB)\n"


def test_a_calendar_piped_in_is_imported(coalition: Coalition) -> None:
    """`-` is standard input, named <stdin> in what the import says."""
    ran = coalition("import", "--json", "-", input=(ICS / "bad_date.ics").read_text())
    assert ran.exit_code == 0, ran.stderr
    imported = json.loads(ran.stdout)
    assert [s["line"] for s in imported["skipped"]] == [10]
    assert slugs(coalition) == ["a-fine-call"]


def test_importing_the_same_file_twice_stores_nothing_the_second_time(
    coalition: Coalition,
) -> None:
    assert coalition("import", str(ICS / "google_export.ics")).exit_code == 0
    before = slugs(coalition)
    again = coalition("import", str(ICS / "google_export.ics"))
    assert again.exit_code == 2 and "was already imported as" in again.stderr
    assert slugs(coalition) == before


def test_dry_run_shows_what_would_be_imported(coalition: Coalition) -> None:
    ran = coalition("import", str(ICS / "google_export.ics"), "--dry-run")
    assert ran.exit_code == 0 and "would import" in ran.stdout
    assert slugs(coalition) == []


def test_missing_file_is_one_line(coalition: Coalition, tmp_path: Path) -> None:
    ran = coalition("import", str(tmp_path / "absent.ics"))
    assert ran.exit_code == 2 and "no such file" in ran.stderr
