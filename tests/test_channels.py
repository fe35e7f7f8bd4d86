"""Channels and their transports (issue 14): a transport is one module implementing one protocol,
named in `scheduler.channels.TRANSPORTS`, and config's choice is the only place that picks it.
The sending pass, `coalition doctor` and config's check all go through that one place."""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from scheduler import channels
from scheduler.channels import FORUM, Health, OnResult, Post, Result, Results
from scheduler.config import Settings
from tests.conftest import Coalition

SCHEDULER = Path(__file__).resolve().parent.parent / "scheduler"
TRANSPORT_MODULES = {target.partition(":")[0] for named in channels.TRANSPORTS.values()
                     for target in named.values()}
DUE = "2018-11-06T15:00:30Z"  # the announcement of tests/data/calls/issue_13.txt


class Jsonl:
    """A throwaway forum transport: one JSON line per post, in a file beside config.toml."""

    channel = FORUM

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def from_settings(cls, settings: Settings) -> Jsonl:
        return cls(settings.folder / "posts.jsonl")

    def send(self, items: Sequence[Post], on_result: OnResult | None = None) -> list[Result]:
        results = Results(on_result)
        for post in items:
            with self.path.open("a", encoding="utf-8") as lines:
                lines.write(json.dumps({"key": post.key, "title": post.title,
                                        "text": post.text}) + "\n")
            results.append(Result(key=post.key, receipt=f"line of {post.key}", topic=41))
        return list(results)

    def check(self) -> Health:
        return Health(ok=True, detail=f"posts appended to {self.path.name}")

    def close(self) -> None:
        pass


@pytest.fixture
def with_jsonl(organizer: Callable[[str], Coalition],
               monkeypatch: pytest.MonkeyPatch) -> Coalition:
    monkeypatch.setitem(channels.TRANSPORTS[FORUM], "jsonl", f"{__name__}:Jsonl")
    members = organizer("issue_13")
    config = members.folder / "config.toml"
    config.write_text(config.read_text().replace('transport = "files"', 'transport = "jsonl"'))
    return members


def test_a_new_transport_is_one_class_and_one_line(with_jsonl: Coalition) -> None:
    """Named in TRANSPORTS and in config.toml, it carries the forum's posts: the pass records
    its receipt and the topic it reports, and `doctor` asks it whether it can send."""
    ran = with_jsonl("run-once", "--now", DUE)
    assert ran.exit_code == 0, ran.stderr
    (line,) = (with_jsonl.folder / "posts.jsonl").read_text().splitlines()
    posted = json.loads(line)
    assert posted["title"] == "Justice For All coalition call"
    assert "10:00 AM New York" in posted["text"]
    (forum,) = [d for d in with_jsonl.deliveries() if d["channel"] == FORUM]
    assert (forum["status"], forum["message_id"]) == ("sent", f"line of {posted['key']}")
    shown = json.loads(with_jsonl("call", "show", "justice-for-all-coalition-call",
                                  "--json").stdout)
    assert shown["forum_topic"] == 41  # later posts reply in the topic it made
    assert with_jsonl.forum_posts("justice-for-all-coalition-call") == []
    doctor = with_jsonl("doctor")
    assert "forum: ok: posts appended to posts.jsonl" in doctor.stdout


def test_a_transport_config_does_not_know_is_refused_with_the_choices(
        coalition: Coalition) -> None:
    config = coalition.folder / "config.toml"
    config.write_text(config.read_text().replace('transport = "files"', 'transport = "matrix"'))
    ran = coalition("check")
    assert ran.exit_code == 2
    assert "[forum] transport" in ran.stderr and "'files', 'discourse'" in ran.stderr


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return found


OUTSIDE_CHANNELS = sorted(p for p in SCHEDULER.rglob("*.py") if "channels" not in p.parts)


@pytest.mark.parametrize("path", OUTSIDE_CHANNELS, ids=lambda p: str(p.relative_to(SCHEDULER)))
def test_no_module_outside_channels_knows_a_transport(path: Path) -> None:
    """Planning, the outbox, the sending pass, the web and doctor reach a transport only
    through `scheduler.channels`: none imports one, or the clients they are built on."""
    known = {name for name in _imports(path)
             if name.startswith(tuple(TRANSPORT_MODULES)) or name.split(".")[0] in (
                 "aiosmtplib", "httpx", "mailbox")}
    assert not known


@pytest.mark.parametrize("path", sorted((SCHEDULER / "channels").glob("*.py")),
                         ids=lambda p: p.stem)
