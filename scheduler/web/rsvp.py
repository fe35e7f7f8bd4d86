"""One click to say "I'll be there" or "Can't make it" for one occurrence, from an email.

    GET  /rsvp/<token>/<slug>/<when>/<answer>   a page with the occurrence and one button
    POST /rsvp/<token>/<slug>/<when>/<answer>   that button: the answer is recorded

`<when>` is the occurrence's original start in UTC (as in /calls/<slug>/<when>.ics), so a link
keeps working after the occurrence moves; `<answer>` is yes or no. Looking (GET, HEAD: a mail
scanner following links) records nothing. The token is the member's own secret, as in their
unsubscribe and manage links; the button's form carries the CSRF token too.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scheduler.core.recurrence import Status
from scheduler.errors import NotFound
from scheduler.store import rsvp
from scheduler.store.models import RsvpAnswer
from scheduler.web.manage import find, when
from scheduler.web.site import Site


class RsvpPage:
    def __init__(self, site: Site) -> None:
        self.site = site

    async def answer(self, request: Request) -> Response:
        params = request.path_params
        token, answer_text = params["token"], params["answer"]
        if answer_text not in list(RsvpAnswer):
            raise NotFound("link_invalid")
        answer = RsvpAnswer(answer_text)
        subscriber, call, occurrence = await self.site._db(lambda s: find(
            s, token, params["slug"], params["stamp"]))
        visitor = self.site.visitor(request)
        if "lang" not in request.query_params and "lang" not in request.cookies:
            visitor.lang = subscriber.language
        context: dict[str, Any] = {
            "call_title": call.title, "when": when(self.site.settings, occurrence, subscriber,
                                                   visitor.lang),
            "answer": answer.value, "cancelled": occurrence.status is Status.CANCELLED,
            "manage": f"/manage/{token}", "recorded": False, "error": "", "current": None,
            "other": f"/rsvp/{token}/{params['slug']}/{params['stamp']}/"
                     f"{'no' if answer is RsvpAnswer.YES else 'yes'}"}
        if request.method != "POST":  # GET or HEAD (a link checker): look, change nothing
            current = await self.site._db(lambda s: rsvp.answer_for(
                s, subscriber, call, occurrence.id))
            return self.site.page(visitor, "rsvp.html", **{**context, "current": current})
        form = await request.form(max_files=0)
        if not self.site._form_ok(visitor, str(form.get("form_token", ""))):
            return self.site.page(visitor, "rsvp.html", 403, **{
                **context, "error": self.site.words(visitor).say("form_expired")})

        def save(session: Session) -> None:
            found, call_now, _ = find(session, token, params["slug"], params["stamp"])
            rsvp.record(session, found, call_now, occurrence.id, answer, now=self.site.clock())
        await self.site._db(save)
        return self.site.page(visitor, "rsvp.html", **{**context, "recorded": True,
                                                        "current": answer.value})

    def routes(self) -> list[Route]:
        return [Route("/rsvp/{token}/{slug}/{stamp}/{answer}", self.answer,
                      methods=["GET", "POST"])]
