"""Which messages each occurrence owes whom, and when. Pure: `now` is a parameter.

occurrences x reminder rules x recipients -> planned deliveries, each with a due time and an
expiry. A rule's offset in days counts calendar days in the call's own zone (a week before
10:00 New York is 10:00 New York, whatever DST did in between); hours and minutes are
absolute. A delivery expires when the call starts, or when the next rule for the same
occurrence and channel falls due, whichever is first: after a day of downtime "starts in 20
minutes" goes out, not yesterday's "tomorrow", which is recorded as missed.

Nobody is owed a message that was no longer valid when they subscribed (or, for the forum,
when the call was added): a new subscriber gets only what is still ahead of them, including a
reminder whose window is still open ("starts in 29 minutes" to someone who subscribed 29
minutes before the start), never a stale one, and no "missed" records either.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from scheduler.core.recurrence import Occurrence, Status
from scheduler.core.zones import resolve_recurring, to_utc

FORUM = "forum"
EMAIL = "email"
TOPIC = "topic"  # the forum's one "recipient": the call's topic


class RuleKind(StrEnum):
    """What a rule is for: a reminder ahead of every occurrence (config's [[reminders]]), the
    notice of a late change (`notices`), or the follow-up after a call (`followups`)."""

    REMINDER = "reminder"
    NOTICE = "notice"
    FOLLOWUP = "followup"


@dataclass(frozen=True, kw_only=True)
class Rule:
    name: str
    days: int = 0
    delta: timedelta = timedelta(0)
    channels: tuple[str, ...]
    template: str
    kind: RuleKind = RuleKind.REMINDER

    def due(self, occurrence: Occurrence) -> datetime:
        if self.days:
            wall = occurrence.local_start.replace(tzinfo=None) - timedelta(days=self.days)
            return to_utc(resolve_recurring(wall, occurrence.zone))
        return occurrence.start - self.delta


def parse_offset(text: str) -> tuple[int, timedelta]:
    """'7d' -> 7 calendar days; '30m', '2h' -> an exact time before the start."""
    match = re.fullmatch(r"\s*(\d+)\s*([dhm])\s*", text)
    if not match:
        raise ValueError(f"{text!r} is not an offset like '7d', '2h' or '30m'")
    number, unit = int(match[1]), match[2]
    if number <= 0:
        raise ValueError(f"{text!r}: the offset must be positive")
    if unit == "d":
        return number, timedelta(0)
    return 0, timedelta(hours=number) if unit == "h" else timedelta(minutes=number)


EVERY_CALL = "*"  # in `Recipient.off`: the reminders off for every call without its own choice


@dataclass(frozen=True, kw_only=True)
class Recipient:
    """A member, with their choices: which calls, which reminders of each (`off`: by call
    slug or EVERY_CALL, the names of the rules they do not want; a call's own entry wins over
    EVERY_CALL), and the occurrences they said they cannot make (`declined`: call id,
    occurrence id), which owe them no reminder meant for those who come (`for_those_coming`)."""

    address: str
    since: datetime  # when they subscribed (confirmed)
    calls: frozenset[str] | None = None  # slugs followed; None: all
    off: tuple[tuple[str, frozenset[str]], ...] = ()
    declined: frozenset[tuple[int, datetime]] = frozenset()

    def follows(self, slug: str) -> bool:
        return self.calls is None or slug in self.calls

    def wants(self, slug: str, rule: str) -> bool:
        """Whether they get the reminder `rule` of the call `slug` (if they follow it)."""
        return wanted(dict(self.off), slug, rule)

    def owed(self, call: CallOccurrences, occurrence: Occurrence, rule: Rule) -> bool:
        if not self.wants(call.slug, rule.name):
            return False
        return not (for_those_coming(rule) and (call.call_id, occurrence.id) in self.declined)


def wanted(off: Mapping[str, Collection[str]], slug: str, rule: str) -> bool:
    """Whether someone who turned `off` these reminders (by call slug, or EVERY_CALL) gets the
    reminder `rule` of the call `slug`: the call's own choice, else the one for every call,
    else every reminder."""
    return rule not in off.get(slug, off.get(EVERY_CALL, ()))


def for_those_coming(rule: Rule) -> bool:
    """A reminder hours or minutes ahead ("later today", "starts soon") is for those who will
    join: someone who said they cannot make it does not get it. Reminders days ahead (the
    announcement, "tomorrow") still go: they carry the news of the call."""
    return rule.kind is RuleKind.REMINDER and not rule.days


@dataclass(frozen=True, kw_only=True)
class CallOccurrences:
    call_id: int
    slug: str
    created: datetime
    occurrences: Sequence[Occurrence]


class Planned(NamedTuple):
    """One delivery owed. A named tuple: a large pass makes hundreds of thousands."""

    call_id: int
    occurrence_id: datetime
    rule: str
    channel: str
    recipient: str
    due: datetime
    expires: datetime
    # False when it was no longer valid when the recipient subscribed: never created for them,
    # but not a reason to cancel one that exists.
    owed: bool = True

    @property
    def key(self) -> tuple[int, datetime, str, str, str]:
        return (self.call_id, self.occurrence_id, self.rule, self.channel, self.recipient)


Step = tuple[int, datetime, str]  # (call id, occurrence id, rule name): one message to many


def plan(calls: Iterable[CallOccurrences], rules: Sequence[Rule],
         recipients: Sequence[Recipient],
         steps: Container[Step] | None = None) -> list[Planned]:
    """Every delivery the given occurrences owe (see `Planned.owed`), or, given `steps`, only
    those of these steps. Cancelled occurrences owe nothing."""
    planned = []
    channels = sorted({c for rule in rules for c in rule.channels})
    for call in calls:
        followers = [r for r in recipients if r.follows(call.slug)]
        for occurrence in call.occurrences:
            if occurrence.status is Status.CANCELLED:
                continue
            if steps is not None and not any((call.call_id, occurrence.id, rule.name) in steps
                                             for rule in rules):
                continue
            for channel in channels:
                ordered = sorted(((rule.due(occurrence), rule) for rule in rules
                                  if channel in rule.channels), key=lambda step: step[0])
                for index, (due, rule) in enumerate(ordered):
                    if steps is not None and (call.call_id, occurrence.id, rule.name) not in steps:
                        continue
                    following = [d for d, _ in ordered[index + 1:] if d > due]
                    expires = min([occurrence.start, *following])
                    if expires <= due:
                        continue
                    targets = ([(TOPIC, call.created)] if channel == FORUM
                               else [(r.address, r.since) for r in followers
                                     if not (r.off or r.declined)  # most: no choice made
                                     or r.owed(call, occurrence, rule)])
                    planned += [Planned(call.call_id, occurrence.id, rule.name, channel, address,
                                        due, expires, expires > since)
                                for address, since in targets]
    return planned
