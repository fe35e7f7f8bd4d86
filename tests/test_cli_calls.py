"""The organizer's commands, run as an organizer types them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine

from tests.conftest import Coalition, Ran

SLUG = "justice-for-all-coalition-call"
ADD = ["call", "add", "--title", "Justice For All coalition call", "--start", "2018-11-13 10:00",
       "--tz", "America/New_York", "--rrule", "FREQ=MONTHLY;BYDAY=2TU", "--duration", "60",
       "--register-url", "https://example.org/register", "--forum-topic", "77"]


def ok(ran: Ran) -> Ran:
    assert ran.exit_code == 0, ran.stderr
    return ran


def as_json(ran: Ran) -> Any:
    return json.loads(ok(ran).stdout)


@pytest.fixture
def with_call(coalition: Coalition) -> Coalition:
    ok(coalition(*ADD))
    return coalition


def occurrences(coalition: Coalition, *args: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = as_json(coalition("call", "occurrences", SLUG, "--json", *args))
    return rows


def test_added_call_gets_a_slug_from_its_title_and_is_listed(with_call: Coalition) -> None:
    listed = as_json(with_call("call", "list", "--json"))
    assert [c["slug"] for c in listed] == [SLUG]
    shown = as_json(with_call("call", "show", SLUG, "--json"))
    assert shown | {"start": "2018-11-13T10:00:00-05:00"} == shown
    assert (shown["timezone"], shown["rrule"], shown["duration"], shown["forum_topic"]) == (
        "America/New_York", "FREQ=MONTHLY;BYDAY=2TU", 60, 77)
    assert shown["zones"][0] == "America/New_York" and shown["zones_from_config"]


def test_occurrences_cross_the_2018_2019_dst_changes_at_the_right_utc(with_call: Coalition) -> None:
    found = occurrences(with_call, "--from", "2018-11-01", "--count", "6")
    assert [o["id"] for o in found] == [
        "2018-11-13T15:00:00Z", "2018-12-11T15:00:00Z", "2019-01-08T15:00:00Z",
        "2019-02-12T15:00:00Z", "2019-03-12T14:00:00Z", "2019-04-09T14:00:00Z",
    ]
    assert found[4]["start"] == "2019-03-12T10:00:00-04:00"
    assert found[4]["end"] == "2019-03-12T11:00:00-04:00"
    assert {o["status"] for o in found} == {"confirmed"}


def test_human_occurrence_table_shows_anchor_time_and_utc(with_call: Coalition) -> None:
    table = ok(with_call("call", "occurrences", SLUG, "--from", "2019-03-01", "--count", "1"))
    assert "Tue 2019-03-12 10:00 EDT" in table.stdout
    assert "2019-03-12 14:00" in table.stdout


def test_moved_occurrence_keeps_its_id_and_shows_its_new_time(with_call: Coalition) -> None:
    ok(with_call("call", "move", SLUG, "--on", "2019-02-12", "--to", "2019-02-19 10:00"))
    moved = occurrences(with_call, "--from", "2019-02-01", "--count", "1")[0]
    assert (moved["id"], moved["start"], moved["status"]) == (
        "2019-02-12T15:00:00Z", "2019-02-19T10:00:00-05:00", "moved")


def test_cancelled_occurrence_is_listed_marked_and_restore_brings_it_back(
    with_call: Coalition,
) -> None:
    ok(with_call("call", "cancel", SLUG, "--on", "2019-01-08"))
    window = ("--from", "2019-01-01", "--to", "2019-01-31")
    assert [o["status"] for o in occurrences(with_call, *window)] == ["cancelled"]
    ok(with_call("call", "restore", SLUG, "--on", "2019-01-08"))
    assert [o["status"] for o in occurrences(with_call, *window)] == ["confirmed"]


def test_to_date_is_inclusive(with_call: Coalition) -> None:
    found = occurrences(with_call, "--from", "2018-11-13", "--to", "2019-01-08")
    assert len(found) == 3


def test_each_change_raises_the_sequence_but_a_no_op_edit_does_not(with_call: Coalition) -> None:
    def sequence() -> int:
        return int(as_json(with_call("call", "show", SLUG, "--json"))["sequence"])

    assert sequence() == 0
    ok(with_call("call", "cancel", SLUG, "--on", "2019-01-08"))
    ok(with_call("call", "cancel", SLUG, "--on", "2019-01-08"))  # already cancelled
    ok(with_call("call", "edit", SLUG, "--title", "Justice For All coalition call"))
    assert sequence() == 1
    ok(with_call("call", "edit", SLUG, "--duration", "90"))
    assert sequence() == 2


def test_edit_changes_any_field(with_call: Coalition) -> None:
    ok(with_call("call", "edit", SLUG, "--title", "JFA monthly", "--description", "Agenda",
                 "--join-url", "https://meet.example.org/jfa", "--lang", "fr",
                 "--zones", "America/New_York,Asia/Kathmandu", "--slug", "jfa"))
    shown = as_json(with_call("call", "show", "jfa", "--json"))
    assert (shown["title"], shown["description"], shown["join_url"], shown["language"],
            shown["zones"]) == ("JFA monthly", "Agenda", "https://meet.example.org/jfa", "fr",
                                ["America/New_York", "Asia/Kathmandu"])
    ok(with_call("call", "edit", "jfa", "--zones", "", "--rrule", "", "--forum-topic", "0"))
    shown = as_json(with_call("call", "show", "jfa", "--json"))
    assert shown["zones_from_config"] and shown["rrule"] is None and shown["forum_topic"] is None


def test_moving_the_whole_series_keeps_its_cancellations(with_call: Coalition) -> None:
    ok(with_call("call", "cancel", SLUG, "--on", "2019-01-08"))
    ok(with_call("call", "edit", SLUG, "--start", "2018-11-13 11:00"))
    january = occurrences(with_call, "--from", "2019-01-01", "--count", "1")[0]
    assert (january["start"], january["status"]) == ("2019-01-08T11:00:00-05:00", "cancelled")


def test_call_with_its_own_zones(coalition: Coalition) -> None:
    zones = "America/New_York,Europe/Brussels,Africa/Cairo,Africa/Addis_Ababa,Asia/Jakarta"
    ok(coalition(*ADD, "--zones", zones, "--slug", "with-zones"))
    shown = as_json(coalition("call", "show", "with-zones", "--json"))
    assert shown["zones"] == zones.split(",") and not shown["zones_from_config"]


def test_delete_removes_the_call_and_its_changes(with_call: Coalition) -> None:
    ok(with_call("call", "cancel", SLUG, "--on", "2019-01-08"))
    ok(with_call("call", "delete", SLUG, "--yes"))
    assert as_json(with_call("call", "list", "--json")) == []
    ok(with_call(*ADD))  # the slug is free again, and no old cancellation comes back
    assert {o["status"] for o in occurrences(with_call, "--from", "2019-01-01", "--count", "1")} \
        == {"confirmed"}


@time_machine.travel(datetime(2019, 1, 20, tzinfo=UTC), tick=False)
def test_occurrences_start_from_now_by_default(with_call: Coalition) -> None:
    assert occurrences(with_call, "--count", "1")[0]["id"] == "2019-02-12T15:00:00Z"
    shown = as_json(with_call("call", "show", SLUG, "--json"))
    assert shown["next"]["id"] == "2019-02-12T15:00:00Z"


BAD_INPUT = [
    pytest.param(["call", "add", "--title", "T", "--start", "2018-11-13 10:00",
                  "--tz", "America/New_Yrok"], "did you mean America/New_York", id="unknown-zone"),
    pytest.param([*ADD[:-2], "--rrule", "FREQ=MONTHLY;BYDAY=TUESDAY", "--slug", "x"],
                 "malformed RRULE", id="malformed-rrule"),
    pytest.param([*ADD, "--rrule", "FREQ=MONTHLY;BYDAY=2TU;UNTIL=20180101", "--slug", "x"],
                 "yields no occurrence", id="rrule-without-occurrence"),
    pytest.param(["call", "add", "--title", "T", "--start", "2019-03-10 02:30",
                  "--tz", "America/New_York"], "clocks jump from 02:00 to 03:00",
                 id="spring-forward-gap"),
    pytest.param(["call", "add", "--title", "T", "--start", "2018-11-04 01:30",
                  "--tz", "America/New_York"], "happens twice", id="fall-back-repeat"),
    pytest.param(["call", "add", "--title", "T", "--start", "2018-11-13 10:00",
                  "--tz", "America/New_York", "--duration", "0"],
                 "duration must be between 1 and 1440 minutes", id="zero-duration"),
    pytest.param(["call", "add", "--title", "T", "--start", "2018-11-13 10:00",
                  "--tz", "America/New_York", "--duration", "-30"],
                 "duration must be between", id="negative-duration"),
    pytest.param(["call", "add", "--title", "T", "--start", "2018-11-13 10:00",
                  "--tz", "America/New_York", "--register-url", "ftp://example.org/r"],
                 "must be an http:// or https:// address", id="ftp-url"),
    pytest.param(["call", "add", "--title", "T", "--start", "2018-11-13 10:00",
                  "--tz", "America/New_York", "--join-url", "javascript:alert(1)"],
                 "must be an http:// or https:// address", id="javascript-url"),
    pytest.param(["call", "move", SLUG, "--on", "2019-02-13", "--to", "2019-02-19 10:00"],
                 "no occurrence on 2019-02-13", id="move-date-not-an-occurrence"),
    pytest.param(["call", "cancel", SLUG, "--on", "2019-02-14"],
                 "no occurrence on 2019-02-14", id="cancel-date-not-an-occurrence"),
    pytest.param(["call", "move", SLUG, "--on", "2019-03-12", "--to", "2019-03-10 02:30"],
                 "does not exist in America/New_York", id="move-into-gap"),
    pytest.param(ADD, "already exists", id="duplicate-slug"),
    pytest.param(["call", "show", "no-such-call"], f"no call 'no-such-call'; known calls: {SLUG}",
                 id="unknown-slug"),
    pytest.param(["call", "cancel", "no-such-call", "--on", "2019-01-08"], "no call",
                 id="unknown-slug-cancel"),
    pytest.param(["call", "edit", SLUG, "--rrule", "FREQ=MONTHLY;BYDAY=3TU"],
                 "is not an occurrence", id="edit-rule-off-start"),
    pytest.param(["call", "add", "--title", "T", "--start", "13/11/2018",
                  "--tz", "America/New_York"], "is not a date and time", id="unparseable-start"),
    pytest.param(["call", "add", "--title", "T", "--tz", "America/New_York"],
                 "a new call needs --start", id="missing-start"),
    pytest.param(["call", "add", "--title", "T", "--start", "2018-11-13 10:00",
                  "--tz", "America/New_York", "--lang", "de"], "language 'de' is not one of",
                 id="unknown-language"),
    pytest.param(["call", "occurrences", SLUG, "--from", "next week"], "--from 'next week'",
                 id="unparseable-from"),
    pytest.param(["call", "add", "--title", "T", "--start", "2018-11-13 10:00",
                  "--tz", "America/New_York", "--duration", "an hour"],
                 "Invalid value for '--duration'", id="duration-not-a-number"),
    pytest.param(["call", "edit", SLUG], "nothing to change", id="edit-without-changes"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT)
def test_bad_input_is_one_line_exit_2_and_stores_nothing(
    with_call: Coalition, args: list[str], message: str
) -> None:
    before = with_call("call", "list", "--json").stdout, occurrences(with_call, "--from",
                                                                      "2018-11-01", "--count", "8")
    ran = with_call(*args)
    assert ran.exit_code == 2
    assert ran.stderr.count("\n") == 1 and ran.stderr.startswith("error: ")
    assert message in ran.stderr
    assert "Traceback" not in ran.stderr + ran.stdout
    after = with_call("call", "list", "--json").stdout, occurrences(with_call, "--from",
                                                                     "2018-11-01", "--count", "8")
    assert after == before


def test_installed_command_reports_errors_without_traceback(tmp_path: Path) -> None:
    """The real console script, as a user runs it."""
    coalition = shutil.which("coalition", path=str(Path(sys.executable).parent))
    assert coalition, "the coalition console script is not installed in this environment"
    shutil.copy(Path(__file__).parent.parent / "config.toml", tmp_path / "config.toml")
    subprocess.run([coalition, "init"], cwd=tmp_path, capture_output=True, check=True)
    ran = subprocess.run([coalition, "call", "show", "nope"], cwd=tmp_path, capture_output=True,
                         text=True, check=False)
    assert (ran.returncode, ran.stderr) == (2, "error: no call 'nope'; there are no calls yet\n")
