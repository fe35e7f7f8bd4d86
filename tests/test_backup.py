"""`coalition backup FILE`: a copy of the SQLite database (and the secret beside it) taken while
others write, restored the way the README says: stop the daemon, copy the files back."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from scheduler import config
from scheduler.store import calls, db, subscribers
from scheduler.web import signup
from tests.conftest import Coalition, ConfigCase, SmtpSink, use_smtp
from tests.daemon_process import start, stop

# The reminders script's call: the announcement (a week ahead) and "starts soon" fall due here.
MOMENTS = ("2019-03-05T15:00:30Z", "2019-03-12T13:31:00Z")


def database_file(config_file: Path) -> Path:
    return config_file.parent / "var" / "coalition.sqlite3"


def secret_file(config_file: Path) -> Path:
    return Path(f"{database_file(config_file)}.secret")


def contents(coalition: Coalition, config_file: Path | None = None
             ) -> dict[str, list[dict[str, Any]]]:
    """What an organizer sees: every call, subscriber and delivery."""

    def listed(*args: str) -> list[dict[str, Any]]:
        ran = coalition(*args, "--json", config_path=config_file)
        assert ran.exit_code == 0, ran.stderr
        rows: list[dict[str, Any]] = json.loads(ran.stdout)
        return rows

    return {"calls": listed("call", "list"), "subscribers": listed("subscriber", "list"),
            "deliveries": listed("deliveries")}


def make_secret(config_file: Path) -> str:
    """The sign-up secret a SQLite install makes beside its database (as the daemon does)."""
    settings = config.load(config_file)
    engine = db.open_database(settings.database_url())
    try:
        return signup.site_secret(settings, engine)
    finally:
        engine.dispose()


def restore(backup: Path, config_file: Path) -> None:
    """The README's restore, with the daemon stopped: the copy in place of the database (its
    stale -wal and -shm files removed first), and the secret beside it if the backup has one
    (it has none when the secret comes from COALITION_WEB_SECRET)."""
    database = database_file(config_file)
    database.parent.mkdir(parents=True, exist_ok=True)
    for stale in (Path(f"{database}-wal"), Path(f"{database}-shm")):
        stale.unlink(missing_ok=True)
    shutil.copyfile(backup, database)
    if Path(f"{backup}.secret").exists():
        shutil.copyfile(f"{backup}.secret", secret_file(config_file))
        os.chmod(secret_file(config_file), 0o600)


@pytest.fixture
def with_deliveries(organizer: Callable[[str], Coalition],
                    monkeypatch: pytest.MonkeyPatch) -> Coalition:
    """A call, three subscribers, the deliveries of two passes, and the generated secret."""
    monkeypatch.delenv("COALITION_WEB_SECRET", raising=False)
    coalition = organizer("reminders")
    assert coalition("subscriber", "add", "chidi@example.org", "--tz", "Africa/Lagos"
                     ).exit_code == 0
    for moment in MOMENTS:
        assert coalition("run-once", "--now", moment).exit_code == 0
    make_secret(coalition.config)
    return coalition


def test_a_backup_taken_under_an_open_transaction_restores_what_was_committed(
        with_deliveries: Coalition, tmp_path: Path, config_case: ConfigCase) -> None:
    """A writer is in the middle of deleting everything when the backup is taken; it then
    commits. The backup holds every call, subscriber and delivery (and the secret) as they were
    committed, and restoring it brings them all back."""
    coalition = with_deliveries
    config_file = coalition.config
    writer = sqlite3.connect(database_file(config_file), isolation_level=None)
    assert writer.execute("SELECT count(*) FROM call").fetchone() == (1,)
    # Committed while the writer keeps the file open: in the WAL file, not yet in the main one.
    assert coalition("subscriber", "add", "dana@example.org").exit_code == 0
    committed = contents(coalition)
    assert all(committed.values()) and len(committed["deliveries"]) >= 6
    assert "dana@example.org" in json.dumps(committed["subscribers"])
    secret = secret_file(config_file).read_text()
    writer.execute("BEGIN IMMEDIATE")
    for table in ("delivery", "subscriber", "invitee", "occurrence_change", "call"):
        writer.execute(f'DELETE FROM "{table}"')
    target = tmp_path / "backups" / "coalition-backup.sqlite3"
    target.parent.mkdir()
    ran = coalition("backup", str(target))
    writer.execute("COMMIT")
    writer.close()
    assert ran.exit_code == 0, ran.stderr
    assert f"to {target}" in ran.stdout and f"to {target}.secret (mode 600)" in ran.stdout
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(f"{target}.secret").stat().st_mode) == 0o600
    assert contents(coalition) == {"calls": [], "subscribers": [], "deliveries": []}

    restore(target, config_file)
    assert contents(coalition) == committed
    assert make_secret(config_file) == secret


def test_a_backup_taken_while_a_writer_keeps_committing_is_one_moment(
        coalition: Coalition, tmp_path: Path) -> None:
    """Members are added one commit at a time while the backup runs; the copy holds the first
    N of them, for one N, with none missing in between: a snapshot, not a torn file."""
    config_file = coalition.config
    settings = config.load(config_file)
    engine = db.open_database(settings.database_url())
    added, stop_writing = threading.Event(), threading.Event()
    count = 0
    failed: list[BaseException] = []  # what the writer raised: raised again here

    def keep_adding() -> None:
        nonlocal count
        try:
            with Session(engine) as session:
                while not stop_writing.is_set():
                    subscribers.add(session, settings, subscribers.NewSubscriber(
                        email=f"member{count}@example.org"), now=datetime.now(UTC))
                    count += 1
                    added.set()
        except BaseException as e:
            failed.append(e)
            added.set()  # the test waits for the writer: it must not wait in vain

    def writer_ok() -> None:
        if failed:
            raise failed[0]

    writer = threading.Thread(target=keep_adding)
    writer.start()
    try:
        assert added.wait(timeout=60)
        writer_ok()
        before = count
        target = tmp_path / "during.sqlite3"
        ran = coalition("backup", str(target))
        added.clear()
        writer_ok()  # one that failed before the clear set `added` in vain
        assert added.wait(timeout=60), "the writer was blocked by the backup"
        writer_ok()
    finally:
        stop_writing.set()
        writer.join()
        engine.dispose()
    writer_ok()
    assert ran.exit_code == 0, ran.stderr
    with sqlite3.connect(target) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        found = {row[0] for row in copy.execute("SELECT email FROM subscriber")}
    copy.close()
    assert before <= len(found) <= count
    assert found == {f"member{n}@example.org" for n in range(len(found))}


def test_a_backup_taken_while_the_daemon_sends_restores_every_delivery(
        config_case: ConfigCase, smtp_sink: tuple[SmtpSink, int], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, coalition: Coalition) -> None:
    """The daemon is half-way through a fan-out (the mail server holds its next message) when
    an admin runs `coalition backup` from another process. The restored copy has the call,
    every member and every delivery queued by then; what it says was sent, was sent."""
    sink, port = smtp_sink
    members = 60
    path = config_case("example", "sending")
    use_smtp(path, port)
    path.write_text(path.read_text().replace("interval_seconds = 60", "interval_seconds = 1"))
    settings = config.load(path)
    engine = db.open_database(settings.database_url())
    now = datetime.now(UTC)
    with Session(engine) as session:
        soon = (now + timedelta(minutes=20)).strftime("%Y-%m-%d %H:%M")
        calls.add_call(session, settings, calls.CallInput(title="Soon call", start=soon,
                                                          timezone="UTC"), now=now)
        for number in range(members):
            subscribers.add(session, settings, subscribers.NewSubscriber(
                email=f"member{number}@example.org"), now=now, commit=False)
        session.commit()
    engine.dispose()
    sink.expected = {f"member{n}@example.org" for n in range(members)}
    sink.hold_after = members // 2
    monkeypatch.delenv("COALITION_WEB_SECRET", raising=False)
    daemon = start(path, env={"COALITION_WEB_SECRET": ""})  # it makes the secret beside the file
    try:
        assert sink.reached.wait(timeout=120), "the fan-out never got half-way"
        command = shutil.which("coalition", path=str(Path(sys.executable).parent))
        assert command
        target = tmp_path / "mid-send.sqlite3"
        ran = subprocess.run([command, "--config", str(path), "backup", str(target)],
                             capture_output=True, text=True, timeout=120, check=False)
        sink.release()
        assert sink.all_in.wait(timeout=120), "not every member got the reminder"
    finally:
        sink.release()
        assert stop(daemon) == 0
    assert ran.returncode == 0, ran.stderr
    live = contents(coalition, path)

    elsewhere = config_case("example", "restored", database=False)
    restore(target, elsewhere)
    restored = contents(coalition, elsewhere)
    assert restored["calls"] == live["calls"]
    assert restored["subscribers"] == live["subscribers"]

    def key(d: dict[str, str]) -> tuple[str, ...]:
        return (d["call"], d["occurrence_id"], d["rule"], d["channel"], d["recipient"])

    backed = {key(d): d["status"] for d in restored["deliveries"]}
    final = {key(d): d["status"] for d in live["deliveries"]}
    email = {k for k in final if k[3] == "email"}
    assert len(email) == members and email <= set(backed)
    assert {k for k, s in backed.items() if s == "sent"} <= {k for k, s in final.items()
                                                              if s == "sent"}
    assert 0 < sum(s == "sent" for k, s in backed.items() if k in email) < members
    assert secret_file(elsewhere).read_text() == secret_file(path).read_text()


def test_a_backup_with_the_secret_from_the_environment_restores_without_one(
        coalition: Coalition, tmp_path: Path, config_case: ConfigCase,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With COALITION_WEB_SECRET set there is no FILE.secret: the README's restore copies the
    secret only if present, and the restored service signs with the environment's secret."""
    monkeypatch.setenv("COALITION_WEB_SECRET", "a-secret-kept-in-the-environment-0123")
    config_file = coalition.config
    assert coalition("subscriber", "add", "dana@example.org").exit_code == 0
    committed = contents(coalition)
    target = tmp_path / "env-secret.sqlite3"
    ran = coalition("backup", str(target))
    assert ran.exit_code == 0, ran.stderr
    assert "no secret beside" in ran.stdout and "keep that environment variable" in ran.stdout
    assert not Path(f"{target}.secret").exists()

    elsewhere = config_case("example", "restored", database=False)
    restore(target, elsewhere)
    assert contents(coalition, elsewhere) == committed
    assert not secret_file(elsewhere).exists()
    assert make_secret(elsewhere) == make_secret(config_file)


