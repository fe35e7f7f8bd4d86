"""Import: `coalition import` of a calendar of one-off events (the issue's 10,000, in eight
zones, written for the run), then `coalition call list --json` over them, by this tree and by
the tree before the import was reworked (commit BASELINE, unpacked with `git archive` into a
temporary folder), each in a process of its own on an empty SQLite database.

What is timed is what the commands do once the program is loaded (interpreter start and
imports are left out: they do not grow with the file):

  read+plan+store   importer.import_file: the file read, every event planned, one transaction
  feeds render      feeds.render_all: every call's feed and all.ics, as bytes
  feeds build       feeds.build: rendered again, then written (a file per call, each synced)
  import            read+plan+store + feeds build: what `coalition import` does
  call list --json  present.listing, a dict per call, written as each tree's cli.py writes it
                    into a pipe

    python bench/imports.py [--quick] [--events N] [--baseline REV]

Ends with `ratio import_vs_before VALUE`, `ratio import_without_writes_vs_before VALUE`
(read+plan+store + feeds render: the work that is not the disk's), `ratio
call_list_vs_before VALUE` and `ratio import_at_disk_floor_vs_before VALUE` (the best the import
could do on this disk: ours with its feed writes at the time the smallest loop takes to write as
many files): the time before divided by the time now, higher is better (the issue asks for 10).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import inspect
import io
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import print_table, ratio

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "1f53f19c7b9f48bed905b96bc53c77f9f0aadbb8"  # the last commit before the rework
ZONES = ["America/New_York", "Europe/Brussels", "Africa/Cairo", "Asia/Jakarta",
         "America/Los_Angeles", "Africa/Addis_Ababa", "Asia/Kolkata", "America/Sao_Paulo"]


def write_calendar(path: Path, events: int) -> None:
    """`events` one-off meetings through 2027, an hour each, in eight zones (TZID, no
    VTIMEZONE, as many exports write them), with a description and a join link."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//bench//imports//EN"]
    first = datetime(2027, 1, 4, 8, tzinfo=UTC)  # only its wall time is written
    for n in range(events):
        zone = ZONES[n % len(ZONES)]
        start = first + timedelta(days=n % 360, hours=n % 9)  # 8:00 to 16:00: never in a gap
        lines += ["BEGIN:VEVENT", f"UID:bench-{n}@example.org", "DTSTAMP:20261201T000000Z",
                  f"SUMMARY:Working group {n}",
                  "DESCRIPTION:Agenda: reports from each region\\, then open questions.",
                  f"LOCATION:https://meet.example.org/wg-{n}",
                  f"DTSTART;TZID={zone}:{start:%Y%m%dT%H%M%S}",
                  f"DTEND;TZID={zone}:{start + timedelta(hours=1):%Y%m%dT%H%M%S}",
                  "END:VEVENT"]
    lines.append("END:VCALENDAR")
    path.write_text("\r\n".join(lines) + "\r\n")


def child(tree: Path, calendar: Path, folder: Path) -> dict[str, float]:
    """One tree's times, in this process (its `scheduler` first on the path)."""
    sys.path.insert(0, str(tree))
    from sqlmodel import Session

    import cli  # this tree's: how it writes JSON
    from scheduler import config, importer, present
    from scheduler.delivery import feeds
    from scheduler.store import db

    gc.freeze()  # as `coalition` does once loaded (scheduler/entry.py); the same for both trees
    shutil.copy(tree / "config.toml", folder / "config.toml")
    settings = config.load(folder / "config.toml")
    engine = db.make_engine(settings.database_url())
    db.migrate(engine)  # what `coalition init` does
    now = datetime(2026, 12, 1, tzinfo=UTC)
    times: dict[str, float] = {}
    with Session(engine, expire_on_commit=False) as session:
        began = time.monotonic()
        if "source" in inspect.signature(importer.import_file).parameters:  # this tree
            importer.import_file(session, settings, calendar.read_bytes(),
                                 source=str(calendar), now=now)
        else:  # the baseline read the file itself
            importer.import_file(session, settings, calendar, now=now)
        times["store"] = time.monotonic() - began
        began = time.monotonic()
        feeds.build(session, settings)
        times["build"] = time.monotonic() - began
    with Session(engine, expire_on_commit=False) as session:
        began = time.monotonic()
        feeds.render_all(session, settings)
        times["render"] = time.monotonic() - began
    with Session(engine, expire_on_commit=False) as session:
        began = time.monotonic()
        rows = present.listing(session, now)
        listed = [present.call_dict(r.call, settings, r.next, error=r.error) for r in rows]
        with contextlib.redirect_stdout(io.StringIO()) as out:  # piped, as a script reads it
            cli._json(listed)
        text = out.getvalue()
        times["list"] = time.monotonic() - began
    engine.dispose()
    times["calls"] = float(len(listed))
    times["bytes"] = float(len(text))
    return times


