"""SQLModel tables. Instants are stored in UTC (`UTCDateTime`); a call's anchor is a wall time
plus its IANA zone, because that, not an instant, is what the organizer decided.

The states a row can be in are declared once, here, as `StrEnum`s: a member is its text (it
compares equal to it, and is stored, printed and written to JSON as it), so the columns stay
plain text and the code names the states instead of spelling them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Index, Integer, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class SubscriberStatus(StrEnum):
    """`Subscriber.status`, in the order listings name them."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"


class DeliveryStatus(StrEnum):
    """`Delivery.status`, in the order listings name them; `outbox` moves a delivery
    between them."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    MISSED = "missed"
    CANCELLED = "cancelled"


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored as UTC; SQLite's naive values come back as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored as an instant")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Call(SQLModel, table=True):
    __tablename__ = "call"

    id: int | None = Field(default=None, primary_key=True)
    # The iCalendar UID: kept across renames, rebuilds and hosts. Imported calls keep theirs.
    uid: str = Field(default_factory=lambda: f"{uuid.uuid4()}@coalition-calls",
                     unique=True, max_length=255)
    slug: str = Field(unique=True, index=True, max_length=100)
    title: str = Field(max_length=300)
    description: str = ""
    timezone: str = Field(max_length=64)
    # Wall time of the first occurrence in `timezone`, "YYYY-MM-DDTHH:MM:SS".
    start_local: str = Field(max_length=19)
    duration_minutes: int
    rrule: str | None = None
    register_url: str | None = None
    join_url: str | None = None
    forum_topic: int | None = None
    language: str = Field(max_length=8)
    # None: follow [calls] default_zones in config.toml.
    zones: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    sequence: int = 0
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class OccurrenceChange(SQLModel, table=True):
    """One occurrence cancelled or moved, keyed by its original start."""

    __tablename__ = "occurrence_change"
    __table_args__ = (UniqueConstraint("call_id", "original_start"),)

    id: int | None = Field(default=None, primary_key=True)
    call_id: int = Field(
        sa_column=Column(Integer, ForeignKey("call.id", ondelete="CASCADE"), nullable=False,
                         index=True)
    )
    original_start: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    cancelled: bool = False
    new_start: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    new_duration_minutes: int | None = None
    changed_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class OccurrenceAgenda(SQLModel, table=True):
    """One occurrence's own agenda (Markdown), keyed by its original start: a move keeps it,
    a cancellation keeps it for a restore. A table of its own, not a column of
    `OccurrenceChange`: an occurrence with only an agenda is neither moved nor cancelled."""

    __tablename__ = "occurrence_agenda"
    __table_args__ = (UniqueConstraint("call_id", "original_start"),)

    id: int | None = Field(default=None, primary_key=True)
    call_id: int = Field(
        sa_column=Column(Integer, ForeignKey("call.id", ondelete="CASCADE"), nullable=False,
                         index=True)
    )
    original_start: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    text: str
    changed_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class Invitee(SQLModel, table=True):
    """Someone sent a calendar invitation for a call; they get its updates and cancellations."""

    __tablename__ = "invitee"
    __table_args__ = (UniqueConstraint("call_id", "email"),)

    id: int | None = Field(default=None, primary_key=True)
    call_id: int = Field(
        sa_column=Column(Integer, ForeignKey("call.id", ondelete="CASCADE"), nullable=False,
                         index=True)
    )
    email: str = Field(max_length=320)
    sequence: int  # the call's SEQUENCE in the last message they were sent
    invited_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class Subscriber(SQLModel, table=True):
    """Someone who gets reminders by email, in their language and time zone."""

    __tablename__ = "subscriber"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True, index=True)  # lower case
    name: str = ""
    language: str = Field(max_length=8)
    timezone: str = Field(max_length=64)
    status: str = Field(max_length=16)  # a SubscriberStatus
    # The calls they follow by slug; None: every call.
    calls: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # The reminders they do not want, by call slug ("*": every call without its own entry);
    # None: every reminder, as before they could choose (`scheduler.store.preferences`).
    reminders_off: dict[str, list[str]] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True))
    token: str = Field(max_length=64, unique=True)  # secret in their unsubscribe link
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    confirmed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    unsubscribed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


class Delivery(SQLModel, table=True):
    """One message owed to one recipient: the outbox. The unique key makes it happen once."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("call_id", "occurrence_id", "rule", "channel", "recipient",
                         name="uq_delivery_key"),  # also the index for a call's deliveries
        Index("ix_delivery_status_due_at", "status", "due_at"),  # what is due, what is open
    )

    id: int | None = Field(default=None, primary_key=True)
    call_id: int = Field(
        sa_column=Column(Integer, ForeignKey("call.id", ondelete="CASCADE"), nullable=False)
    )
    occurrence_id: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    rule: str = Field(max_length=64)
    channel: str = Field(max_length=16)
    recipient: str = Field(max_length=320)  # an email address, or "topic" for the forum
    due_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    status: str = Field(max_length=16)  # a DeliveryStatus
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    lease_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    leased_by: str | None = Field(default=None, max_length=128)
    last_error: str | None = None
    message_id: str | None = Field(default=None, max_length=255)
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class Followup(SQLModel, table=True):
    """After an occurrence: its recording and notes, sent once to everyone it was announced to."""

    __tablename__ = "followup"
    __table_args__ = (UniqueConstraint("call_id", "occurrence_id"),)

    id: int | None = Field(default=None, primary_key=True)
    call_id: int = Field(
        sa_column=Column(Integer, ForeignKey("call.id", ondelete="CASCADE"), nullable=False)
    )
    occurrence_id: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    recording_url: str | None = None
    notes: str = ""
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class TransportOutage(SQLModel, table=True):
    """A channel's transport that could not be reached (refused, timed out, cut off): the
    channel's deliveries wait for it, on one schedule, not each on its own timer. Until
    `retry_at` none of them is claimed; the first message it takes after that ends the outage,
    and every delivery that waited goes at once (`outbox.transport_failed`,
    `outbox.transport_worked`). A table, not a daemon's memory: replicas and `run-once` from
    cron share it, and a restart keeps it."""

    __tablename__ = "transport_outage"

    channel: str = Field(primary_key=True, max_length=16)  # EMAIL or FORUM
    transport: str = Field(max_length=32)  # the one config named then: another is not waited for
    failures: int  # attempts in a row that could not reach it: the backoff's exponent
    since: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    retry_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    last_error: str = ""


class RsvpAnswer(StrEnum):
    """`Rsvp.answer`: what a member said about one occurrence."""

    YES = "yes"  # "I'll be there"
    NO = "no"  # "Can't make it"


class Rsvp(SQLModel, table=True):
    """A member's answer for one occurrence, keyed by its original start: a move keeps it, a
    cancellation keeps it (listings mark it), a restore finds it again
    (`scheduler.store.rsvp`)."""

    __tablename__ = "rsvp"
    __table_args__ = (UniqueConstraint("subscriber_id", "call_id", "occurrence_id"),)

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(
        sa_column=Column(Integer, ForeignKey("subscriber.id", ondelete="CASCADE"),
                         nullable=False)
    )
    call_id: int = Field(
        sa_column=Column(Integer, ForeignKey("call.id", ondelete="CASCADE"), nullable=False,
                         index=True)
    )
    occurrence_id: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    answer: str = Field(max_length=8)  # an RsvpAnswer
    answered_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
