"""The page where a member manages their reminders, from the link in every email to them.

    GET  /manage/<token>   their name, language, zone, calls and each call's reminders, and
                           the next occurrences of the calls they follow, with their answers
    POST /manage/<token>   save them (a form with the CSRF token, like sign-up's), or, from
                           one occurrence's buttons, record "I'll be there" / "Can't make it"
                           as the RSVP page does (`scheduler.web.rsvp`)

The link carries the member's own secret token, the one of their unsubscribe link: it works
until they unsubscribe, and a new token (`preferences.rotate`) makes every old link useless.
No password, no JavaScript. What they save takes effect at the next planning pass
(`scheduler.store.preferences`): a reminder already queued for a call they no longer follow is
cancelled then, never sent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, select
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scheduler.config import Settings
from scheduler.core.recurrence import Change, Occurrence, Series, Status, occurrences
from scheduler.core.zones import get_zone
from scheduler.delivery.render import first_of_month
from scheduler.errors import InvalidValue, NotFound
from scheduler.store import preferences, rsvp
from scheduler.store.calls import all_changes, list_calls, series_of, skipped
from scheduler.store.models import Call, RsvpAnswer, Subscriber, SubscriberStatus
from scheduler.web import members, signup
from scheduler.web.site import Site, Visitor

log = logging.getLogger(__name__)
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")
UPCOMING = 3  # the occurrences of each call the page offers to answer for


def member(session: Session, token: str) -> Subscriber:
    """The confirmed member whose token this is; `NotFound` for any other token (forged, old,
    or of someone who unsubscribed)."""
    found = (session.exec(select(Subscriber).where(Subscriber.token == token)).first()
             if TOKEN.fullmatch(token) else None)
    if found is None or found.status != SubscriberStatus.CONFIRMED:
        raise NotFound("link_invalid")
    return found


def find(session: Session, token: str, slug: str, stamp: str) -> \
        tuple[Subscriber, Call, Occurrence]:
    """The member, the call and the occurrence (`stamp`: its original start in UTC, as in
    /calls/<slug>/<when>.ics) that an answer names; `NotFound` for anything else."""
    subscriber = member(session, token)
    try:
        call, _, occurrence = members.named_occurrence(session, slug, stamp)
    except (InvalidValue, NotFound) as e:
        raise NotFound("link_invalid") from e
    return subscriber, call, occurrence


def when(settings: Settings, occurrence: Occurrence, subscriber: Subscriber, lang: str,
         first: str | None = None) -> dict[str, str]:
    """When `occurrence` starts, in the member's zone; `first`: how `lang` writes the first of
    a month (read from the catalogs when not given)."""
    if first is None:
        first = first_of_month(lang, settings.template_folders)
    return members._when(occurrence.start, get_zone(subscriber.timezone), lang, settings.labels,
                         first)


def _next(series: Series, changes: Mapping[datetime, Change], now: datetime) -> \
        list[Occurrence]:
    """The next `UPCOMING` occurrences that are not cancelled, from `now`."""
    count = UPCOMING
    while True:
        found = occurrences(series, changes, start=now, count=count)
        kept = [o for o in found if o.status is not Status.CANCELLED]
        if len(kept) >= UPCOMING or len(found) < count or count >= 16 * UPCOMING:
            return kept[:UPCOMING]
        count *= 2


def upcoming(session: Session, settings: Settings, subscriber: Subscriber, *, now: datetime,
             lang: str) -> list[dict[str, Any]]:
    """The next occurrences (`UPCOMING` of each call the member follows, none cancelled),
    soonest first, in the member's zone, each with their answer so far (None: none yet)."""
    changes = all_changes(session)
    found: list[tuple[Call, Occurrence]] = []
    for call in list_calls(session):
        if subscriber.calls is not None and call.slug not in subscriber.calls:
            continue
        try:
            found.extend((call, o) for o in _next(series_of(call),
                                                  changes.get(call.id or 0, {}), now))
        except Exception as e:  # one stored call that cannot be read must not blank the page
            skipped(log, call, "the manage page's occurrences", e)
    found.sort(key=lambda pair: (pair[1].start, pair[0].title))
    answers = rsvp.answers_of(session, subscriber,
                              [(call.id or 0, occurrence.id) for call, occurrence in found])
    first = first_of_month(lang, settings.template_folders)
    return [{"slug": call.slug, "title": call.title,
             "stamp": f"{occurrence.id.astimezone(UTC):{members.STAMP}}",
             "when": when(settings, occurrence, subscriber, lang, first),
             "moved": occurrence.status is Status.MOVED,
             "answer": answers.get((call.id or 0, occurrence.id))}
            for call, occurrence in found]


def reminder_labels(settings: Settings) -> list[tuple[str, str]]:
    """(name, template) of each reminder a member can choose: the page words a reminder by
    its template (templates/web/manage.html), an organizer's own kind by its name."""
    templates = {r.name: r.template for r in settings.reminders}
    templates[preferences.FOLLOWUP] = "followup"
    return [(name, templates.get(name, name)) for name in preferences.choosable(settings)]


def checked(settings: Settings, subscriber: Subscriber, form: Mapping[str, Any],
            known: list[str]) -> preferences.Choices:
    """The form's answers, or `signup.FieldError` naming the first field that is wrong."""
    every = form["all"] == "yes"
    request = signup.checked(settings, email=subscriber.email, name=form["name"],
                             language=form["language"], timezone=form["zone"],
                             calls=None if every else form["calls"], known=known)
    names = set(preferences.choosable(settings))
    reminders = {}
    for slug in known:
        wanted = form["reminders"].get(slug, [])
        if any(name not in names for name in wanted):
            raise signup.FieldError("reminders", f"unknown reminder among {wanted!r}")
        reminders[slug] = tuple(n for n in preferences.choosable(settings) if n in wanted)
    return preferences.Choices(name=request.name, language=request.language,
                               timezone=request.timezone, calls=request.calls,
                               reminders=reminders)


