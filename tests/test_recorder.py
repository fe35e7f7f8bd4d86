"""The fan-out's recorder: results are written a group at a time beside the sending; when the
database stops taking them, sending stops too, rather than send what cannot be recorded. While
it runs, it keeps the batch's claims (a batch may take longer than a lease to send)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from scheduler import config
from scheduler.core.plan import EMAIL, Planned
from scheduler.store import calls, db, outbox
from scheduler.store.models import Delivery
from scheduler.store.recorder import Claimed, Recorder
from tests.conftest import ConfigCase

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)
LEASE = timedelta(seconds=60)


def claimed_fan_out(config_case: ConfigCase, members: int) -> tuple[Engine, list[Delivery]]:
    """`members` deliveries of one reminder, due at NOW, claimed by "test" for 60 s."""
    settings = config.load(config_case("example"))
    engine = db.open_database(settings.database_url())
    with Session(engine, expire_on_commit=False) as session:
        call = calls.add_call(session, settings, calls.CallInput(
            title="Call", start="2026-01-05 13:00", timezone="UTC"), now=NOW)
        assert call.id is not None
        occurrence = datetime(2026, 1, 5, 13, tzinfo=UTC)
        outbox.sync(session, [Planned(call.id, occurrence, "starts-soon", EMAIL,
                                      f"m{n}@example.org", NOW, occurrence)
                              for n in range(members)],
                    covered={(call.id, occurrence, "starts-soon")}, now=NOW)
        claimed = outbox.claim(session, now=NOW, worker="test", limit=1000, lease=LEASE)
    return engine, claimed


def test_every_result_handed_over_is_recorded_once_closed(config_case: ConfigCase) -> None:
    engine, claimed = claimed_fan_out(config_case, 300)
    recorder = Recorder(engine)
    for n, delivery in enumerate(claimed):
        if n % 100 == 99:  # three refused for good
            recorder.failed(Claimed.of(delivery), error="550 no such user",
                            permanent=True, now=NOW)
        else:
            recorder.sent(Claimed.of(delivery), message_id=f"<{n}@example.org>",
                          now=NOW + timedelta(seconds=1))
    assert recorder.close() == {"sent": 297, "failed": 3}
    with Session(engine) as session:
        rows = session.exec(select(Delivery)).all()
    assert sorted(r.status for r in rows).count("sent") == 297
    assert {r.last_error for r in rows if r.status == "failed"} == {"550 no such user"}
    assert all(r.sent_at == NOW + timedelta(seconds=1) for r in rows if r.status == "sent")
    engine.dispose()


def test_when_recording_fails_the_next_result_stops_the_sending(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")  # no outbox table
    recorder = Recorder(engine)
    claimed = Claimed(1, (1, NOW, "starts-soon", EMAIL, "ada@example.org"), NOW)
    recorder.sent(claimed, message_id="<1@example.org>", now=NOW)
    with pytest.raises(Exception, match="no such table: delivery"):
        recorder.close()
    with pytest.raises(RuntimeError, match="cannot record deliveries"):
        recorder.sent(claimed, message_id="<2@example.org>", now=NOW)


def test_renewed_claims_stay_with_their_daemon_until_the_renewal_runs_out(
        config_case: ConfigCase) -> None:
    engine, claimed = claimed_fan_out(config_case, 3)
    ids = [d.id for d in claimed if d.id is not None]
    with Session(engine) as session:
        outbox.mark_sent(session, claimed[0], message_id="<0@example.org>", now=NOW)
        session.commit()
        # the two not yet sent are renewed; the one sent is done with
        assert outbox.renew(session, ids, worker="test", until=NOW + 2 * LEASE) == 2
        assert outbox.renew(session, ids, worker="another", until=NOW + 3 * LEASE) == 0
        assert outbox.claim(session, now=NOW + LEASE + timedelta(seconds=1),
                            worker="another", lease=LEASE) == []
        taken = outbox.claim(session, now=NOW + 2 * LEASE + timedelta(seconds=1),
                             worker="another", lease=LEASE)
    assert sorted(d.recipient for d in taken) == ["m1@example.org", "m2@example.org"]
    engine.dispose()


def test_the_recorder_renews_while_it_runs_and_a_failed_renewal_does_not_stop_it(
        config_case: ConfigCase, caplog: pytest.LogCaptureFixture) -> None:
    engine, claimed = claimed_fan_out(config_case, 2)
    renewals: list[int] = []

    def renew(session: Session) -> None:
        renewals.append(1)
        if len(renewals) == 1:
            raise OperationalError("UPDATE delivery", {}, Exception("database is locked"))

    recorder = Recorder(engine, renew=renew, renew_every=0)  # every time it looks
    for n, delivery in enumerate(claimed):
        recorder.sent(Claimed.of(delivery), message_id=f"<{n}@example.org>", now=NOW)
    assert recorder.close() == {"sent": 2}
    assert renewals  # renewed from the start, and once failing, went on recording
    assert "could not renew the claims being sent" in caplog.text
    engine.dispose()
