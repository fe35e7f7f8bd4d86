"""Messages from Jinja templates: a sandboxed environment, the context a template sees, checks.

Templates live in `templates/` (and, first, in the organizers' own folder from config.toml):

    forum/<name>.<lang>.md         a Discourse post (Markdown)
    email/<name>.<lang>.txt        an email: {% block subject %} and {% block body %} (plain text)
    email/<name>.<lang>.html       the same email as HTML (autoescaped)
    _relative.<lang>.txt           the words for "tomorrow", "later today", "in 20 minutes"

They run in Jinja's `SandboxedEnvironment` with `StrictUndefined`: a misspelled variable is an
error, not an empty string, and `{{ ''.__class__ }}` is refused. A template sees only plain
strings, numbers, lists and dicts (see `message_context`), never database objects.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    TemplateSyntaxError,
    select_autoescape,
)
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from scheduler.core.recurrence import Occurrence, Status
from scheduler.core.timetable import (
    discourse_date,
    full_date,
    google_calendar_url,
    local_time,
    time_table,
    timing,
    zone_label,
)
from scheduler.core.zones import get_zone
from scheduler.errors import InvalidValue, SchedulerError

TEMPLATES = ("announcement", "tomorrow", "today", "starts-soon", "followup", "changed")
EMAIL_ONLY = ("invitation", "cancellation")  # the texts around a calendar invitation
ACCOUNT = ("confirm",)  # emails about a subscription, not about a call (their own context)
CHANNELS = ("forum", "email")


def channels_of(name: str) -> tuple[str, ...]:
    return ("email",) if name in EMAIL_ONLY else CHANNELS


class RenderError(SchedulerError):
    """A template is missing, does not parse, or fails while rendering; says which and where."""


@dataclass(frozen=True, kw_only=True)
class Message:
    """What one channel sends. Forum posts have only `text` (Markdown)."""

    subject: str | None
    text: str
    html: str | None


@dataclass(frozen=True, kw_only=True)
class CallFacts:
    """What a message says about a call: plain values, so templates never touch the database."""

    slug: str
    title: str
    description: str
    register_url: str | None
    join_url: str | None
    zones: tuple[str, ...]
    feed_url: str


def message_context(
    call: CallFacts, occurrence: Occurrence, *, lang: str, reader: ZoneInfo, now: datetime,
    labels: Mapping[str, str] | None = None, recording_url: str | None = None,
    notes: str | None = None,
) -> dict[str, Any]:
    """Everything a template may use, for one reader (their zone first) at the moment `now`."""
    anchor = occurrence.zone
    zones = list(dict.fromkeys([reader.key, *call.zones]))
    rows = time_table(occurrence.start, zones, anchor=anchor, lang=lang, labels=labels)
    calendar_details = "\n".join(u for u in (call.register_url, call.join_url) if u)

    def at(zone: ZoneInfo, moment: datetime) -> dict[str, str]:
        local = moment.astimezone(zone)
        return {"zone": zone.key, "label": zone_label(zone.key, lang, labels),
                "time": local_time(local, lang), "date": full_date(local, lang),
                "iso": local.isoformat()}

    return {
        "lang": lang,
        "call": {"slug": call.slug, "title": call.title, "description": call.description},
        "occurrence": {
            "id": occurrence.id.isoformat(),
            "status": occurrence.status.value,
            "moved": occurrence.status is Status.MOVED,
            "cancelled": occurrence.status is Status.CANCELLED,
            "anchor": at(anchor, occurrence.start),
            "reader": at(reader, occurrence.start),
            "original": at(anchor, occurrence.id),
            "minutes": int((occurrence.end - occurrence.start) / timedelta(minutes=1)),
        },
        "zones": [row.as_dict() for row in rows],
        "timing": timing(occurrence.start, now, reader, lang).as_dict(),
        "links": {
            "register": call.register_url,
            "join": call.join_url,
            "google": google_calendar_url(title=call.title, start=occurrence.start,
                                          end=occurrence.end, details=calendar_details,
                                          location=call.join_url or ""),
            "ics": call.feed_url,
            "webcal": "webcal://" + call.feed_url.split("://", 1)[1],
        },
        "discourse_date": discourse_date(occurrence.start, zones),
        "recording_url": recording_url,
        "notes": notes,
    }


class Templates:
    """The template folders, searched in order, in a sandbox."""

    def __init__(self, folders: Sequence[Path]) -> None:
        self.folders = list(folders)
        self.env = SandboxedEnvironment(
            loader=ChoiceLoader([FileSystemLoader(f) for f in self.folders]),
            undefined=StrictUndefined,
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        )

    def render(self, name: str, channel: str, lang: str, context: Mapping[str, Any]) -> Message:
        if name not in TEMPLATES + EMAIL_ONLY:
            raise InvalidValue(f"unknown template {name!r}; choose one of "
                               f"{', '.join(TEMPLATES + EMAIL_ONLY)}")
        if channel not in CHANNELS:
            raise InvalidValue(f"unknown channel {channel!r}; choose one of {', '.join(CHANNELS)}")
        if channel not in channels_of(name):
            raise InvalidValue(f"template {name!r} is for email only")
        context = {**context, "relative": self._run(f"_relative.{lang}.txt", context).strip()}
        if channel == "forum":
            return Message(subject=None, text=self._run(f"forum/{name}.{lang}.md", context),
                           html=None)
        return self.email(name, lang, context)

    def email(self, name: str, lang: str, context: Mapping[str, Any]) -> Message:
        """email/<name>.<lang>.txt (subject and body blocks) and .html."""
        context = {**context, "lang": lang}
        subject = self._run(f"email/{name}.{lang}.txt", context, block="subject").strip()
        if "\n" in subject or "\r" in subject:  # a header must never carry a line break
            path = self._load(f"email/{name}.{lang}.txt").filename
            raise RenderError(f"{path}: the subject has a line break")
        return Message(subject=subject,
                       text=self._run(f"email/{name}.{lang}.txt", context, block="body"),
                       html=self._run(f"email/{name}.{lang}.html", context))

    def _load(self, path: str) -> Template:
        try:
            return self.env.get_template(path)
        except TemplateNotFound as e:
            where = " or ".join(str(f) for f in self.folders)
            raise RenderError(f"no template {path} in {where}") from e
        except TemplateSyntaxError as e:
            raise RenderError(f"{e.filename or path} line {e.lineno}: {e.message}") from e

    def _run(self, path: str, context: Mapping[str, Any], block: str | None = None) -> str:
        template = self._load(path)
        try:
            if block is None:
                return template.render(context)
            if block not in template.blocks:
                raise RenderError(f"{template.filename}: has no {{% block {block} %}}")
            try:
                return "".join(template.blocks[block](template.new_context(dict(context))))
            except Exception:
                self.env.handle_exception()  # re-raises with template file names and lines
        except SecurityError as e:
            where = template_location(e, template)
            raise RenderError(f"{where}: refused by the sandbox: {e}") from e
        except UndefinedError as e:
            raise RenderError(f"{template_location(e, template)}: {e}") from e
        except TemplateError as e:
            raise RenderError(f"{template_location(e, template)}: {e}") from e
        except (TypeError, ValueError, ArithmeticError, LookupError) as e:
            raise RenderError(f"{template_location(e, template)}: {type(e).__name__}: {e}") from e

    def check(self, languages: Sequence[str],
              sample: Callable[[str], Mapping[str, Any]]) -> list[str]:
        """Render every template for every channel and language; one line per problem."""
        problems = []
        for lang in languages:
            context = sample(lang)
            for name in TEMPLATES + EMAIL_ONLY:
                for channel in channels_of(name):
                    try:
                        self.render(name, channel, lang, context)
                    except SchedulerError as e:
                        problems.append(str(e))
            for name in ACCOUNT:
                try:
                    self.email(name, lang, ACCOUNT_SAMPLE)
                except SchedulerError as e:
                    problems.append(str(e))
        return list(dict.fromkeys(problems))


def template_location(error: BaseException, template: Template) -> str:
    """The template file and line an error happened at (Jinja puts template frames in the
    traceback with their own file names and line numbers)."""
    frames = traceback.extract_tb(error.__traceback__)
    names = {template.filename}
    for frame in reversed(frames):
        if frame.filename in names or frame.filename.endswith((".md", ".txt", ".html")):
            return f"{frame.filename} line {frame.lineno}"
    return template.filename or template.name or "template"


ACCOUNT_SAMPLE = {"name": "Amina", "email": "amina@example.org", "hours": 48,
                  "link": "https://calls.example.org/confirm/sample", "calls": ["Sample call"]}


def sample_context(lang: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The November 2018 call, thirty minutes before it starts: what `check` renders with."""
    new_york = get_zone("America/New_York")
    start = datetime(2018, 11, 13, 15, tzinfo=UTC)
    occurrence = Occurrence(id=start, start=start, end=start + timedelta(hours=1),
                            zone=new_york, status=Status.CONFIRMED)
    call = CallFacts(
        slug="sample-call", title="Sample coalition call", description="Agenda: introductions.",
        register_url="https://example.org/register", join_url="https://example.org/join",
        zones=("America/New_York", "Europe/Brussels", "Africa/Cairo", "Africa/Addis_Ababa",
               "Asia/Jakarta"),
        feed_url="https://calls.example.org/calendars/sample-call.ics",
    )
    context = message_context(call, occurrence, lang=lang, reader=new_york,
                              now=start - timedelta(minutes=30), labels=labels,
                              recording_url="https://example.org/recording",
                              notes="We agreed to meet again next month.")
    context["invite"] = {"again": True, "one_occurrence": False, "change": "series"}
    return context
