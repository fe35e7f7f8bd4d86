"""The members' page and its forms, served by the daemon's web app.

    GET  /                         upcoming calls in the reader's zone and language
    GET  /calls/<slug>/<when>.ics  one occurrence, for "Add to calendar"
    GET  /subscribe, POST          the sign-up form; POST sends the confirmation email
    GET  /confirm/<token>, POST    the link in that email: a page with one button
    GET  /unsubscribe/<token>      the link in every email: a page with one button
    POST /unsubscribe/<token>      that button, and RFC 8058's one-click POST
    GET  /static/<file>            the page's stylesheet and script

Pages are Jinja templates in templates/web/ (an organizer's folder can replace any of them,
for every language or for one: web/index.fr.html); their words are translated by the catalogs
(`scheduler.delivery.catalogs`), and the words the code picks (notices, errors) are in
`scheduler.web.words`. The page is written right to left for a right-to-left language (dir).
The reader's language comes from ?lang=, a cookie, or Accept-Language, among the languages of
`[calls] languages`; their zone from ?tz=, a cookie, or (with a line of JavaScript) the
browser. Forms carry a token bound to a cookie (CSRF); sign-up is rate-limited per IP and per
address, in memory, per daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import TemplateSyntaxError
from limits import parse as parse_rate
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from scheduler.channels import mail
from scheduler.config import Settings
from scheduler.core.recurrence import Status
from scheduler.core.timetable import zone_label
from scheduler.core.zones import current_name, get_zone
from scheduler.delivery import translate
from scheduler.delivery.catalogs import Catalogs, direction, language_name, po_file
from scheduler.delivery.render import describe, environment
from scheduler.errors import InvalidValue, InvalidZone, NotFound, SchedulerError
from scheduler.store import subscribers
from scheduler.store.calls import list_calls
from scheduler.web import members, signup
from scheduler.web.words import Words

log = logging.getLogger(__name__)

YEAR = 365 * 86400
STATIC = re.compile(r"[a-z0-9-]+\.(css|js)")
UNSUBSCRIBE_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
Clock = Callable[[], datetime]


class Pages:
    """templates/web/*.html in a sandbox (autoescaped), speaking the catalogs' languages."""

    def __init__(self, folders: list[Path]) -> None:
        self.folders = folders
        self.catalogs = Catalogs(folders)
        self.env = environment(folders, autoescape=True, trim_blocks=True, lstrip_blocks=True)

    def words(self, lang: str, languages: tuple[str, ...] = ()) -> Words:
        return Words(self.catalogs.speaker(lang), languages or (lang,))

    def find(self, name: str) -> Path | None:
        return next((f / name for f in self.folders if (f / name).is_file()), None)

    @staticmethod
    def name(page: str, lang: str) -> str:
        """web/index.fr.html: the language's own page if a folder has one, else the shared
        web/index.html (see `render.OwnLanguageFirst`)."""
        stem, _, suffix = page.rpartition(".")
        return f"web/{stem}.{lang}.{suffix}"

    def render(self, name: str, context: Mapping[str, Any]) -> str:
        lang = context["lang"]
        with translate.speaking(self.catalogs.speaker(lang)):
            return self.env.get_template(self.name(name, lang)).render(context)


def check_pages(settings: Settings) -> list[str]:
    """Every page in every language, rendered with sample data: one line per problem (for
    `coalition check` and the daemon's start, so that a broken page is found before a member
    meets it)."""
    sample_call = {
        "slug": "sample-call", "title": "Sample call", "description": "Agenda", "next": None,
        "register_url": "https://example.org/register",
        "feed": {"https": "https://x/calendars/s.ics", "webcal": "webcal://x/calendars/s.ics",
                 "google": "https://calendar.google.com/calendar/render?cid=x"},
        "occurrences": [{
            "status": status.value, "ics": "/calls/sample-call/20181113T150000Z.ics",
            "reader": _SAMPLE_WHEN, "end": _SAMPLE_WHEN, "anchor": _SAMPLE_WHEN,
            "moved_from": _SAMPLE_WHEN if status is Status.MOVED else None,
            "agenda": "**Theme**: the year ahead" if status is Status.CONFIRMED else None,
        } for status in Status],
    }
    contexts: dict[str, dict[str, Any]] = {
        "index.html": {"calls": [sample_call], "all_feed": sample_call["feed"]},
        "subscribe.html": {"calls": [("sample-call", "Sample call")], "error": "",
                           "invalid": "", "values": {"email": "", "name": "", "language": "en",
                                                     "zone": "UTC", "all": True, "calls": []}},
        "notice.html": {"title": "Title", "text": "Text", "button": "confirm_button",
                        "unsubscribe": "/unsubscribe/x", "manage": "/manage/x"},
        "manage.html": {"email": "a@example.org", "token": "x", "calls": [
            ("sample-call", "Sample call")], "reminder_labels": [("tomorrow", "tomorrow")],
            "values": {"name": "", "language": "en", "zone": "UTC", "all": True, "calls": [],
                       "reminders": {"sample-call": ["tomorrow"]}},
            "saved": True, "error": "", "invalid": "",
            "answered": {"answer": "no", "title": "Sample call", "when": _SAMPLE_WHEN},
            "upcoming": [{"slug": "sample-call", "title": "Sample call",
                          "stamp": "20181113T150000Z", "when": _SAMPLE_WHEN, "moved": moved,
                          "answer": answer}
                         for moved, answer in ((False, "yes"), (True, "no"), (False, None))]},
    }
    site = Site(settings, None, clock=lambda: datetime.now(UTC), secret="check")
    problems = []
    for folder in settings.template_folders[:-1]:  # words files of versions before catalogs
        for old in sorted((folder / "web").glob("text.*.toml")):
            lang = old.name.split(".")[1]  # a warning: the pages still work, in our words
            log.warning("%s: no longer read: the pages' words are in the catalogs; put yours "
                        "in %s (README, Languages)", old, po_file(folder, lang))
    for lang in settings.calls.languages:
        visitor = Visitor(lang=lang, zone=get_zone("UTC"), zone_chosen=True, form_id="check")
        for name, context in contexts.items():
            try:
                site.page(visitor, name, **context)
            except TemplateSyntaxError as e:
                problems.append(f"{e.filename or name} line {e.lineno} ({lang}): {e.message}")
            except RecursionError:  # nested beyond what the parser can follow
                problems.append(f"web/{name} ({lang}): too deeply nested to read")
            except Exception as e:  # whatever else the page raised, at its file and line
                template = site.pages.env.get_template(site.pages.name(name, lang))
                problems.append(describe(e, template, lang))
    return problems


_SAMPLE_WHEN = {"date": "Tuesday, November 13, 2018", "time": "10:00 AM", "offset": "UTC-05:00",
                "city": "New York", "iso": "2018-11-13T15:00:00+00:00"}


@dataclass(kw_only=True)
class Visitor:
    """Who is reading, as far as the request tells: language, zone, and the form cookie."""

    lang: str
    zone: ZoneInfo
    zone_chosen: bool  # False: our default, until the browser says its zone
    form_id: str
    cookies: dict[str, str] = field(default_factory=dict)  # to set on the answer


class Site:
    def __init__(self, settings: Settings, engine: Engine | None, *, clock: Clock,
                 secret: str | None) -> None:
        self.settings, self.engine, self.clock = settings, engine, clock
        self.pages = Pages(settings.template_folders)
        self.links = (signup.Links(secret, max_age_hours=settings.web.confirm_hours)
                      if secret else None)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.per_ip = parse_rate(settings.web.signup_per_ip)
        self.per_address = parse_rate(settings.web.signup_per_address)
        self.secure = settings.web.base_url.startswith("https://")

    # --- the reader

    def visitor(self, request: Request) -> Visitor:
        """Raises `InvalidValue` for a ?lang= or ?tz= we do not know (a cookie we do not know
        is ignored: it may come from an older version)."""
        languages = self.settings.calls.languages
        cookies: dict[str, str] = {}
        asked = request.query_params.get("lang")
        if asked is not None:
            if asked not in languages:
                raise InvalidValue(f"unknown language {asked!r} (this site speaks "
                                   f"{', '.join(languages)})")
            cookies["lang"] = asked
        lang = members.language(request.headers.get("accept-language"),
                                asked or request.cookies.get("lang"), languages)
        zone, chosen = get_zone(self.settings.calls.default_zones[0]), False
        name = request.query_params.get("tz")
        if name is not None:
            try:
                zone, chosen = self._zone(name), True
            except InvalidValue:
                # The page's script sends the browser's zone as it is, for the server to
                # find by its current name; one the server does not know leaves the default.
                if request.query_params.get("tz_from") != "browser":
                    raise
            else:
                cookies["tz"] = zone.key
        elif request.cookies.get("tz"):
            with contextlib.suppress(InvalidValue):
                zone, chosen = self._zone(request.cookies["tz"]), True
        form_id = request.cookies.get("form", "")
        if not re.fullmatch(r"[A-Za-z0-9_-]{22,64}", form_id):
            form_id = cookies["form"] = secrets.token_urlsafe(24)
        return Visitor(lang=lang, zone=zone, zone_chosen=chosen, form_id=form_id,
                       cookies=cookies)

    @staticmethod
    def _zone(name: str) -> ZoneInfo:
        """The zone `name`, an old name (Asia/Calcutta, as browsers report it) as the picker
        lists it (Asia/Kolkata), so that it shows as chosen."""
        try:
            return get_zone(current_name(name))
        except InvalidZone as e:
            raise InvalidValue(f"{e}; choose one from the list") from e

    # --- answers

    def words(self, visitor: Visitor) -> Words:
        return self.pages.words(visitor.lang, self.settings.calls.languages)

    def page(self, visitor: Visitor, template: str, status: int = 200,
             **context: Any) -> HTMLResponse:
        languages = self.settings.calls.languages
        body = self.pages.render(template, {
            "t": self.words(visitor).table(), "lang": visitor.lang,
            "dir": direction(visitor.lang), "languages": languages,
            "language_names": {code: language_name(code) for code in languages},
            "directions": {code: direction(code) for code in languages},
            "zone": visitor.zone.key, "zone_chosen": visitor.zone_chosen,
            "zone_city": zone_label(visitor.zone.key, visitor.lang, self.settings.labels),
            "zone_groups": members.zone_groups(visitor.lang),
            "form_token": self.links.form_token(visitor.form_id) if self.links else "",
            **context})
        response = HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
        for name, value in visitor.cookies.items():
            response.set_cookie(name, value, max_age=YEAR if name != "form" else None,
                                httponly=True, samesite="lax", secure=self.secure)
        return response

    def notice(self, visitor: Visitor, title: str, text: str, status: int = 200, *,
               fill: Mapping[str, object] | None = None, **context: Any) -> HTMLResponse:
        """A page with a heading and a line (words by key, `scheduler.web.words`), perhaps a
        button; %(email)s and the like in the line are filled from `fill`."""
        words = self.words(visitor)
        return self.page(visitor, "notice.html", status, title=words.say(title),
                         text=words.say(text, **(fill or {})), **context)

    def problem(self, request: Request, status: int, text: str) -> HTMLResponse:
        """An error page in the reader's language, whatever made the request wrong."""
        try:
            visitor = self.visitor(request)
        except SchedulerError:
            visitor = Visitor(lang=members.language(request.headers.get("accept-language"),
                                                    request.cookies.get("lang"),
                                                    self.settings.calls.languages),
                              zone=get_zone("UTC"), zone_chosen=False, form_id="")
        visitor.cookies.pop("form", None)
        return self.notice(visitor, "problem_title", text, status)

    def _form_ok(self, visitor: Visitor, token: str) -> bool:
        return self.links is not None and "form" not in visitor.cookies and \
            self.links.form_ok(token, visitor.form_id)

    async def _db(self, work: Callable[[Session], Any]) -> Any:
        if self.engine is None:
            raise NotFound("this server has no database")
        engine = self.engine

        def run() -> Any:
            with Session(engine, expire_on_commit=False) as session:
                return work(session)
        return await asyncio.to_thread(run)

    # --- routes

    async def index(self, request: Request) -> Response:
        visitor = self.visitor(request)
        calls = await self._db(lambda session: members.page(
            session, self.settings, now=self.clock(), reader=visitor.zone, lang=visitor.lang))
        return self.page(visitor, "index.html", calls=calls,
                         all_feed=members.feed_links(self.settings, "all"))

    async def occurrence(self, request: Request) -> Response:
        slug, stamp = request.path_params["slug"], request.path_params["stamp"]
        data, occurrence = await self._db(lambda s: members.occurrence_ics(s, slug, stamp))
        return Response(data, media_type="text/calendar; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{slug}-{occurrence.id:%Y%m%d}.ics"'})

    async def subscribe(self, request: Request) -> Response:
        visitor = self.visitor(request)
        calls = await self._db(lambda s: [(c.slug, c.title) for c in list_calls(s)])
        if request.method != "POST":  # GET or HEAD (a link checker): look, change nothing
            return self.page(visitor, "subscribe.html", calls=calls, values={
                "email": "", "name": "", "language": visitor.lang, "zone": visitor.zone.key,
                "all": True, "calls": []}, error="", invalid="")
        form = await request.form(max_files=0)
        fields = {key: str(form.get(key, "")) for key in ("email", "name", "language", "zone")}
        chosen = [str(v) for v in form.getlist("calls")]
        every = form.get("all") == "yes"
        values = {**fields, "all": every, "calls": chosen}

        def again(status: int, error: str, invalid: str = "") -> Response:
            return self.page(visitor, "subscribe.html", status, calls=calls, values=values,
                             error=error, invalid=invalid)
        if not self._form_ok(visitor, str(form.get("form_token", ""))):
            return again(403, self.words(visitor).say("form_expired"))
        try:
            wanted = signup.checked(
                self.settings, email=fields["email"], name=fields["name"],
                language=fields["language"], timezone=fields["zone"],
                calls=None if every else chosen, known=[slug for slug, _ in calls])
        except signup.FieldError as e:
            return again(400, self.words(visitor).say(e.key), invalid=e.field)
        client = request.client.host if request.client else "unknown"
        for limit, key in ((self.per_ip, client), (self.per_address, wanted.email)):
            if not self.limiter.hit(limit, "signup", key):
                reset = self.limiter.get_window_stats(limit, "signup", key).reset_time
                minutes = max(1, round((reset - self.clock().timestamp()) / 60))
                response = again(429, self.words(visitor).say("too_many", minutes=minutes))
                response.headers["Retry-After"] = str(minutes * 60)
                return response
        assert self.links is not None
        link = f"{self.settings.web.base_url}/confirm/{self.links.confirmation(wanted)}"
        titles = [title for slug, title in calls if wanted.calls and slug in wanted.calls]
        message = signup.confirmation_email(self.settings, wanted, link=link, titles=titles,
                                            now=self.clock())
        sent = await asyncio.to_thread(mail.send, self.settings, [message])
        if not sent[0].ok:
            log.warning("confirmation email to %s not sent: %s", wanted.email, sent[0].error)
            if sent[0].permanent and sent[0].unusable:  # refused, or needs SMTPUTF8: not later
                return again(400, self.words(visitor).say("email_unusable"), invalid="email")
            return again(503, self.words(visitor).say("send_failed"))
        return self.notice(visitor, "sent_title", "sent_text", fill={
            "email": wanted.email, "hours": self.settings.web.confirm_hours})

    async def confirm(self, request: Request) -> Response:
        visitor = self.visitor(request)
        if self.links is None:
            raise NotFound("sign-up is not available here")
        wanted, issued = self.links.read(request.path_params["token"])
        titles = await self._db(lambda s: {c.slug: c.title for c in list_calls(s)})
        summary = {"email": wanted.email, "zone": wanted.timezone,
                   "calls": ", ".join(titles.get(slug, slug) for slug in wanted.calls or ())
                   or self.words(visitor).say("every_call")}
        if request.method != "POST":  # GET or HEAD (a link checker): look, change nothing
            return self.notice(visitor, "confirm_title", "confirm_text", fill=summary,
                               button="confirm_button")
        form = await request.form(max_files=0)
        if not self._form_ok(visitor, str(form.get("form_token", ""))):
            return self.notice(visitor, "confirm_title", "form_expired", 403,
                               button="confirm_button")
        subscriber = await self._db(lambda s: signup.confirm(
            s, self.settings, wanted, issued=issued, now=self.clock()))
        visitor.cookies.setdefault("lang", subscriber.language)
        return self.notice(visitor, "confirmed_title", "confirmed_text", fill=summary,
                           unsubscribe=f"/unsubscribe/{subscriber.token}",
                           manage=f"/manage/{subscriber.token}")

    async def unsubscribe(self, request: Request) -> Response:
        """GET: a page with one button. POST: unsubscribe; a mail provider's RFC 8058 one-click
        POST (List-Unsubscribe=One-Click) lands here too and gets the same 200. The token in the
        address is the secret, so this form needs no CSRF token (a provider has no cookie)."""
        visitor = self.visitor(request)
        visitor.cookies.pop("form", None)
        token = request.path_params["token"]
        if not UNSUBSCRIBE_TOKEN.fullmatch(token):
            raise NotFound("link_invalid")
        if request.method != "POST":  # GET or HEAD (a link checker): look, change nothing
            return self.notice(visitor, "unsubscribe_title", "unsubscribe_text",
                               button="unsubscribe_button")
        try:
            subscriber = await self._db(lambda s: subscribers.unsubscribe_by_token(
                s, token, now=self.clock()))
        except NotFound as e:
            raise NotFound("link_invalid") from e
        return self.notice(visitor, "unsubscribed_title", "unsubscribed_text",
                           fill={"email": subscriber.email})

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        path = self.pages.find(f"web/static/{name}") if STATIC.fullmatch(name) else None
        if path is None:
            raise NotFound("not_found")
        return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})

    def routes(self) -> list[Route]:
        return [
            Route("/", self.index, methods=["GET", "HEAD"]),
            Route("/calls/{slug}/{stamp}.ics", self.occurrence, methods=["GET", "HEAD"]),
            Route("/subscribe", self.subscribe, methods=["GET", "POST"]),
            Route("/confirm/{token}", self.confirm, methods=["GET", "POST"]),
            Route("/unsubscribe/{token}", self.unsubscribe, methods=["GET", "POST"]),
            Route("/static/{name}", self.static, methods=["GET", "HEAD"]),
        ]
