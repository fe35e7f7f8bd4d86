"""Email into a local Maildir: the embedded default, read with any mail client (or `mutt -f`).

Each message becomes a file in folder/new, written to tmp/ first, then moved (the Maildir
rule, so a reader never sees half a message). The folder and its parents are made when
missing. A full disk or a folder taken away is temporary; a message that cannot be written
for any other reason fails alone, for good.
"""

from __future__ import annotations

import logging
import mailbox
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from scheduler.channels import EMAIL, Health, OnResult, Result, Results, unwritable
from scheduler.channels.mail import Outgoing
from scheduler.errors import reason

if TYPE_CHECKING:
    from scheduler.config import Settings

log = logging.getLogger(__name__)


class Maildir:
    channel = EMAIL

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def from_settings(cls, settings: Settings) -> Maildir:
        return cls(settings.maildir)

    def _made(self) -> None:
        """The folder and its tmp/, new/ and cur/, each made where missing (mailbox makes
        them only for a folder that does not exist yet: not for one `doctor` or an organizer
        made empty)."""
        for part in ("tmp", "new", "cur"):
            (self.folder / part).mkdir(parents=True, exist_ok=True)

    def send(self, items: Sequence[Outgoing], on_result: OnResult | None = None) -> list[Result]:
        results = Results(on_result)
        if not items:
            return []
        try:
            self._made()
        except OSError as e:  # a full disk, a file in the way: every message waits for it
            for message in items:
                results.append(Result(key=message.message_id, recipient=message.recipient,
                                      unreachable=True,
                                      error=f"cannot write to {self.folder}: {e.strerror or e}"))
            return list(results)
        box = mailbox.Maildir(self.folder, create=False)
        for message in items:
            results.append(self._write(box, message))
        return list(results)

    def _write(self, box: mailbox.Maildir, message: Outgoing) -> Result:
        key, recipient = message.message_id, message.recipient
        try:
            box.add(message.data.replace(b"\r\n", b"\n"))
        except OSError as e:  # a full disk, a folder taken away: try again later
            return Result(key=key, recipient=recipient, unreachable=True,
                          error=f"cannot write to {self.folder}: {e.strerror or e}")
        except Exception as e:  # this message cannot be written, whatever else can
            log.warning("mail %s to %s cannot be written: %s", key, recipient, reason(e))
            return Result(key=key, recipient=recipient, error=reason(e), permanent=True)
        log.info("mail %s to %s written to %s", key, recipient, self.folder)
        return Result(key=key, recipient=recipient, receipt=key)

    def check(self) -> Health:
        problem = unwritable(self.folder)
        if problem is None:
            try:
                self._made()
            except OSError as e:
                problem = f"cannot create {self.folder}'s tmp, new and cur: {e.strerror}"
        return Health(ok=problem is None, detail=problem or f"written to the Maildir {self.folder}")

    def close(self) -> None:
        pass
