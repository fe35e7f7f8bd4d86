"""The fan-out's recorder: results are written a group at a time beside the sending; when the
database stops taking them, sending stops too, rather than send what cannot be recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlmodel import Session, select

from scheduler import calls, config, db, outbox
from scheduler.models import Delivery
from scheduler.plan import EMAIL, Planned

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


def test_every_result_handed_over_is_recorded_once_closed(config_case: object) -> None:
    settings = config.load(config_case("example"))  # type: ignore[operator]
    engine = db.open_database(settings.database_url())
    with Session(engine, expire_on_commit=False) as session:
        call = calls.add_call(session, settings, calls.CallInput(
            title="Call", start="2026-01-05 13:00", timezone="UTC"), now=NOW)
        assert call.id is not None
        occurrence = datetime(2026, 1, 5, 13, tzinfo=UTC)
        outbox.sync(session, [Planned(call.id, occurrence, "starts-soon", EMAIL,
                                      f"m{n}@example.org", NOW, occurrence)
                              for n in range(300)],
                    covered={(call.id, occurrence, "starts-soon")}, now=NOW)
        claimed = outbox.claim(session, now=NOW, worker="test", limit=1000)
    recorder = outbox.Recorder(engine)
    for n, delivery in enumerate(claimed):
        if n % 100 == 99:  # three refused for good
            recorder.failed(outbox.Claimed.of(delivery), error="550 no such user",
                            permanent=True, now=NOW)
        else:
            recorder.sent(outbox.Claimed.of(delivery), message_id=f"<{n}@example.org>",
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
    recorder = outbox.Recorder(engine)
    claimed = outbox.Claimed(1, (1, NOW, "starts-soon", EMAIL, "ada@example.org"), NOW)
    recorder.sent(claimed, message_id="<1@example.org>", now=NOW)
    with pytest.raises(Exception, match="no such table: delivery"):
        recorder.close()
    with pytest.raises(RuntimeError, match="cannot record deliveries"):
        recorder.sent(claimed, message_id="<2@example.org>", now=NOW)
