"""Forum posts as Markdown files, one per post: the embedded default, for a forum without an
API or an organizer who posts by hand.

`[forum] folder`/<call>/<occurrence>-<rule>.md, written atomically; each file ends with its
post's marker and the topic it belongs in. A file already carrying its marker is kept, so a
post is never written twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from scheduler.channels import FORUM, Health, OnResult, Post, Result, Results, marker, unwritable
from scheduler.errors import reason
from scheduler.files import write_atomically

if TYPE_CHECKING:
    from scheduler.config import Settings


class ForumFiles:
    channel = FORUM

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def from_settings(cls, settings: Settings) -> ForumFiles:
        return cls(settings.forum_folder)

    def send(self, items: Sequence[Post], on_result: OnResult | None = None) -> list[Result]:
        results = Results(on_result)
        for post in items:
            results.append(self._write(post))
        return list(results)

    def _write(self, post: Post) -> Result:
        """A full disk or a folder taken away passes (temporary); anything else is for good."""
        mark = marker(post.key)
        path = self.folder / post.name
        try:
            if not (path.exists() and mark in path.read_text(encoding="utf-8")):
                topic = f"topic {post.topic}" if post.topic else "a new topic"
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomically(path, f"{post.text}\n{mark}\n<!-- for {topic} -->\n".encode())
        except Exception as e:
            disk = isinstance(e, OSError)  # full, or taken away: every post waits for it
            return Result(key=post.key, error=reason(e), permanent=not disk, unreachable=disk)
        return Result(key=post.key, receipt=mark, topic=post.topic)

    def check(self) -> Health:
        problem = unwritable(self.folder)
        return Health(ok=problem is None, detail=problem or f"posts written to {self.folder}")

    def close(self) -> None:
        pass