def test_channels_stand_below_storage_delivery_and_the_web(path: Path) -> None:
    """A transport sends what it is given: it reads no database and renders nothing."""
    tree = ast.parse(path.read_text(), str(path))
    runtime = set()
    for node in tree.body:  # `if TYPE_CHECKING:` imports are for mypy only
        if isinstance(node, ast.ImportFrom) and node.module:
            runtime.add(node.module)
        elif isinstance(node, ast.Import):
            runtime |= {alias.name for alias in node.names}
    assert not {name for name in runtime if name.startswith(
        ("scheduler.store", "scheduler.delivery", "scheduler.web", "scheduler.config",
         "sqlalchemy", "sqlmodel", "jinja2"))}


# --- which failures are the transport's (the far side down), which the message's own


def test_smtp_that_cannot_be_reached_says_so_for_every_message() -> None:
    from scheduler.channels.mail import Outgoing
    from scheduler.channels.smtp import Smtp
    from scheduler.config import load
    from tests.conftest import free_port

    folder = Path(__file__).resolve().parent.parent
    settings = load(folder / "config.toml")
    smtp = Smtp(replace(settings.smtp, port=free_port(), timeout=5), sender="calls@example.org")
    messages = [Outgoing(message_id=f"<{n}@example.org>", recipient="ada@example.org",
                         data=b"Subject: hi\r\n\r\nhello\r\n") for n in range(3)]
    results = smtp.send(messages)
    assert [r.key for r in results] == [m.message_id for m in messages]
    assert all(not r.ok and r.unreachable and not r.permanent for r in results)
    assert str(results[0].error).startswith("cannot reach 127.0.0.1:")


@pytest.mark.parametrize(("status", "unreachable", "permanent"), [
    (502, True, False), (503, True, False), (504, True, False), (500, False, False),
    (422, False, True), (403, False, True)])
def test_discourse_not_serving_is_the_transports_a_refusal_the_posts(
        status: int, unreachable: bool, permanent: bool) -> None:
    import httpx

    from scheduler.channels.discourse import Discourse
    forum = Discourse("https://forum.example.org", api_key="k", api_username="system",
                      category=1, transport=httpx.MockTransport(
                          lambda request: httpx.Response(status, json={"errors": ["no"]})))
    (result,) = forum.send([Post(key="<k@example.org>", text="A post long enough to post",
                                 title="Coalition call", topic=77, name="x.md", retry=False)])
    forum.close()
    assert (result.ok, result.unreachable, result.permanent) == (False, unreachable, permanent)


def test_a_discourse_that_cannot_be_reached_is_the_transports() -> None:
    import httpx

    from scheduler.channels.discourse import Discourse

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    forum = Discourse("https://forum.example.org", api_key="k", api_username="system",
                      category=1, transport=httpx.MockTransport(refuse))
    (result,) = forum.send([Post(key="<k@example.org>", text="A post long enough to post",
                                 title="Coalition call", topic=77, name="x.md", retry=False)])
    forum.close()
    assert result.unreachable and not result.permanent


def test_a_maildir_on_a_disk_that_cannot_take_it_is_the_transports(tmp_path: Path) -> None:
    from scheduler.channels.mail import Outgoing
    from scheduler.channels.maildir import Maildir

    (tmp_path / "mail").write_text("a file where the Maildir should be")
    (result,) = Maildir(tmp_path / "mail").send([Outgoing(
        message_id="<1@example.org>", recipient="ada@example.org", data=b"Subject: hi\r\n\r\n")])
    assert result.unreachable and not result.permanent


def test_a_maildir_folder_made_empty_takes_mail(tmp_path: Path) -> None:
    """`coalition doctor` (or an organizer) may make the folder before anything is sent:
    Python's mailbox then made no tmp/, new/ or cur/, and every message failed."""
    from scheduler.channels.mail import Outgoing
    from scheduler.channels.maildir import Maildir

    folder = tmp_path / "var" / "mail"
    folder.mkdir(parents=True)
    (result,) = Maildir(folder).send([Outgoing(
        message_id="<1@example.org>", recipient="ada@example.org", data=b"Subject: hi\r\n\r\n")])
    assert result.ok and len(list((folder / "new").iterdir())) == 1


def test_doctor_then_run_once_delivers(coalition: Coalition) -> None:
    """As a new user does it: check the install, then send."""
    assert coalition("doctor").exit_code == 0
    assert coalition("call", "add", "--title", "Justice For All coalition call", "--start",
                     "2018-11-13 10:00", "--tz", "America/New_York", "--rrule",
                     "FREQ=MONTHLY;BYDAY=2TU").exit_code == 0
    assert coalition("subscriber", "add", "ada@example.org").exit_code == 0
    ran = coalition("run-once", "--now", DUE)
    assert ran.exit_code == 0, ran.stderr
    assert [str(m["To"]) for m in coalition.inbox()] == ["ada@example.org"]
