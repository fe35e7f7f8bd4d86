"""The fan-out's recorder: a thread that writes the server's answers to the outbox a group per
commit, beside the sending. The states it writes are the outbox's (`outbox.mark_all_sent`,
`outbox.mark_failed`); this module only gathers the answers and commits them."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from queue import Empty, Full, Queue

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from scheduler.store import outbox
from scheduler.store.models import Delivery, DeliveryStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claimed:
    """What recording needs of a claimed delivery, read before sending starts."""

    delivery_id: int
    key: tuple[int, datetime, str, str, str]
    due: datetime

    @classmethod
    def of(cls, delivery: Delivery) -> Claimed:
        assert delivery.id is not None
        return cls(delivery.id, outbox.delivery_key(delivery), delivery.due_at)


# One result: the delivery, its Message-ID if accepted or else the error, permanent, whether
# the transport could not be reached (an outage: `outbox.mark_failed`), when.
_Result = tuple[Claimed, str | None, str | None, bool, bool, datetime]


class Recorder:
    """Records a fan-out's results from a thread of its own, a group at a time: while one
    group commits, the next gathers, so sending does not wait for each commit.

    At most `waiting` results wait to be recorded; beyond that, sending waits for the
    database. A crash therefore repeats at most those and the messages in flight, each with
    its Message-ID unchanged. If recording fails (the database went away), every result
    after that raises, and sending stops: nothing more goes out that could not be recorded.

    `renew`, when given, is called at least every `renew_every` seconds while the recorder
    runs (the daemon keeps its claims with it); a failure there is logged, and the claims may
    then run out as they would have without it.
    """

    WAITING = 16

    def __init__(self, engine: Engine, *, first_retry: timedelta = outbox.FIRST_RETRY,
                 waiting: int = WAITING, renew: Callable[[Session], object] | None = None,
                 renew_every: float = 60.0) -> None:
        self.engine, self.first_retry = engine, first_retry
        self.renew, self.renew_every = renew, renew_every
        self.outcomes: Counter[str] = Counter()
        self.states: dict[int, str] = {}  # each delivery recorded: what a pass reports of it
        self.error: BaseException | None = None
        self._queue: Queue[_Result | None] = Queue(maxsize=waiting)
        self._thread = threading.Thread(target=self._run, name="outbox-recorder", daemon=True)
        self._thread.start()

    def sent(self, claimed: Claimed, *, message_id: str, now: datetime) -> None:
        self._put((claimed, message_id, None, False, False, now))

    def failed(self, claimed: Claimed, *, error: str, permanent: bool, now: datetime,
               outage: bool = False) -> None:
        self._put((claimed, None, error, permanent, outage, now))

    def _put(self, item: _Result | None) -> None:
        while True:
            if self.error is not None and item is not None:
                raise RuntimeError(f"cannot record deliveries: {self.error}") from self.error
            if not self._thread.is_alive():
                return
            try:
                self._queue.put(item, timeout=0.5)  # full: the database is behind; wait
                return
            except Full:
                continue

    def close(self) -> Counter[str]:
        """Wait until everything handed over is recorded; raise what stopped recording."""
        self._put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.outcomes

    def _run(self) -> None:
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                renewed = time.monotonic()
                while True:
                    if self.renew is not None and time.monotonic() - renewed >= self.renew_every:
                        self._renew(session)
                        renewed = time.monotonic()
                    try:
                        group = [self._queue.get(timeout=self.renew_every
                                                 if self.renew is not None else None)]
                    except Empty:
                        continue
                    while True:
                        try:
                            group.append(self._queue.get_nowait())
                        except Empty:
                            break
                    self._record(session, [item for item in group if item is not None])
                    if None in group:
                        return
        except Exception as e:  # handed to the sending thread, which stops
            self.error = e

    def _renew(self, session: Session) -> None:
        assert self.renew is not None
        try:
            self.renew(session)
        except SQLAlchemyError as e:
            session.rollback()
            log.warning("could not renew the claims being sent: %s", str(e).splitlines()[0])

    def _record(self, session: Session, group: list[_Result]) -> None:
        sent = [(claimed, message_id, now) for claimed, message_id, _, _, _, now in group
                if message_id is not None]
        if sent:
            outbox.mark_all_sent(session, [(claimed.delivery_id, message_id, now)
                                           for claimed, message_id, now in sent])
        failures = []
        for claimed, message_id, error, permanent, outage, now in group:
            if message_id is None:
                delivery = session.get(Delivery, claimed.delivery_id)
                assert delivery is not None and error is not None
                outbox.mark_failed(session, delivery, error=error, permanent=permanent,
                                   now=now, first_retry=self.first_retry, outage=outage)
                failures.append(delivery)
        session.commit()
        for claimed, message_id, now in sent:
            outbox.count_sent(claimed.key, claimed.due, message_id, now)
            self.states[claimed.delivery_id] = DeliveryStatus.SENT
        self.outcomes[DeliveryStatus.SENT] += len(sent)
        for delivery in failures:
            assert delivery.id is not None
            self.states[delivery.id] = outbox.outcome(delivery.status)
            self.outcomes[outbox.outcome(delivery.status)] += 1