def test_backup_never_overwrites_a_file(with_deliveries: Coalition, tmp_path: Path) -> None:
    target = tmp_path / "taken.sqlite3"
    target.write_text("an older backup")
    ran = with_deliveries("backup", str(target))
    assert ran.exit_code == 2
    assert ran.stderr == f"error: {target} already exists; coalition backup never overwrites: " \
                         "name a new file\n"
    assert target.read_text() == "an older backup"
    assert not Path(f"{target}.secret").exists()
    assert not list(tmp_path.glob(".*.partial")), "a half-written copy was left behind"


def test_backup_never_overwrites_the_secret_beside_the_file(
        with_deliveries: Coalition, tmp_path: Path) -> None:
    target = tmp_path / "new.sqlite3"
    Path(f"{target}.secret").write_text("someone else's secret")
    ran = with_deliveries("backup", str(target))
    assert ran.exit_code == 2 and f"{target}.secret already exists" in ran.stderr
    assert not target.exists()


def test_backup_on_postgresql_names_pg_dump(
        coalition: Coalition, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COALITION_DATABASE_URL",
                       "postgresql://coalition:hunter2-secret@db.example.org/coalition")
    ran = coalition("backup", str(tmp_path / "pg.sqlite3"))
    assert ran.exit_code == 2 and ran.stderr.count("\n") == 1
    assert "is PostgreSQL: back it up with pg_dump" in ran.stderr
    assert "hunter2-secret" not in ran.stderr
    assert not (tmp_path / "pg.sqlite3").exists()


def test_a_database_before_an_upgrade_can_be_backed_up(
        coalition_before_init: Coalition, tmp_path: Path) -> None:
    """The upgrade's first step: `coalition backup`, on a schema this coalition refuses."""
    config_file = coalition_before_init.config
    engine = db.make_engine(config.load(config_file).database_url())
    db.migrate(engine, revision="0004")
    engine.dispose()
    ran = coalition_before_init("backup", str(tmp_path / "before-upgrade.sqlite3"))
    assert ran.exit_code == 0, ran.stderr
    assert "(schema 0004)" in ran.stdout and "no secret beside" in ran.stdout


def test_backup_of_a_database_that_does_not_exist_is_one_line(
        coalition_before_init: Coalition, tmp_path: Path) -> None:
    ran = coalition_before_init("backup", str(tmp_path / "copy.sqlite3"))
    assert ran.exit_code == 2 and ran.stderr.count("\n") == 1
    assert "does not exist: nothing to back up" in ran.stderr
    assert not (tmp_path / "copy.sqlite3").exists()
