"""Planning: one planning pass (the daemon's `plan_pass`: the occurrences whose reminders can
fall due, nine days ahead with three rules the longest of which is a week, which is as far as
the issue's 35 days would reach for anything to queue; the subscribers; and the outbox rows
owed within the queue's quarter of an hour) for growing numbers of weekly calls, each size in
a process of its own (seconds and peak RSS). The issue's size is 10,000 calls x 3 rules x
1,000 subscribers. The coalition and its members are added just before the pass, so the pass
owes nothing from before it; each call starts on one of seven days between 8:00 and 16:00 in
one of four zones, so the quarter of an hour after the pass holds what any quarter of an hour
of a weekday does.

    python bench/planning.py [--quick] [--subscribers N] [--calls N N ...]

Ends with `ratio planning_linearity VALUE` (1.0: time per call is the same at the largest size
as at the smallest; higher is better) and `ratio planning_vs_target VALUE`: 5 s divided by the
first pass at 10,000 calls (estimated linearly from the largest size run, when smaller).
`--postgres URL` (a server's URL, e.g. postgresql://postgres@127.0.0.1:5432/test) runs each
size in a database of its own on that server, created and dropped by the bench.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import database, print_table, ratio

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 5.0


def first_start(n: int, zone: str, now: datetime) -> datetime:
    """Call n's first occurrence: weekly on one of seven days, 8:00 to 16:00 in its zone, the
    first whose announcement (a week before) is still ahead of `now`. The coalition and its
    members are added just before the pass, so nothing is owed from before it; the pass
    queues what falls due within `[daemon] queue_minutes`, as the daemon does all week."""
    local = datetime(2026, 1, 12, 8 + n % 9, tzinfo=ZoneInfo(zone)) + timedelta(days=n % 7)
    while local - timedelta(days=7) < now:
        local += timedelta(days=7)
    return local.replace(tzinfo=None)


def child(calls: int, subscribers: int) -> dict[str, float]:
    from sqlalchemy import func
    from sqlmodel import Session, select

    from scheduler import config
    from scheduler.delivery import planning
    from scheduler.store import db
    from scheduler.store.models import Call, Delivery, Subscriber

    folder = Path(tempfile.mkdtemp(prefix="bench-planning-"))
    (folder / "config.toml").write_text((ROOT / "config.toml").read_text())
    settings = config.load(folder / "config.toml")
    engine = db.make_engine(settings.database_url())
    db.migrate(engine)  # what `coalition init` does
    now = datetime(2026, 1, 5, 12, tzinfo=UTC)
    with Session(engine) as session:  # rows straight in: the bench measures planning only
        zones = ["America/New_York", "Europe/Brussels", "Africa/Cairo", "Asia/Jakarta"]
        session.add_all(Call(
            slug=f"call-{n}", title=f"Call {n}", timezone=zones[n % 4],
            start_local=first_start(n, zones[n % 4], now).isoformat(),  # a wall time
            duration_minutes=60, rrule="FREQ=WEEKLY",
            language="en", created_at=now, updated_at=now) for n in range(calls))
        session.add_all(Subscriber(
            email=f"member{n}@example.org", language="en", timezone=zones[n % 4],
            status="confirmed", token=f"token-{n:027d}", created_at=now,
            confirmed_at=now) for n in range(subscribers))
        session.commit()
    memo: dict[str, object] = {}  # as the daemon keeps it
    with Session(engine, expire_on_commit=False) as session:
        began = time.monotonic()
        counts = planning.plan_pass(session, settings, now=now, memo=memo)
        seconds = time.monotonic() - began
        rows = session.exec(select(func.count()).select_from(Delivery)).one()
    with Session(engine, expire_on_commit=False) as session:
        began = time.monotonic()  # the daemon's next pass: nothing changed
        planning.plan_pass(session, settings, now=now + timedelta(minutes=1), memo=memo)
        same = time.monotonic() - began
        session.add(Subscriber(email="new@example.org", language="en", timezone="UTC",
                               status="confirmed", token="t" * 32, created_at=now,
                               confirmed_at=now))
        session.commit()
        began = time.monotonic()  # someone subscribed: everything compared with the outbox
        planning.plan_pass(session, settings, now=now + timedelta(minutes=2), memo=memo)
        again = time.monotonic() - began
    shutil.rmtree(folder)
    return {"seconds": seconds, "same": same, "again": again, "rows": float(rows),
            "added": float(counts["added"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--subscribers", type=int)
    parser.add_argument("--calls", type=int, nargs="+")
    parser.add_argument("--postgres", metavar="URL", help="run on this PostgreSQL server")
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        result = child(args.calls[0], args.subscribers)
        result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    subscribers = args.subscribers or 1000
    sizes = args.calls or ([250, 500, 1000] if args.quick else [1000, 2500, 5000, 10000])
    results = {}
    for calls in sizes:
        with database(args.postgres, "bench_planning") as url:
            ran = subprocess.run([sys.executable, __file__, "--child", "--calls", str(calls),
                                  "--subscribers", str(subscribers)], capture_output=True,
                                 text=True, env={**os.environ, **(
                                     {"COALITION_DATABASE_URL": url} if url else {})})
        if ran.returncode != 0:
            raise SystemExit(f"{calls} calls failed:\n{ran.stderr[-2000:]}")
        results[calls] = json.loads(ran.stdout.strip().splitlines()[-1])
    print(f"One planning pass, weekly calls x 3 rules x {subscribers} subscribers, on "
          f"{'PostgreSQL' if args.postgres else 'SQLite'}")
    print_table(["calls", "outbox rows", "first pass s", "rows/s", "ms per call",
                 "unchanged s", "one new member s", "peak RSS MB"],
                [[f"{calls}", f"{r['rows']:.0f}", f"{r['seconds']:.2f}",
                  f"{r['rows'] / r['seconds']:.0f}", f"{1000 * r['seconds'] / calls:.2f}",
                  f"{r['same']:.2f}", f"{r['again']:.2f}", f"{r['rss_mb']:.0f}"]
                 for calls, r in results.items()])
    smallest, largest = min(results), max(results)
    per_call = {c: results[c]["seconds"] / c for c in (smallest, largest)}
    estimate = per_call[largest] * 10_000
    print(f"{'measured' if largest == 10_000 else 'estimated'} first pass at 10,000 calls x "
          f"{subscribers} subscribers: {estimate:.1f} s (target {TARGET_SECONDS:.0f} s)")
    ratio("planning_linearity", per_call[smallest] / per_call[largest])
    ratio("planning_vs_target", TARGET_SECONDS / estimate)


if __name__ == "__main__":
    main()
