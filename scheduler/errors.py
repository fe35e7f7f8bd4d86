"""One exception base for everything a user can act on.

`str(error)` is one line that says what is wrong and where; details are attributes. `cli.py`
catches `SchedulerError` only, prints that line and exits with status 2.
"""

from __future__ import annotations


def reason(error: Exception) -> str:
    """Any error as one line, for a record or a log: ours say what is wrong in their own
    words; anything else is named by its type."""
    if isinstance(error, SchedulerError) and str(error):
        return str(error).splitlines()[0]
    return f"{type(error).__name__}: {error}".splitlines()[0]


class SchedulerError(Exception):
    """Something the user can fix: bad input, bad configuration, a missing call."""


class ConfigError(SchedulerError):
    """config.toml is missing, unreadable or invalid; the message names the file and key."""


class InvalidZone(SchedulerError):
    """A name that is not an IANA time zone; `suggestions` holds the closest real names."""

    def __init__(self, name: str, suggestions: list[str], reason: str = "") -> None:
        self.name = name
        self.suggestions = suggestions
        message = reason or f"unknown time zone {name!r}"
        if suggestions:
            message += f" (did you mean {', '.join(suggestions)}?)"
        super().__init__(message)


class NonexistentLocalTime(SchedulerError):
    """A wall time skipped by a spring-forward change."""


class AmbiguousLocalTime(SchedulerError):
    """A wall time that happens twice because of a fall-back change."""


class InvalidRecurrence(SchedulerError):
    """An RRULE that does not parse, is not supported, or yields no occurrence."""


class InvalidValue(SchedulerError):
    """A field with a value out of range or of the wrong form; the message names the field."""


class NotFound(SchedulerError):
    """No call with that slug, or no occurrence on that date."""


class Conflict(SchedulerError):
    """The change would break something already stored (a duplicate slug, an orphaned move)."""


class DatabaseError(SchedulerError):
    """The database cannot be reached, or its schema is newer than this program."""