class ManagePage:
    """The routes, on the members' site (its pages, words, forms and database)."""

    def __init__(self, site: Site) -> None:
        self.site = site

    def _values(self, subscriber: Subscriber, calls: list[tuple[str, str]]) -> dict[str, Any]:
        return {
            "name": subscriber.name, "language": subscriber.language,
            "zone": subscriber.timezone, "all": subscriber.calls is None,
            "calls": subscriber.calls or [],
            "reminders": {slug: [n for n in preferences.choosable(self.site.settings)
                                 if preferences.gets(subscriber, slug, n)]
                          for slug, _ in calls},
        }

    def _visitor(self, request: Request, subscriber: Subscriber) -> Visitor:
        visitor = self.site.visitor(request)
        if "lang" not in request.query_params and "lang" not in request.cookies:
            visitor.lang = subscriber.language
        # The member's zone is the form's: the page's script must not put the browser's in.
        visitor.zone_chosen = True
        return visitor

    def _page(self, visitor: Visitor, token: str, status: int = 200, **context: Any) -> Response:
        return self.site.page(visitor, "manage.html", status, token=token,
                              reminder_labels=reminder_labels(self.site.settings),
                              **{"saved": False, "answered": None, "error": "", "invalid": "",
                                 **context})

    async def _upcoming(self, visitor: Visitor, token: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.site._db(lambda s: upcoming(
            s, self.site.settings, member(s, token), now=self.site.clock(), lang=visitor.lang))
        return found

    async def manage(self, request: Request) -> Response:
        token = request.path_params["token"]
        subscriber, calls = await self.site._db(lambda s: (
            member(s, token), [(c.slug, c.title) for c in list_calls(s)]))
        visitor = self._visitor(request, subscriber)
        if request.method != "POST":  # GET or HEAD (a link checker): look, change nothing
            return self._page(visitor, token, email=subscriber.email, calls=calls,
                              values=self._values(subscriber, calls),
                              upcoming=await self._upcoming(visitor, token))
        form = await request.form(max_files=0)
        if "occurrence" in form:  # one occurrence's "I'll be there" / "Can't make it"
            return await self._answer(visitor, token, form, subscriber, calls)
        slugs = [slug for slug, _ in calls]
        fields = {key: str(form.get(key, "")) for key in ("name", "language", "zone", "all")}
        answers: dict[str, Any] = {
            **fields, "calls": [str(v) for v in form.getlist("calls")],
            "reminders": {slug: [str(v) for v in form.getlist(f"reminders-{slug}")]
                          for slug in slugs}}
        values = {**answers, "all": fields["all"] == "yes"}
        if not self.site._form_ok(visitor, str(form.get("form_token", ""))):
            return self._page(visitor, token, 403, email=subscriber.email, calls=calls,
                              values=values, error=self.site.words(visitor).say("form_expired"),
                              upcoming=await self._upcoming(visitor, token))
        try:
            choices = checked(self.site.settings, subscriber, answers, slugs)
        except signup.FieldError as e:
            error = self.site.words(visitor)
            return self._page(visitor, token, 400, email=subscriber.email, calls=calls,
                              values=values, invalid=e.field,
                              error=error.say(e.key) if e.key in error else str(e),
                              upcoming=await self._upcoming(visitor, token))
        except InvalidValue as e:
            raise InvalidValue("bad_request") from e

        def save(session: Session) -> Subscriber:
            return preferences.apply(session, self.site.settings, member(session, token),
                                     choices, now=self.site.clock())
        saved = await self.site._db(save)
        if "lang" not in request.query_params:  # the page answers in the language just chosen
            visitor.lang = saved.language
            visitor.cookies["lang"] = saved.language
        return self._page(visitor, token, email=saved.email, calls=calls,
                          values=self._values(saved, calls), saved=True,
                          upcoming=await self._upcoming(visitor, token))

    async def _answer(self, visitor: Visitor, token: str, form: FormData,
                      subscriber: Subscriber, calls: list[tuple[str, str]]) -> Response:
        """Record the member's answer for the occurrence the form names (its call's slug and
        original start: "slug/20190312T140000Z"), as the RSVP page does; then the page again,
        saying so."""
        values = self._values(subscriber, calls)
        if not self.site._form_ok(visitor, str(form.get("form_token", ""))):
            return self._page(visitor, token, 403, email=subscriber.email, calls=calls,
                              values=values, error=self.site.words(visitor).say("form_expired"),
                              upcoming=await self._upcoming(visitor, token))
        slug, _, stamp = str(form.get("occurrence", "")).partition("/")
        text = str(form.get("answer", ""))
        if text not in list(RsvpAnswer):
            raise InvalidValue("bad_request")
        answer = RsvpAnswer(text)

        def save(session: Session) -> dict[str, Any]:
            found, call, occurrence = find(session, token, slug, stamp)
            rsvp.record(session, found, call, occurrence.id, answer, now=self.site.clock())
            return {"answer": answer.value, "title": call.title,
                    "when": when(self.site.settings, occurrence, found, visitor.lang)}
        answered = await self.site._db(save)
        return self._page(visitor, token, email=subscriber.email, calls=calls, values=values,
                          answered=answered, upcoming=await self._upcoming(visitor, token))

    def routes(self) -> list[Route]:
        return [Route("/manage/{token}", self.manage, methods=["GET", "POST"])]
