"""Three independent readers of the feeds we publish, each giving occurrences the same way:
[{"uid", "id", "start", "end", "status"}] with instants as UTC ISO 8601 strings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import recurring_ical_events
from dateutil.rrule import rrulestr
from icalendar import Calendar, Component

JS = Path(__file__).parent / "js"
REQUIRE_NODE = os.environ.get("COALITION_REQUIRE_NODE") == "1"
Occurrences = list[dict[str, str]]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@cache
def _node_ready() -> str | None:
    """None when node and ical.js are there (installing ical.js if needed), else why not."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm are not installed (make test installs them with apt-get as root)"
    if not (JS / "node_modules" / "ical.js").exists():
        ran = subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=JS,
                             capture_output=True, text=True, check=False)
        if ran.returncode != 0:
            return f"npm install of ical.js failed: {ran.stderr.strip().splitlines()[-1:]}"
    return None


def node_script(name: str) -> Path:
    reason = _node_ready()
    if reason:
        if REQUIRE_NODE:
            pytest.fail(f"{reason} (COALITION_REQUIRE_NODE=1 requires ical.js)")
        pytest.skip(reason)
    return JS / name


def _icaljs(path: Path, start: datetime, end: datetime) -> Occurrences:
    ran = subprocess.run(["node", str(node_script("occurrences.mjs")), str(path), iso(start),
                          iso(end)], capture_output=True, text=True, check=True)
    found: Occurrences = json.loads(ran.stdout)
    return found


def with_icaljs(path: Path, start: datetime, end: datetime) -> Occurrences:
    """ical.js, Thunderbird's parser, expanding with the VTIMEZONEs in the file."""
    return [{key: value for key, value in row.items() if key != "description"}
            for row in _icaljs(path, start, end)]


def icaljs_descriptions(path: Path, start: datetime, end: datetime) -> list[dict[str, str]]:
    """ical.js: each occurrence's start and DESCRIPTION, cancelled ones left out."""
    return [{"start": row["start"], "description": row["description"]}
            for row in _icaljs(path, start, end) if row["status"] != "cancelled"]


def _row(event: Component, uid: str, original: datetime, start: datetime,
         end: datetime) -> dict[str, str]:
    status = str(event.get("status", "CONFIRMED")).lower()
    return {"uid": uid, "id": iso(original), "start": iso(start), "end": iso(end),
            "status": status}


def with_recurring_ical_events(path: Path, start: datetime, end: datetime) -> Occurrences:
    calendar = Calendar.from_ical(path.read_bytes())
    found = []
    for event in recurring_ical_events.of(calendar).between(start, end):
        original = event.get("recurrence-id")
        first = event.decoded("dtstart")
        found.append(_row(event, str(event["uid"]), original.dt if original else first, first,
                          event.decoded("dtend")))
    return sorted(found, key=lambda o: o["start"])


def with_icalendar(path: Path, start: datetime, end: datetime) -> Occurrences:
    """icalendar parses; the RRULE is expanded by dateutil, EXDATEs removed, overrides applied
    by RECURRENCE-ID: no code shared with recurring-ical-events."""
    calendar = Calendar.from_ical(path.read_bytes())
    events = list(calendar.walk("VEVENT"))
    overrides = {(str(e["uid"]), e.decoded("recurrence-id")): e for e in events
                 if "recurrence-id" in e}
    found = []
    for event in (e for e in events if "recurrence-id" not in e):
        uid, first = str(event["uid"]), event.decoded("dtstart")
        # exact duration (RFC 5545 3.8.5.3), in UTC: Python subtracts same-zone times as walls
        length = event.decoded("dtend").astimezone(UTC) - first.astimezone(UTC)
        if "rrule" not in event:
            originals: list[datetime] = [first]
        else:
            rule_text = event["rrule"].to_ical()
            assert isinstance(rule_text, bytes)
            rule = rrulestr(rule_text.decode(), dtstart=first)
            originals = list(rule.between(start - timedelta(days=400), end + timedelta(days=400),
                                          inc=True))
        excluded = {d.dt for prop in _as_list(event.get("exdate")) for d in prop.dts}
        for original in originals:
            if original in excluded:
                continue
            override = overrides.get((uid, original))
            chosen = override if override is not None else event
            begin = chosen.decoded("dtstart") if override is not None else original
            finish = (chosen.decoded("dtend") if override is not None
                      else original.astimezone(UTC) + length)
            if start <= begin < end:
                found.append(_row(chosen, uid, original, begin, finish))
    return sorted(found, key=lambda o: o["start"])


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


READERS = {"icalendar": with_icalendar, "recurring-ical-events": with_recurring_ical_events,
           "ical.js": with_icaljs}
