"""Channels and their transports (issue 14): a transport is one module implementing one protocol,
named in `scheduler.channels.TRANSPORTS`, and config's choice is the only place that picks it.
The sending pass, `coalition doctor` and config's check all go through that one place."""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Sequence
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
