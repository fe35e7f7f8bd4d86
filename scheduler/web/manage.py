"""The page where a member manages their reminders, from the link in every email to them.

    GET  /manage/<token>   their name, language, zone, calls and each call's reminders
    POST /manage/<token>   save them (a form with the CSRF token, like sign-up's)

The link carries the member's own secret token, the one of their unsubscribe link: it works
until they unsubscribe, and a new token (`preferences.rotate`) makes every old link useless.
No password, no JavaScript. What they save takes effect at the next planning pass
(`scheduler.store.preferences`): a reminder already queued for a call they no longer follow is
cancelled then, never sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlmodel import Session, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scheduler.config import Settings
from scheduler.errors import InvalidValue, NotFound
from scheduler.store import preferences
from scheduler.store.calls import list_calls
from scheduler.store.models import Subscriber, SubscriberStatus
from scheduler.web import signup
from scheduler.web.site import Site, Visitor

TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")

def member(session: Session, token: str) -> Subscriber:
    """The confirmed member whose token this is; `NotFound` for any other token (forged, old,
    or of someone who unsubscribed)."""
    found = (session.exec(select(Subscriber).where(Subscriber.token == token)).first()
             if TOKEN.fullmatch(token) else None)
    if found is None or found.status != SubscriberStatus.CONFIRMED:
        raise NotFound("link_invalid")
    return found


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
                              **{"saved": False, "error": "", "invalid": "", **context})

    async def manage(self, request: Request) -> Response:
        token = request.path_params["token"]
        subscriber, calls = await self.site._db(lambda s: (
            member(s, token), [(c.slug, c.title) for c in list_calls(s)]))
        visitor = self._visitor(request, subscriber)
        if request.method != "POST":  # GET or HEAD (a link checker): look, change nothing
            return self._page(visitor, token, email=subscriber.email, calls=calls,
                              values=self._values(subscriber, calls))
        form = await request.form(max_files=0)
        slugs = [slug for slug, _ in calls]
        fields = {key: str(form.get(key, "")) for key in ("name", "language", "zone", "all")}
        answers: dict[str, Any] = {
            **fields, "calls": [str(v) for v in form.getlist("calls")],
            "reminders": {slug: [str(v) for v in form.getlist(f"reminders-{slug}")]
                          for slug in slugs}}
        values = {**answers, "all": fields["all"] == "yes"}
        if not self.site._form_ok(visitor, str(form.get("form_token", ""))):
            return self._page(visitor, token, 403, email=subscriber.email, calls=calls,
                              values=values, error=self.site.words(visitor).say("form_expired"))
        try:
            choices = checked(self.site.settings, subscriber, answers, slugs)
        except signup.FieldError as e:
            error = self.site.words(visitor)
            return self._page(visitor, token, 400, email=subscriber.email, calls=calls,
                              values=values, invalid=e.field,
                              error=error.say(e.key) if e.key in error else str(e))
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
                          values=self._values(saved, calls), saved=True)

    def routes(self) -> list[Route]:
        return [Route("/manage/{token}", self.manage, methods=["GET", "POST"])]
