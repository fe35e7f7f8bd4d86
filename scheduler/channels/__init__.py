"""The ways a message leaves: one protocol, one result type, and the one place config picks them.

A channel is what planning promises a member (`email`, `forum`); a transport is how that
channel's messages leave. Each transport is one module here, a class that implements
`Transport` for one channel, named in `TRANSPORTS`:

    email   maildir.Maildir       files in a local Maildir (the embedded default)
            smtp.Smtp             an SMTP server (aiosmtplib)
    forum   forum_files.ForumFiles  Markdown files, one per post (the embedded default)
            discourse.Discourse   Discourse's API (httpx)

`[email] transport` and `[forum] transport` in config.toml name one of each; `open_transport`
is what the sending pass, the members' pages, invitations and `coalition doctor` all call.
A new transport (Matrix, a second SMTP sender) is a module with a class that implements
`Transport`, and its line in `TRANSPORTS`.

Email items are `mail.Outgoing` (bytes ready for the wire, built by `mail.Prototype`); forum
items are `Post`. A transport says, per item, whether it went (`Result`), handing each result
to `on_result` as soon as it is known; whatever one item raises inside a transport ends as that
item's failure, never the batch's. Nothing here retries: the caller decides.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from scheduler.core.plan import EMAIL as EMAIL
from scheduler.core.plan import FORUM as FORUM

if TYPE_CHECKING:
    from scheduler.channels.mail import Outgoing
    from scheduler.config import Settings

TRANSPORTS: dict[str, dict[str, str]] = {
    EMAIL: {"maildir": "scheduler.channels.maildir:Maildir",
            "smtp": "scheduler.channels.smtp:Smtp"},
    FORUM: {"files": "scheduler.channels.forum_files:ForumFiles",
            "discourse": "scheduler.channels.discourse:Discourse"},
}
"""Per channel, each transport's name in config.toml and where its class lives (imported only
when it is used: `coalition check` never loads an SMTP or HTTP client)."""


@dataclass(frozen=True, kw_only=True)
class Result:
    """What became of one item. `key` says which: an email's Message-ID, a post's key."""

    key: str
    recipient: str = ""  # an email's envelope recipient
    receipt: str | None = None  # what the delivery's record keeps: Message-ID, post, marker
    error: str | None = None
    permanent: bool = False
    unusable: bool = False  # the address itself cannot be used (refused, or needs SMTPUTF8)
    unreachable: bool = False  # the far side is down (refused, timed out, cut, "not serving"),
    # not this item's fault: every item waits for the transport (`scheduler.store.outbox`)
    retry_after: timedelta | None = None  # the far side asked us to wait (a rate limit)
    topic: int | None = None  # the forum topic the post is in, when the transport knows it

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, kw_only=True)
class Post:
    """One forum post. Its text ends, on every transport, with `marker(key)`."""

    key: str  # the delivery's key: the same post always has the same key
    text: str  # Markdown
    title: str  # the call's: a new topic's title
    topic: int | None  # the call's topic, or None for a new one
    name: str  # a file name for it, unique per delivery: "slug/20181113T1500Z-tomorrow.md"
    retry: bool  # an earlier attempt may have made it: look before posting again


@dataclass(frozen=True, kw_only=True)
class Health:
    """What `coalition doctor` says of a transport."""

    ok: bool
    detail: str


OnResult = Callable[[Result], None]
Item = TypeVar("Item", contravariant=True)


class Transport(Protocol[Item]):
    channel: str  # EMAIL or FORUM: which items it takes

    def send(self, items: Sequence[Item], on_result: OnResult | None = None) -> list[Result]:
        """Each item once, in order where the transport has one; a result per item."""
        ...

    def check(self) -> Health:
        """Can it send now? (a folder writable, a server reachable, a key accepted)"""
        ...

    def close(self) -> None:
        ...


def marker(key: str) -> str:
    """The hidden line that ends a post: a post already made is found again by it."""
    return f"<!-- coalition-delivery {key} -->"


class Results(list[Result]):
    """The results so far; each one is also handed to `on_result` as soon as it is known, so
    the caller can record it while the next items go (a crash then repeats a few messages,
    not a batch), and stop the sending by raising."""

    def __init__(self, on_result: OnResult | None) -> None:
        super().__init__()
        self.on_result = on_result

    def append(self, result: Result) -> None:
        super().append(result)
        if self.on_result is not None:
            self.on_result(result)


def unwritable(folder: Path) -> str | None:
    """Why a transport cannot write into `folder` (made when missing), or None."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"cannot create {folder}: {e.strerror}"
    return None if os.access(folder, os.W_OK) else f"{folder} is not writable"


def transport_names(channel: str) -> tuple[str, ...]:
    return tuple(TRANSPORTS[channel])


def _chosen(settings: Settings, channel: str) -> str:
    return str(settings.email.transport if channel == EMAIL else settings.forum.transport)


def open_transport(settings: Settings, channel: str) -> Transport[Any]:
    """The transport config.toml names for `channel`, ready to send."""
    module, _, name = TRANSPORTS[channel][_chosen(settings, channel)].partition(":")
    kind = getattr(importlib.import_module(module), name)
    return cast("Transport[Any]", kind.from_settings(settings))


def email(settings: Settings) -> Transport[Outgoing]:
    return cast("Transport[Outgoing]", open_transport(settings, EMAIL))


def forum(settings: Settings) -> Transport[Post]:
    return cast("Transport[Post]", open_transport(settings, FORUM))
