"""Converters for what organizers type: each returns a typed value or raises `InvalidValue`
naming the field. They run once, on the way in; nothing after them handles raw strings.

Dates and times must lie in the years this service handles (`scheduler.core.zones.within_years`);
a call's start and a move's new time are checked where they become instants
(`scheduler.core.zones.localize_strict`). Email addresses have a module of their own,
`scheduler.core.addresses`.

Text (titles, descriptions, names, CSV cells, form fields) goes through `plain_text`, the one
rule for what text may hold: no control characters but tab and newline. The C0 controls (NUL,
ESC, BEL, CR, ...), DEL and the C1 controls are refused with a line naming the field: they
would reach terminals, mail headers and the database raw (PostgreSQL refuses NUL outright)."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from scheduler.core.zones import get_zone, within_years
from scheduler.errors import InvalidValue

MAX_DURATION_MINUTES = 24 * 60
MAX_TITLE = 300
MAX_AGENDA = 20_000  # characters: a few paragraphs of Markdown, well within any message
# C0 controls but tab (U+0009) and newline (U+000A), DEL, and the C1 controls.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain_text(text: str, *, field: str) -> str:
    """`text` in Unicode NFC (so that "é" typed in two ways is stored one way), or
    `InvalidValue` naming `field` when it holds a control character other than tab and
    newline."""
    found = CONTROL.search(text)
    if found is not None:
        raise InvalidValue(f"{field} contains the control character "
                           f"U+{ord(found.group()):04X} (character {found.start() + 1}); only "
                           "printable text, tabs and line breaks are accepted")
    return unicodedata.normalize("NFC", text)


def agenda(text: str, *, field: str) -> str:
    """One occurrence's agenda (Markdown) as stored: Windows line endings read as newlines,
    blank lines around it removed, and `plain_text`'s rule; `InvalidValue` naming `field`
    when nothing is left or it is longer than `MAX_AGENDA` characters."""
    text = plain_text(text.replace("\r\n", "\n"), field=field).strip()
    if not text:
        raise InvalidValue(f"{field} is empty; give the agenda's text, or --clear to remove "
                           "the agenda")
    if len(text) > MAX_AGENDA:
        raise InvalidValue(f"{field} is {len(text):,} characters long; an agenda holds at most "
                           f"{MAX_AGENDA:,}")
    return text


def one_line(text: str, *, field: str) -> str:
    """`plain_text` on one line: its runs of white space (line breaks too) made single
    spaces, none at either end."""
    return " ".join(plain_text(text, field=field).split())


def wall_time(text: str, *, field: str) -> datetime:
    """'2018-11-13 10:00' (or with a T) as a naive wall time; an offset is refused."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as e:
        raise InvalidValue(
            f"{field} {text!r} is not a date and time like '2018-11-13 10:00'"
        ) from e
    if value.tzinfo is not None:
        raise InvalidValue(
            f"{field} {text!r} carries a UTC offset; give the wall time in the call's zone, "
            "without an offset"
        )
    if len(text.strip()) <= 10:
        raise InvalidValue(f"{field} {text!r} needs a time too, like '{text.strip()} 10:00'")
    return value


NEXT, TODAY = "next", "today"  # `--on next`, `--on today`: words for an occurrence's date


def occurrence_word(text: str) -> str | None:
    """NEXT or TODAY when `text` is one of those words (in any case); None for anything else,
    which is a date for `day_or_wall_time`."""
    word = text.strip().lower()
    return word if word in (NEXT, TODAY) else None


def today_in(zone: ZoneInfo, now: datetime) -> date:
    """The date it is at `now` in `zone`: what `--on today` names for a call in that zone."""
    return now.astimezone(zone).date()


def day_or_wall_time(text: str, *, field: str) -> date | datetime:
    """A date ('2019-02-12') or, where a day holds several occurrences, a wall time."""
    text = text.strip()
    try:
        day: date | datetime = date.fromisoformat(text)
    except ValueError:
        try:
            day = wall_time(text, field=field)
        except InvalidValue:
            raise InvalidValue(f"{field} {text!r} is not a date like '2019-02-12'") from None
    within_years(day, what=field)
    return day


def window_bound(text: str, zone: ZoneInfo, *, field: str, end_of_day: bool = False) -> datetime:
    """An instant from '2018-11-01' (midnight in `zone`; with `end_of_day`, the next midnight),
    a wall time in `zone`, or an ISO 8601 instant with an offset or Z."""
    text = text.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        within_years(day, what=field)
        if end_of_day:
            day += timedelta(days=1)
        return datetime.combine(day, datetime.min.time(), zone).astimezone(UTC)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise InvalidValue(f"{field} {text!r} is not a date like '2018-11-01'") from e
    within_years(value, what=field, typed=text)
    return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(UTC)


def instant(text: str, *, field: str) -> datetime:
    """An ISO 8601 instant with an offset or Z, such as 2018-11-13T14:30:00Z."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as e:
        raise InvalidValue(f"{field} {text!r} is not an ISO 8601 instant like "
                           "'2018-11-13T14:30:00Z'") from e
    if value.tzinfo is None:
        raise InvalidValue(f"{field} {text!r} needs a UTC offset or Z, like "
                           "'2018-11-13T14:30:00Z'")
    within_years(value, what=field, typed=text.strip())
    return value.astimezone(UTC)


def duration(minutes: int, *, field: str = "duration") -> timedelta:
    if not 0 < minutes <= MAX_DURATION_MINUTES:
        raise InvalidValue(
            f"{field} must be between 1 and {MAX_DURATION_MINUTES} minutes, got {minutes}"
        )
    return timedelta(minutes=minutes)


def web_url(text: str, *, field: str) -> str:
    text = plain_text(text, field=field).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidValue(f"{field} {text!r} must be an http:// or https:// address")
    if any(c.isspace() for c in text):
        raise InvalidValue(f"{field} {text!r} contains white space")
    return text


def title(text: str) -> str:
    text = one_line(text, field="title")
    if not text:
        raise InvalidValue("title must not be empty")
    if len(text) > MAX_TITLE:
        raise InvalidValue(f"title is {len(text)} characters long; at most {MAX_TITLE}")
    return text


def zone_names(text: str, *, field: str = "zones") -> list[str]:
    """'America/New_York, Europe/Brussels' as checked IANA names, in order, without repeats."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise InvalidValue(f"{field} is empty; give comma-separated IANA zone names")
    return list(dict.fromkeys(get_zone(n).key for n in names))


def forum_topic(value: int) -> int:
    if value <= 0:
        raise InvalidValue(f"forum topic must be a positive topic id, got {value}")
    return value


def language(code: str, allowed: tuple[str, ...]) -> str:
    code = code.strip().lower()
    if code not in allowed:
        raise InvalidValue(f"language {code!r} is not one of {', '.join(allowed)} "
                           "(see [calls] languages in config.toml)")
    return code
