"""The text of an .ics file as components, each property with its line. Pure: text in.

Real exports are not all that RFC 5545 asks for, and a strict parser refuses a whole file for
one flaw in one event. Here:

* a UTF-8 byte-order mark (Windows tools write one) is dropped, and a file with a UTF-16 mark
  is read as UTF-16;
* lines end in CRLF, LF or CR; a line that starts with a space or a tab continues the one
  before it (RFC 5545 3.1), joined before it is decoded (some writers fold inside a UTF-8
  character); blank lines are passed over;
* a line that cannot be read (bytes that are not UTF-8, no colon, no property name) spoils
  only the component that holds it: `Component.problems` says which line and why, so that
  the importer can skip that one event with the reason (a property with bytes that are not
  UTF-8 is kept, U+FFFD in their place, so that a SUMMARY can still name its event);
* what leaves the file's structure unknown is `UnreadableFile`, with the line: an END that
  closes nothing or the wrong component, components nested deeper than `MAX_DEPTH`, text
  outside BEGIN:VCALENDAR ... END:VCALENDAR, an unreadable line of the calendar itself, and a
  file that ends before its END:VCALENDAR (cut off in a download or by a full disk).

Values stay as written (`text` undoes TEXT escapes, `moment` reads a DATE or DATE-TIME);
the importer decides what they mean.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

from scheduler.errors import SchedulerError

MAX_DEPTH = 8

_NAME = re.compile(r"[A-Za-z0-9-]+\Z")
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_DATE_TIME = re.compile(r"(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)(Z?)\Z")
_DATE = re.compile(r"(\d{4})(\d\d)(\d\d)\Z")
_DURATION = re.compile(r"([+-]?)P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?\Z")
_NO_PARAMS: Mapping[str, str] = {}


class UnreadableFile(SchedulerError):
    """The file's structure cannot be known; `line` is where that shows (None: at its end)."""

    def __init__(self, detail: str, line: int | None = None) -> None:
        self.detail = detail
        self.line = line
        super().__init__(f"line {line}: {detail}" if line is not None else detail)


class Property(NamedTuple):
    """One content line: NAME;PARAM=value:VALUE, the name and parameter names upper-case.
    (A tuple: a file of 10,000 events has 100,000 of them.)"""

    name: str
    params: Mapping[str, str]
    value: str
    line: int


@dataclass(slots=True, kw_only=True)
class Component:
    """BEGIN:NAME ... END:NAME, with the line of its BEGIN."""

    name: str
    line: int
    properties: list[Property] = field(default_factory=list)
    components: list[Component] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "line 12: ..." for each line left out

    def first(self, name: str) -> Property | None:
        for prop in self.properties:
            if prop.name == name:
                return prop
        return None

    def every(self, name: str) -> list[Property]:
        return [prop for prop in self.properties if prop.name == name]


def _utf8(data: bytes) -> bytes:
    """The file's bytes as UTF-8, without a byte-order mark (a UTF-16 file, recognised by its
    mark, is converted)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError as e:
            raise UnreadableFile(f"starts as UTF-16 text but is not (byte {e.start})") from e
    return data.removeprefix(codecs.BOM_UTF8)


def parse(data: bytes) -> list[Component]:
    """Every VCALENDAR of the file's bytes (an iCalendar stream may hold several), or
    `UnreadableFile`."""
    calendars: list[Component] = []
    stack: list[Component] = []
    for number, line, bad in _unfolded(_utf8(data)):
        if not line.strip(" \t\x00\x1a"):  # blank, NUL padding, a DOS end-of-file mark
            continue
        read = _content_line(line, number)
        if isinstance(read, Property) and read.name in ("BEGIN", "END"):
            _structure(read, stack, calendars)
            continue
        if not stack:
            raise UnreadableFile("text outside BEGIN:VCALENDAR ... END:VCALENDAR" if calendars
                                 else "not an iCalendar file (it does not start with "
                                 "BEGIN:VCALENDAR)", number)
        if bad is not None and isinstance(read, Property):
            # kept, with U+FFFD for what could not be read, to name the event it spoils
            stack[-1].properties.append(read)
            read = f"{read.name} holds bytes that are not UTF-8 ({bad}); save the file as UTF-8"
        if isinstance(read, str):
            if len(stack) == 1:
                raise UnreadableFile(read, number)
            stack[-1].problems.append(f"line {number}: {read}")
        else:
            stack[-1].properties.append(read)
    if stack:
        raise UnreadableFile("the calendar ends before END:VCALENDAR (the file looks cut off)")
    if not calendars:
        raise UnreadableFile("not an iCalendar file (it has no BEGIN:VCALENDAR)")
    return calendars


def _structure(prop: Property, stack: list[Component], calendars: list[Component]) -> None:
    name = prop.value.strip().upper()
    if prop.name == "BEGIN":
        if not stack and name != "VCALENDAR":
            raise UnreadableFile("not an iCalendar file (it does not start with "
                                 "BEGIN:VCALENDAR)", prop.line)
        if stack and name == "VCALENDAR":
            raise UnreadableFile(f"BEGIN:VCALENDAR inside the calendar of line {stack[0].line}",
                                 prop.line)
        if len(stack) >= MAX_DEPTH:
            raise UnreadableFile(f"components nested deeper than {MAX_DEPTH}", prop.line)
        component = Component(name=name, line=prop.line)
        (stack[-1].components if stack else calendars).append(component)
        stack.append(component)
        return
    if not stack:
        raise UnreadableFile(f"END:{name} closes nothing", prop.line)
    if stack[-1].name != name:
        raise UnreadableFile(f"END:{name} where BEGIN:{stack[-1].name} of line "
                             f"{stack[-1].line} is still open", prop.line)
    stack.pop()


def _unfolded(data: bytes) -> Iterator[tuple[int, str, str | None]]:
    """(line number, logical line, its first byte that is not UTF-8): folded lines joined,
    numbered by their first line. Lines are joined as bytes, then decoded, since some writers
    fold inside a UTF-8 character."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    current: list[bytes] = []
    start = 0
    for number, line in enumerate(data.split(b"\n"), 1):
        if line[:1] in (b" ", b"\t") and current:
            current.append(line[1:])
            continue
        if current:
            yield start, *_text(b"".join(current))
        current, start = [line], number
    if current:
        yield start, *_text(b"".join(current))


