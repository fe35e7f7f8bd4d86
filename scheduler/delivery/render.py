"""Messages from Jinja templates: a sandboxed environment, the context a template sees, checks.

Templates live in `templates/` (and, first, in the organizers' own folder from config.toml),
one for every language; their words are translated by the catalogs in `locale/`
(`scheduler.delivery.catalogs`):

    forum/<name>.md         a Discourse post (Markdown)
    email/<name>.txt        an email: {% block subject %} and {% block body %} (plain text)
    email/<name>.html       the same email as HTML (autoescaped)
    _relative.txt           the words for "tomorrow", "later today", "in 20 minutes"

A file named for one language (`email/announcement.fr.txt`) is used for that language instead
of the shared one, in whichever folder it is: an organizer can reword one message in one
language, and include or extend the shared templates from it (`OwnLanguageFirst`).

They run in Jinja's sandbox with `StrictUndefined`: a misspelled variable is an error, not an
empty string, and `{{ ''.__class__ }}` is refused. A render has a budget of work and size
(`scheduler.delivery.sandbox`): a template that loops, recurses or grows without end fails with
its file and line, like any other broken template. A template sees only plain strings,
numbers, lists and dicts (see `message_context`), never database objects. A call's description
and a follow-up's notes are Markdown: `{{ notes|markdown }}` is sanitised HTML in an HTML
template and the tidied source in text.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    StrictUndefined,
    Template,
    TemplateNotFound,
    TemplateSyntaxError,
    select_autoescape,
)
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.loaders import split_template_path
from jinja2.nodes import EvalContext
from jinja2.utils import pass_eval_context
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markupsafe import Markup

from scheduler import resources
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
from scheduler.delivery import translate
from scheduler.delivery.budget import BudgetExceeded
from scheduler.delivery.catalogs import Catalogs, direction
from scheduler.delivery.sandbox import BoundedSandbox, BoundedTemplate, TemplateFolder
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
    repeats: str | None = None  # "weekly" or "daily" (see `repeats`); None: monthly or less often


def repeats(rrule: str | None) -> str | None:
    """"weekly" or "daily" for a call that meets more often than monthly (the messages then
    say "the weekly call", not "the November call"); None for a monthly, yearly or one-off
    call."""
    rule = (rrule or "").upper()
    found = re.search(r"(?:^|;)FREQ=(DAILY|WEEKLY)(?:;|$)", rule)
    interval = re.search(r"(?:^|;)INTERVAL=(\d+)(?:;|$)", rule)
    if found is None or (interval is not None and int(interval.group(1)) != 1):
        return None  # every other week is not "the weekly call": the month says which
    return found.group(1).lower()


@dataclass(frozen=True, kw_only=True)
class Distance:
    """How far off a call is, as a person says it: `unit` is "started" (it has begun),
    "minute" ("in a minute"), "minutes" (`count` of them), "hour" ("in an hour"),
    "hour-and-a-half", or "hours" (`count` of them)."""

    unit: str
    count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "count": self.count, "started": self.unit == "started"}


def _nearest(value: float, step: int = 1) -> int:
    """`value` to the nearest multiple of `step`, halves up (as a person rounds)."""
    return int(value / step + 0.5) * step


def distance(start: datetime, now: datetime) -> Distance:
    """The real distance from `now` to `start`, rounded as a person would say it: under 90
    seconds "a minute"; the nearest minute under 20 minutes, the nearest 5 minutes under an
    hour; then the nearest half-hour up to two hours, and the nearest hour beyond."""
    seconds = (start - now).total_seconds()
    if seconds < 0:
        return Distance(unit="started")
    if seconds < 90:
        return Distance(unit="minute")
    minutes = seconds / 60
    if _nearest(minutes) < 20:
        return Distance(unit="minutes", count=_nearest(minutes))
    if _nearest(minutes, 5) < 60:
        return Distance(unit="minutes", count=_nearest(minutes, 5))
    half_hours = _nearest(minutes / 30)
    if half_hours <= 2:
        return Distance(unit="hour")
    if half_hours == 3:
        return Distance(unit="hour-and-a-half")
    return Distance(unit="hours", count=_nearest(minutes / 60))


def first_of_month(lang: str, folders: Sequence[Path] | None = None) -> str:
    """How `lang` writes the first day of a month in a date ("1er" in French), from its
    catalog."""
    translations = Catalogs(folders or [resources.templates()]).speaker(lang).translations
    # Translators: the first day of a month in a date, as in "Tuesday, November 1": French
    # writes "1er", Portuguese "1º"; leave "1" where the language writes the plain number.
    return str(translations.pgettext("day of the month", "1"))


def message_context(
    call: CallFacts, occurrence: Occurrence, *, lang: str, reader: ZoneInfo, now: datetime,
    labels: Mapping[str, str] | None = None, recording_url: str | None = None,
    notes: str | None = None, folders: Sequence[Path] | None = None, coming: int = 0,
) -> dict[str, Any]:
    """Everything a template may use, for one reader (their zone first) at the moment `now`.
    `folders`: the template folders whose catalogs say how dates are written (by default the
    built-in one). `coming`: how many members have said "I'll be there" for this occurrence
    (`occurrence.coming`; the announcement and the "today" reminder say so when any have)."""
    anchor = occurrence.zone
    zones = list(dict.fromkeys([reader.key, *call.zones]))
    first = first_of_month(lang, folders)
    rows = time_table(occurrence.start, zones, anchor=anchor, lang=lang, labels=labels,
                      first=first)
    calendar_details = "\n".join(u for u in (call.register_url, call.join_url) if u)
    all_calls = call.feed_url.rsplit("/", 1)[0] + "/all.ics"

    def at(zone: ZoneInfo, moment: datetime) -> dict[str, str]:
        local = moment.astimezone(zone)
        return {"zone": zone.key, "label": zone_label(zone.key, lang, labels),
                "time": local_time(local, lang), "date": full_date(local, lang, first),
                "iso": local.isoformat()}

    return {
        "lang": lang,
        "dir": direction(lang),
        "call": {"slug": call.slug, "title": call.title, "description": call.description,
                 "repeats": call.repeats},
        "occurrence": {
            "id": occurrence.id.isoformat(),
            "status": occurrence.status.value,
            "moved": occurrence.status is Status.MOVED,
            "cancelled": occurrence.status is Status.CANCELLED,
            "anchor": at(anchor, occurrence.start),
            "reader": at(reader, occurrence.start),
            "original": at(anchor, occurrence.id),
            "minutes": int((occurrence.end - occurrence.start) / timedelta(minutes=1)),
            "agenda": occurrence.agenda,
            "coming": coming,
        },
        "zones": [row.as_dict() for row in rows],
        "timing": timing(occurrence.start, now, reader, lang).as_dict(),
        "distance": distance(occurrence.start, now).as_dict(),
        "links": {
            "register": call.register_url,
            "join": call.join_url,
            "google": google_calendar_url(title=call.title, start=occurrence.start,
                                          end=occurrence.end, details=calendar_details,
                                          location=call.join_url or ""),
            "ics": call.feed_url,
            "webcal": "webcal://" + call.feed_url.split("://", 1)[1],
            "all_ics": all_calls,  # every call of the coalition (feeds.build writes all.ics)
            "all_webcal": "webcal://" + all_calls.split("://", 1)[1],
        },
        "discourse_date": discourse_date(occurrence.start, zones),
        "recording_url": recording_url,
        "notes": notes,
    }


LANGUAGE_FILE = re.compile(r"(?P<stem>.+)\.(?P<lang>[a-z]{2,3})\.(?P<ext>txt|html|md)")


class OwnLanguageFirst(BaseLoader):
    """The template folders, in order, with one more rule: `email/announcement.fr.txt`, when
    no folder has it, is `email/announcement.txt` (the one all languages share)."""

    def __init__(self, folders: Sequence[Path]) -> None:
        self.folders = list(folders)
        self.inner = ChoiceLoader([TemplateFolder(f) for f in self.folders])

    def get_source(self, environment: Environment,
                   template: str) -> tuple[str, str | None, Callable[[], bool] | None]:
        try:
            return self.inner.get_source(environment, template)
        except TemplateNotFound:
            named = LANGUAGE_FILE.fullmatch(template)
            if named is None:
                raise
        shared = f"{named['stem']}.{named['ext']}"
        try:
            source, filename, uptodate = self.inner.get_source(environment, shared)
        except TemplateNotFound:
            raise TemplateNotFound(template) from None
        own = [f.joinpath(*split_template_path(template)) for f in self.folders]

        def fresh() -> bool:  # and no folder has the language's own file since
            return (uptodate is None or uptodate()) and not any(p.is_file() for p in own)
        return source, filename, fresh

    def list_templates(self) -> list[str]:
        return self.inner.list_templates()


# CommonMark with raw HTML off: `<script>`, `<style>` and `onerror=` stay text (escaped), and
# markdown-it's validateLink refuses javascript:, vbscript: and data: (but images) links.
_MARKDOWN = MarkdownIt("commonmark", {"html": False})


def _image_as_link(renderer: Any, tokens: Sequence[Any], idx: int, options: Any,
                   env: Any) -> str:
    """An image is shown as a link named by its alt text: a remote image in an email is a
    load the sender can track, and some mail programs show a broken frame. An inline
    (data:) image becomes its alt text alone."""
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = escapeHtml(renderer.renderInlineAsText(token.children or [], options, env) or src)
    if src.lower().startswith("data:"):
        return alt
    return f'<a href="{escapeHtml(src)}">{alt}</a>'


_MARKDOWN.add_render_rule("image", _image_as_link)
_BLANK_LINES = re.compile(r"\n{3,}")


def markdown_text(source: str) -> str:
    """Markdown as the plain-text part shows it: the source itself (readable as it is),
    with its line endings, trailing spaces and runs of blank lines normalised."""
    lines = [line.rstrip() for line in source.replace("\r\n", "\n").replace("\r", "\n")
             .split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n")


def markdown_html(source: str) -> Markup:
    """Markdown as sanitised HTML (no raw HTML, no script links), for emails and pages."""
    return Markup(_MARKDOWN.render(markdown_text(source)).strip())


@pass_eval_context
def _markdown(context: EvalContext, value: Any) -> str:
    """{{ call.description|markdown }}: HTML in an autoescaped (HTML) template, the
    normalised source in text."""
    source = str(value or "")
    return markdown_html(source) if context.autoescape else markdown_text(source)


def environment(folders: Sequence[Path], **options: Any) -> BoundedSandbox:
    """The sandbox for `folders`, speaking the catalogs' languages (`translate`), with the
    `markdown` filter."""
    env = BoundedSandbox(loader=OwnLanguageFirst(folders), undefined=StrictUndefined,
                         **options)
    translate.install(env)
    env.filters["markdown"] = env._metered_filter("markdown", _markdown)  # a budget step
    return env


class Templates:
    """The template folders, searched in order, in a sandbox."""

    def __init__(self, folders: Sequence[Path]) -> None:
        self.folders = list(folders)
        self.catalogs = Catalogs(self.folders)
        self.env = environment(
            self.folders,
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
        context = {**context, "lang": lang, "dir": direction(lang)}
        context["relative"] = self._run(f"_relative.{lang}.txt", context, lang).strip()
        if channel == "forum":
            return Message(subject=None, text=self._run(f"forum/{name}.{lang}.md", context, lang),
                           html=None)
        return self.email(name, lang, context)

    def email(self, name: str, lang: str, context: Mapping[str, Any]) -> Message:
        """email/<name>.txt (subject and body blocks) and .html, in `lang`."""
        context = {**context, "lang": lang, "dir": direction(lang)}
        text = f"email/{name}.{lang}.txt"
        subject = self._run(text, context, lang, block="subject").strip()
        if "\n" in subject or "\r" in subject:  # a header must never carry a line break
            raise RenderError(f"{self._load(text).filename}: the subject has a line break")
        return Message(subject=subject, text=self._run(text, context, lang, block="body"),
                       html=self._run(f"email/{name}.{lang}.html", context, lang))

    def _load(self, path: str) -> Template:
        try:
            return self.env.get_template(path)
        except TemplateNotFound as e:
            where = " or ".join(str(f) for f in self.folders)
            raise RenderError(f"no template {path} in {where}") from e
        except TemplateSyntaxError as e:
            raise RenderError(f"{e.filename or path} line {e.lineno}: {e.message}") from e
        except RecursionError as e:  # nested beyond what the parser can follow
            found = next((f / path for f in self.folders if (f / path).is_file()), path)
            raise RenderError(f"{found}: too deeply nested to read") from e

    def _run(self, path: str, context: Mapping[str, Any], lang: str,
             block: str | None = None) -> str:
        template = self._load(path)
        assert isinstance(template, BoundedTemplate)
        if block is not None and block not in template.blocks:
            raise RenderError(f"{template.filename}: has no {{% block {block} %}}")
        speaker = self.catalogs.speaker(lang)
        try:
            with translate.speaking(speaker):
                if block is None:
                    return template.render(context)
                return template.render_block(block, context)
        except Exception as e:  # whatever the template raised, said at its file and line
            if isinstance(e, OSError) and not isinstance(e, TemplateNotFound):
                raise  # a template it includes cannot be read just now: may pass
            raise RenderError(describe(e, template)) from e

    def check(self, languages: Sequence[str],
              samples: Callable[[str], Sequence[Mapping[str, Any]]]) -> list[str]:
        """Render every template for every channel and language with each of `samples`'
        contexts, and read each language's catalog; one line per problem."""
        problems = []
        try:
            expected = self.catalogs.expected()
        except SchedulerError as e:
            problems.append(str(e))
            expected = None
        for lang in languages:
            if expected is not None:
                try:
                    problems.extend(self.catalogs.problems(lang, expected))
                except SchedulerError as e:
                    problems.append(str(e))
            for context in samples(lang):
                for name in TEMPLATES + EMAIL_ONLY:
                    for channel in channels_of(name):
                        try:
                            self.render(name, channel, lang, context)
                        except SchedulerError as e:
                            problems.append(str(e))
                        except OSError as e:  # a template file that cannot be read
                            problems.append(f"{e.filename}: cannot read: {e.strerror or e}")
            for name in ACCOUNT:
                try:
                    self.email(name, lang, ACCOUNT_SAMPLE)
                except SchedulerError as e:
                    problems.append(str(e))
                except OSError as e:
                    problems.append(f"{e.filename}: cannot read: {e.strerror or e}")
        return list(dict.fromkeys(problems))


