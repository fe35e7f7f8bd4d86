"""`coalition times`, `render` and `check`, as an organizer runs them."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import DATA, Coalition
from tests.test_cli_calls import ADD, SLUG, ok


@pytest.fixture
def with_call(coalition: Coalition) -> Coalition:
    ok(coalition(*ADD))
    return coalition


def test_times_json_gives_zone_label_and_local_time_with_offset(with_call: Coalition) -> None:
    rows = json.loads(ok(with_call("times", SLUG, "--on", "2018-11-13", "--json")).stdout)
    assert [(r["zone"], r["label"], r["local"]) for r in rows] == [
        ("America/New_York", "New York", "2018-11-13T10:00:00-05:00"),
        ("Europe/Brussels", "Brussels", "2018-11-13T16:00:00+01:00"),
        ("Africa/Cairo", "Cairo", "2018-11-13T17:00:00+02:00"),
        ("Africa/Addis_Ababa", "Addis Ababa", "2018-11-13T18:00:00+03:00"),
        ("Asia/Jakarta", "Jakarta", "2018-11-13T22:00:00+07:00"),
    ]


def test_times_in_zones_of_the_organizers_choosing(with_call: Coalition) -> None:
    rows = json.loads(ok(with_call("times", SLUG, "--on", "2018-11-13", "--json", "--zones",
                                   "Asia/Kathmandu,Pacific/Chatham")).stdout)
    assert [r["local"] for r in rows] == ["2018-11-13T20:45:00+05:45",
                                          "2018-11-14T04:45:00+13:45"]
    assert [datetime.fromisoformat(r["local"]).date().day for r in rows] == [13, 14]


def test_times_table_marks_another_day(with_call: Coalition) -> None:
    table = ok(with_call("times", SLUG, "--on", "2018-11-13", "--zones", "Pacific/Kiritimati"))
    assert "5:00 AM" in table.stdout
    assert "Wednesday, November 14, 2018 (another day)" in table.stdout


def test_render_forum_announcement(with_call: Coalition) -> None:
    post = ok(with_call("render", SLUG, "--on", "2018-11-13", "--template", "announcement",
                        "--channel", "forum", "--now", "2018-11-06T15:00:00Z")).stdout
    assert "10:00 AM New York // 4:00 PM Brussels // 5:00 PM Cairo" in post
    assert "[date=2018-11-13 time=15:00:00" in post


def test_render_french_email_at_a_given_moment(with_call: Coalition) -> None:
    email = ok(with_call("render", SLUG, "--on", "2018-11-13", "--template", "starts-soon",
                         "--channel", "email", "--lang", "fr", "--now",
                         "2018-11-13T14:30:00Z")).stdout
    assert email.startswith("Subject: Justice For All coalition call : début dans 30 minutes\n")
    assert "--- HTML ---\n<!DOCTYPE html>" in email


def test_render_followup_with_recording_and_notes(with_call: Coalition, tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("We agreed on three actions.\n", encoding="utf-8")
    post = ok(with_call("render", SLUG, "--on", "2018-11-13", "--template", "followup",
                        "--recording", "https://example.org/rec/1", "--notes", str(notes),
                        "--now", "2018-11-14T10:00:00Z")).stdout
    assert "Here is the recording: https://example.org/rec/1" in post
    assert "We agreed on three actions." in post


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--template", "welcome"], "unknown template 'welcome'",
                     id="unknown-template"),
        pytest.param(["--template", "today", "--channel", "sms"], "unknown channel 'sms'",
                     id="unknown-channel"),
        pytest.param(["--template", "today", "--lang", "de"], "language 'de' is not one of",
                     id="unknown-language"),
        pytest.param(["--template", "today", "--now", "tomorrow at 3"], "--now 'tomorrow at 3'",
                     id="unparseable-now"),
        pytest.param(["--template", "today", "--tz", "Europe/Pari"], "did you mean Europe/Paris",
                     id="unknown-reader-zone"),
    ],
)
def test_render_bad_input_is_one_line_exit_2(
    with_call: Coalition, args: list[str], message: str
) -> None:
    ran = with_call("render", SLUG, "--on", "2018-11-13", *args)
    assert ran.exit_code == 2 and ran.stderr.count("\n") == 1 and message in ran.stderr


def test_render_on_a_date_without_occurrence_names_the_nearest(with_call: Coalition) -> None:
    ran = with_call("render", SLUG, "--on", "2018-11-14", "--template", "today")
    assert ran.exit_code == 2 and "the next is Tue 2018-12-11 10:00" in ran.stderr


def test_render_of_a_cancelled_occurrence_is_refused(with_call: Coalition) -> None:
    ok(with_call("call", "cancel", SLUG, "--on", "2018-12-11"))
    ran = with_call("render", SLUG, "--on", "2018-12-11", "--template", "today")
    assert ran.exit_code == 2 and "is cancelled" in ran.stderr


def test_check_passes_on_the_built_in_templates(coalition: Coalition) -> None:
    ran = ok(coalition("check"))
    assert "templates in" in ran.stdout and ran.stdout.rstrip().endswith(": ok")


def test_check_reports_each_broken_template_and_exits_2(coalition: Coalition) -> None:
    config = coalition.config
    shutil.copytree(DATA / "templates" / "sandbox_escape", config.parent / "mine")
    shutil.copytree(DATA / "templates" / "misspelled", config.parent / "mine", dirs_exist_ok=True)
    config.write_text(config.read_text().replace('folder = ""', 'folder = "mine"'))
    ran = coalition("check")
    assert ran.exit_code == 2
    errors = ran.stderr.splitlines()
    assert len(errors) == 2
    assert any("mine/forum/today.en.md line 1: refused by the sandbox" in e for e in errors)
    assert any("mine/forum/tomorrow.fr.md line 2:" in e for e in errors)
