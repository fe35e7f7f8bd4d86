"""What each member chooses: their name, language and zone, which calls they follow, and which
reminders of each call they get.

Which reminders are stored as those they do *not* want (`Subscriber.reminders_off`), by call
slug, or `EVERY_CALL` for every call without a choice of its own: a member who never chose
(everyone from before they could) has None there, and gets every reminder, as before; a
reminder an organizer adds to config.toml later reaches everyone until they turn it off.

Nothing here writes a delivery: the next planning pass reads the choices
(`planning._plan_inputs`), writes what they owe and cancels what is queued but no longer owed.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session

from scheduler.config import Settings
from scheduler.core.plan import EMAIL, EVERY_CALL
from scheduler.errors import InvalidValue
from scheduler.store import subscribers
from scheduler.store.calls import list_calls
from scheduler.store.models import Subscriber

FOLLOWUP = "followup"  # `scheduler.delivery.followups.RULE.name`: the recording and notes


def choosable(settings: Settings) -> tuple[str, ...]:
    """The reminders a member can turn on or off, in the order they come: config's
    [[reminders]] that go by email, then the follow-up. (Change notices are not a choice: they
    correct something the member was told.)"""
    return (*(r.name for r in settings.reminders if EMAIL in r.channels), FOLLOWUP)


def off_table(subscriber: Subscriber) -> tuple[tuple[str, frozenset[str]], ...]:
    """`Recipient.off` for the planner."""
    return tuple(sorted((slug, frozenset(names))
                        for slug, names in (subscriber.reminders_off or {}).items()))


gets = subscribers.wants  # whether they want the reminder `rule` of the call `slug`


def reminder_names(text: str, settings: Settings, *, field: str) -> list[str]:
    """'announcement starts-soon' (spaces, commas or semicolons between) as the names of
    reminders a member can choose; `InvalidValue` naming `field` for one we do not have."""
    names = [n for n in re.split(r"[\s,;]+", text.strip()) if n]
    known = choosable(settings)
    for name in names:
        if name not in known:
            raise InvalidValue(f"{field}: no reminder {name!r}; choose from {', '.join(known)}")
    return list(dict.fromkeys(names))


def call_slugs(text: str, known: Iterable[str], *, field: str) -> list[str] | None:
    """'monthly-call weekly' as the slugs of calls we have; empty or '*': every call (None)."""
    slugs = [s for s in re.split(r"[\s,;]+", text.strip()) if s]
    if not slugs or slugs == [EVERY_CALL]:
        return None
    have = set(known)
    for slug in slugs:
        if slug not in have:
            raise InvalidValue(f"{field}: no call {slug!r}")
    return list(dict.fromkeys(slugs))


def off_from_wanted(settings: Settings, wanted: Mapping[str, Sequence[str]]) -> \
        dict[str, list[str]] | None:
    """The stored form of what someone wants, by call slug (or EVERY_CALL): the choosable
    reminders they left out; None when they want every one of every call."""
    known = choosable(settings)
    off = {slug: [n for n in known if n not in set(names)] for slug, names in wanted.items()}
    off = {slug: names for slug, names in off.items() if names}
    return off or None


@dataclass(frozen=True, kw_only=True)
class Choices:
    """Everything a member can change about what they get, checked (`checked`)."""

    name: str
    language: str
    timezone: str
    calls: tuple[str, ...] | None  # None: every call, including new ones
    reminders: Mapping[str, tuple[str, ...]]  # by call slug: the reminders wanted


def apply(session: Session, settings: Settings, subscriber: Subscriber, choices: Choices, *,
          now: datetime) -> Subscriber:
    """Store `choices`; the next pass plans with them. Reminders of calls not in `choices`
    keep what was stored (EVERY_CALL among them)."""
    off = dict(subscriber.reminders_off or {})
    for slug, wanted in choices.reminders.items():
        off.pop(slug, None)
        left_out = off_from_wanted(settings, {slug: wanted})
        if left_out:
            off.update(left_out)
    subscriber.name, subscriber.language = choices.name, choices.language
    subscriber.timezone = choices.timezone
    subscriber.calls = list(choices.calls) if choices.calls is not None else None
    subscriber.reminders_off = off or None
    session.add(subscriber)
    session.commit()
    session.refresh(subscriber)
    return subscriber


def rotate(session: Session, subscriber: Subscriber) -> str:
    """A new secret token for `subscriber`: their old manage, answer and unsubscribe links stop
    working; the next email carries the new ones."""
    subscriber.token = secrets.token_urlsafe(24)
    session.add(subscriber)
    session.commit()
    return subscriber.token


def show(session: Session, settings: Settings, email: str) -> dict[str, Any]:
    """One member and their choices: the calls they get, and for each the reminders."""
    subscriber = subscribers.find(session, email)
    slugs = [c.slug for c in list_calls(session)]
    followed = [s for s in slugs if subscriber.calls is None or s in subscriber.calls]
    return {
        **subscribers.as_dict(subscriber),
        "reminders": {slug: [n for n in choosable(settings) if gets(subscriber, slug, n)]
                      for slug in followed},
        "reminders_off": subscriber.reminders_off or {},
    }


def show_lines(shown: Mapping[str, Any]) -> list[str]:
    """`show` for a person at a terminal."""
    calls = shown["calls"]
    lines = [f"{shown['email']} ({shown['status']})",
             f"name: {shown['name'] or '-'}",
             f"language: {shown['language']}",
             f"zone: {shown['timezone']}",
             f"calls: {', '.join(calls) if calls is not None else 'every call'}"]
    for slug, names in shown["reminders"].items():
        lines.append(f"  {slug}: {', '.join(names) or 'no reminders'}")
    return lines