def describe(error: BaseException, template: Template, lang: str | None = None) -> str:
    """A template's failure on one line: the file and line it happened at (and in which
    language, for a page), and what."""
    where = template_location(error, template)
    if isinstance(error, TemplateSyntaxError):  # in a template it includes or imports
        where = f"{error.filename or error.name or where} line {error.lineno}"
        what = error.message or "syntax error"
    elif isinstance(error, TemplateNotFound):  # what it includes, imports or extends
        names = getattr(error, "templates", None) or [error.name]
        what = f"no template {' or '.join(str(n) for n in names)}"
    elif isinstance(error, OSError):
        what = f"cannot read {error.filename}: {error.strerror or error}"
    elif isinstance(error, SecurityError) and not isinstance(error, BudgetExceeded):
        what = f"refused by the sandbox: {error}"
    elif isinstance(error, TemplateError):
        what = str(error)
    else:
        what = f"{type(error).__name__}: {error}"
    if lang is not None:
        where = f"{where} ({lang})"
    return " ".join(line.strip() for line in f"{where}: {what}".splitlines())


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


def sample_contexts(lang: str, labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """What `check` renders every template with, so that each branch a template may take is
    tried before a reminder is due: `sample_context`, then the same call meeting weekly whose
    occurrence has its own agenda, moved within its day and three members coming (an
    invitation about that occurrence's agenda), then that occurrence cancelled (its
    invitation's cancellation)."""
    plain = sample_context(lang, labels)
    new_york = get_zone("America/New_York")
    start = datetime(2018, 11, 13, 15, tzinfo=UTC)
    moved = Occurrence(id=start, start=start + timedelta(hours=2),
                       end=start + timedelta(hours=3), zone=new_york, status=Status.MOVED,
                       agenda="**Experts** on the year ahead.\n\n- regional updates\n"
                              "- ![the map](https://example.org/map.png)")
    call = CallFacts(
        slug="sample-call", title="Sample coalition call", description="",
        register_url=None, join_url=None, zones=("America/New_York", "Asia/Jakarta"),
        feed_url="https://calls.example.org/calendars/sample-call.ics", repeats="weekly",
    )
    variants = [plain]
    for occurrence, change in ((moved, "agenda"), (replace(moved, status=Status.CANCELLED),
                                                   "cancelled")):
        context = message_context(call, occurrence, lang=lang, reader=get_zone("Pacific/Chatham"),
                                  now=start + timedelta(minutes=150), labels=labels,
                                  recording_url=None, notes=None, coming=3)
        context["invite"] = {"again": True, "one_occurrence": True, "change": change}
        variants.append(context)
    return variants