def disk(files: int, size: int) -> float:
    """The least any program spends putting `files` new files of `size` bytes where readers
    see whole ones: each written under a temporary name and renamed, in an empty folder on the
    same disk as the trees' feeds, nothing else done. The feed writes cannot go below it."""
    folder = Path(tempfile.mkdtemp(prefix="bench-imports-disk-"))
    data = b"x" * size
    try:
        began = time.monotonic()
        for n in range(files):
            temporary = folder / f".{n}.ics.tmp"
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(descriptor, data)
            os.close(descriptor)
            os.replace(temporary, folder / f"{n}.ics")
        return time.monotonic() - began
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(tree: Path, calendar: Path) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="bench-imports-"))
    try:
        ran = subprocess.run([sys.executable, __file__, "--child", str(tree), str(calendar),
                              str(folder)], capture_output=True, text=True, cwd=folder,
                             env={k: v for k, v in os.environ.items()
                                  if k not in ("COALITION_DATABASE_URL", "COALITION_CONFIG")})
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if ran.returncode != 0:
        raise SystemExit(f"{tree} failed:\n{ran.stderr[-3000:]}")
    result: dict[str, float] = json.loads(ran.stdout.strip().splitlines()[-1])
    return result


def baseline_tree(revision: str, into: Path) -> Path:
    """The scheduler package, cli.py and config.toml as they were at `revision` (its own cli.py:
    this tree's imports modules the older package does not have)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "scheduler",
                              "cli.py", "config.toml"], capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"git archive {revision}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 events instead of 10,000")
    parser.add_argument("--events", type=int)
    parser.add_argument("--baseline", default=BASELINE, help="the commit to compare with")
    parser.add_argument("--child", nargs=3, metavar=("TREE", "CALENDAR", "FOLDER"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tree, calendar, folder = (Path(p) for p in args.child)
        result = child(tree, calendar, folder)
        result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    events = args.events or (2000 if args.quick else 10_000)
    work = Path(tempfile.mkdtemp(prefix="bench-imports-"))
    try:
        calendar = work / "export.ics"
        write_calendar(calendar, events)
        before = baseline_tree(args.baseline, (work / "before"))
        results = {"before": run(before, calendar), "now": run(ROOT, calendar)}
        writes_floor = disk(events + 1, 1500)  # a feed of one event is about 1.5 KB
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for r in results.values():
        r["import"] = r["store"] + r["build"]
        r["writes"] = max(r["build"] - r["render"], 0.0)
    print(f"coalition import of {events:,} one-off events in eight zones, then call list "
          f"--json; before = {args.baseline[:10]}; SQLite, {os.cpu_count()} cores")
    print_table(["tree", "read+plan+store s", "feeds render s", "feeds writes s", "import s",
                 "call list --json s", "peak RSS MB"],
                [[name, f"{r['store']:.2f}", f"{r['render']:.2f}", f"{r['writes']:.2f}",
                  f"{r['import']:.2f}", f"{r['list']:.2f}", f"{r['rss_mb']:.0f}"]
                 for name, r in results.items()])
    print(f"the disk alone: {events + 1:,} files of 1.5 KB written and renamed by the "
          f"smallest loop in {writes_floor:.2f} s (the floor under \"feeds writes\")")
    old, new = results["before"], results["now"]
    ratio("import_vs_before", old["import"] / new["import"])
    ratio("import_without_writes_vs_before",
          (old["store"] + old["render"]) / (new["store"] + new["render"]))
    ratio("call_list_vs_before", old["list"] / new["list"])
    # What the import's ratio could be at best on this disk: ours with the writes at the floor.
    ratio("import_at_disk_floor_vs_before",
          old["import"] / (new["store"] + new["render"] + writes_floor))


if __name__ == "__main__":
    main()
