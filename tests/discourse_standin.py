"""A small Discourse that answers the way discourse-openapi.json says the real one does.

It keeps topics and posts in memory, checks the Api-Key and Api-Username headers, and can be
told to fail the next posts: 429 with Retry-After (rate limit), 500, or 502 *after* making the
post (an answer lost on the way back). As Discourse does (its spec, and TopicsController in
its source): `GET /t/external_id/{id}.json` answers 301 to `/t/{slug}/{id}.json`; a topic's
JSON carries its post ids and its first 20 posts, without their raw text unless asked
(`include_raw`); `GET /t/{id}/posts.json?post_ids[]=...` gives chosen posts at once; a second
topic with an external id already taken is refused with 422.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

NOT_FOUND = {"errors": ["The requested URL or resource could not be found."],
             "error_type": "not_found"}


@dataclass
class Failure:
    status: int
    after_posting: bool = False
    retry_after: int = 0


@dataclass
class Forum:
    api_key: str
    topics: dict[int, dict[str, Any]] = field(default_factory=dict)
    posts: dict[int, dict[str, Any]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    agents: set[str] = field(default_factory=set)  # the User-Agent headers it was sent
    lookups_limited: int = 0  # how many of the next topic reads answer 429

    def topic(self, topic_id: int, title: str = "Coalition calls") -> None:
        self.topics[topic_id] = {"id": topic_id, "title": title, "category_id": 1,
                                 "external_id": None, "posts": []}

    def posts_in(self, topic_id: int) -> list[dict[str, Any]]:
        return [self.posts[p] for p in self.topics[topic_id]["posts"]]

    def _add_post(self, topic_id: int, raw: str, username: str) -> dict[str, Any]:
        post_id = 1000 + len(self.posts)
        topic = self.topics[topic_id]
        post = {"id": post_id, "topic_id": topic_id, "post_number": len(topic["posts"]) + 1,
                "raw": raw, "cooked": f"<p>{raw}</p>", "username": username,
                "topic_slug": "t", "post_type": 1}
        self.posts[post_id] = post
        topic["posts"].append(post_id)
        return post

    def app(self) -> Starlette:
        def denied(request: Request) -> JSONResponse | None:
            if request.headers.get("Api-Key") != self.api_key or not request.headers.get(
                    "Api-Username"):
                return JSONResponse({"errors": ["You are not permitted to view the requested "
                                                "resource. The API username or key is invalid."],
                                     "error_type": "invalid_access"}, status_code=403)
            return None

        def seen(request: Request) -> None:
            self.requests.append((request.method, request.url.path))
            self.agents.add(request.headers.get("User-Agent", ""))

        def shown(post: dict[str, Any], request: Request) -> dict[str, Any]:
            raw = request.query_params.get("include_raw") in ("true", "1")
            return post if raw else {k: v for k, v in post.items() if k != "raw"}

        async def create(request: Request) -> JSONResponse:
            seen(request)
            refusal = denied(request)
            if refusal:
                return refusal
            body = await request.json()
            failure = self.failures.pop(0) if self.failures else None
            if failure and failure.status == 429:
                return JSONResponse(
                    {"errors": ["You've performed this action too many times. Please wait "
                                f"{failure.retry_after} seconds before trying again."],
                     "error_type": "rate_limit", "extras": {"wait_seconds": failure.retry_after}},
                    status_code=429, headers={"Retry-After": str(failure.retry_after)})
            if failure and not failure.after_posting:
                return JSONResponse({"errors": ["Internal Server Error"]},
                                    status_code=failure.status)
            raw = str(body.get("raw", ""))
            if len(raw) < 20:
                return JSONResponse({"errors": ["Body is too short (minimum is 20 characters)"],
                                     "error_type": "invalid_parameters"}, status_code=422)
            if body.get("topic_id") is not None:
                if int(body["topic_id"]) not in self.topics:
                    return JSONResponse(NOT_FOUND, status_code=404)
                post = self._add_post(int(body["topic_id"]), raw, request.headers["Api-Username"])
            else:
                title = str(body.get("title", ""))
                if len(title) < 15:
                    return JSONResponse({"errors": ["Title is too short (minimum is 15 "
                                                    "characters)"]}, status_code=422)
                external = body.get("external_id")
                if external and any(t["external_id"] == external for t in self.topics.values()):
                    return JSONResponse({"errors": ["External ID has already been taken"],
                                         "error_type": "invalid_parameters"}, status_code=422)
                topic_id = 500 + len(self.topics)
                self.topic(topic_id, title)
                self.topics[topic_id]["external_id"] = external
                post = self._add_post(topic_id, raw, request.headers["Api-Username"])
            if failure:  # the post is made, but the answer is lost
                return JSONResponse({"errors": ["Bad Gateway"]}, status_code=failure.status)
            return JSONResponse(post)

        async def topic(request: Request) -> JSONResponse:
            seen(request)
            if self.lookups_limited:
                self.lookups_limited -= 1
                return JSONResponse({"errors": ["You've performed this action too many times."],
                                     "error_type": "rate_limit", "extras": {"wait_seconds": 60}},
                                    status_code=429, headers={"Retry-After": "60"})
            refusal = denied(request)
            topic = self.topics.get(int(request.path_params["id"]))
            if refusal or topic is None:
                return refusal or JSONResponse(NOT_FOUND, status_code=404)
            first = [shown(p, request) for p in self.posts_in(topic["id"])[:20]]
            return JSONResponse({"id": topic["id"], "title": topic["title"],
                                 "post_stream": {"stream": topic["posts"], "posts": first}})

        async def chosen_posts(request: Request) -> JSONResponse:
            seen(request)
            refusal = denied(request)
            topic = self.topics.get(int(request.path_params["id"]))
            if refusal or topic is None:
                return refusal or JSONResponse(NOT_FOUND, status_code=404)
            wanted = {int(i) for i in request.query_params.getlist("post_ids[]")}
            return JSONResponse({"post_stream": {"posts": [
                shown(p, request) for p in self.posts_in(topic["id"]) if p["id"] in wanted]}})

        async def by_external_id(request: Request) -> Response:
            seen(request)
            wanted = request.path_params["external_id"]
            for topic in self.topics.values():
                if topic["external_id"] == wanted:
                    return RedirectResponse(f"/t/t/{topic['id']}.json", status_code=301)
            return JSONResponse(NOT_FOUND, status_code=404)

        async def post(request: Request) -> JSONResponse:
            seen(request)
            found = self.posts.get(int(request.path_params["id"]))
            return JSONResponse(found) if found else JSONResponse(NOT_FOUND, status_code=404)

        async def user(request: Request) -> JSONResponse:
            refusal = denied(request)
            return refusal or JSONResponse({"user": {"username": request.path_params["name"]}})

        return Starlette(routes=[
            Route("/posts.json", create, methods=["POST"]),
            Route("/t/external_id/{external_id}.json", by_external_id),
            Route("/t/{id:int}.json", topic),
            Route("/t/{slug}/{id:int}.json", topic),
            Route("/t/{id:int}/posts.json", chosen_posts),
            Route("/posts/{id:int}.json", post),
            Route("/u/{name}.json", user),
        ])


class Running:
    """The stand-in served by uvicorn on 127.0.0.1 in a thread of its own."""

    def __init__(self, forum: Forum, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        ready = threading.Event()

        class Server(uvicorn.Server):
            async def startup(self, sockets: Any = None) -> None:
                await super().startup(sockets)
                ready.set()

        self.server = Server(uvicorn.Config(forum.app(), host="127.0.0.1", port=port,
                                            log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()),
                                       daemon=True)
        self.thread.start()
        assert ready.wait(timeout=30), "the Discourse stand-in did not start"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