def _text(line: bytes) -> tuple[str, str | None]:
    try:
        text, bad = line.decode("utf-8"), None
    except UnicodeDecodeError as e:
        text, bad = line.decode("utf-8", "replace"), f"0x{line[e.start]:02X}"
    return text.removeprefix("\ufeff"), bad  # a second file's mark, where files were joined


def _content_line(line: str, number: int) -> Property | str:
    """The line as a `Property`, or why it is not one."""
    colon = line.find(":")
    if colon < 0:
        return "not a content line (no colon; a continued line must start with a space)"
    if '"' in line[:colon]:
        colon = _unquoted_colon(line)
        if colon < 0:
            return "not a content line (a quote is not closed)"
    head, value = line[:colon], line[colon + 1:]
    name, _, rest = head.partition(";")
    if not _NAME.match(name):
        return f"not a content line ({name[:30]!r} is not a property name)"
    params = _params(rest) if rest else _NO_PARAMS
    return Property(name.upper(), params, value, number)


def _unquoted_colon(line: str) -> int:
    quoted = False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            return index
    return -1


def _params(text: str) -> dict[str, str]:
    """NAME=value;NAME="value, with; signs" as a dict, quotes removed; a parameter without
    a value is passed over."""
    parts: list[str] = []
    if '"' not in text:
        parts = text.split(";")
    else:
        quoted, begin = False, 0
        for index, char in enumerate(text):
            if char == '"':
                quoted = not quoted
            elif char == ";" and not quoted:
                parts.append(text[begin:index])
                begin = index + 1
        parts.append(text[begin:])
    params: dict[str, str] = {}
    for part in parts:
        name, equals, value = part.partition("=")
        if equals:
            params[name.strip().upper()] = value.replace('"', "")
    return params


def text(value: str) -> str:
    r"""A TEXT value with its escapes undone: \n and \N a line break, \, \; \\ themselves."""
    if "\\" not in value:
        return value
    return _ESCAPE.sub(lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def moment(value: str) -> date | datetime:
    """A DATE (20190605), or a DATE-TIME: naive when floating, in UTC when it ends in Z.
    `ValueError` when it is neither (or no such day: 20191340)."""
    value = value.strip().upper()
    try:
        found = _DATE_TIME.match(value)
        if found is not None:
            year, month, day, hour, minute, second, utc = found.groups()
            return datetime(int(year), int(month), int(day), int(hour), int(minute),
                            min(int(second), 59),  # a leap second is the second before it
                            tzinfo=UTC if utc else None)
        found = _DATE.match(value)
        if found is not None:
            return date(*(int(part) for part in found.groups()))
    except ValueError:
        pass
    raise ValueError(f"{value[:40]!r} is not a date or a date and time")


def duration(value: str) -> timedelta:
    """A DURATION (PT1H30M, P1D, -PT15M); `ValueError` when it is none."""
    found = _DURATION.match(value.strip().upper())
    if found is None or not any(found.groups()[1:]):
        raise ValueError(f"{value[:40]!r} is not a duration")
    sign, weeks, days, hours, minutes, seconds = found.groups()
    try:
        length = timedelta(weeks=int(weeks or 0), days=int(days or 0), hours=int(hours or 0),
                           minutes=int(minutes or 0), seconds=int(seconds or 0))
    except OverflowError as e:
        raise ValueError(f"{value[:40]!r} is longer than any calendar") from e
    return -length if sign == "-" else length
