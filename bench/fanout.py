"""Fan-out: "starts in 30 minutes" to many subscribers through Postfix's smtp-sink.

Three senders push the same number of messages to the same sink, one after the other:

  ours          the daemon's send passes (claim, render, aiosmtplib, record each message)
  smtplib       a hand-written cron script: one smtplib connection per message
  smtp-source   Postfix's own load generator (the practical ceiling of this machine)

Each runs in a process of its own, so that its peak RSS is its own. Prints a table and
`ratio NAME VALUE` lines (ours divided by the baseline; higher is better).

    python bench/fanout.py [--quick] [--members N]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import free_port, percentile, print_table, ratio

SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
ROOT = Path(__file__).resolve().parent.parent


def start_sink(port: int) -> subprocess.Popen[bytes]:
    """smtp-sink, accepting everything, with a deep backlog; as root it needs a user."""
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    sink = subprocess.Popen([SMTP_SINK, *user, "-c", f"127.0.0.1:{port}", "1024"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    import socket
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return sink
        except OSError:
            time.sleep(0.05)
    sink.kill()
    raise SystemExit("smtp-sink did not start")


# --- the contenders, each run as `fanout.py --child NAME` -----------------------------------


def child_ours(members: int, port: int) -> dict[str, float]:
    from sqlmodel import Session, col, select

    from scheduler import calls, config, db, sender, subscribers
    from scheduler.models import Delivery

    folder = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    text = (ROOT / "config.toml").read_text()
    text = text.replace('transport = "maildir"', 'transport = "smtp"', 1)
    text = text.replace("port = 25", f"port = {port}", 1)
    connections = os.environ.get("BENCH_CONNECTIONS", "4")
    text = text.replace("connections = 4", f"connections = {connections}", 1)
    (folder / "config.toml").write_text(text)
    settings = config.load(folder / "config.toml")
    engine = db.open_database(settings.database_url())
    start = (datetime.now(UTC) + timedelta(days=1)).replace(second=0, microsecond=0)
    setup = start - timedelta(days=2)
    with Session(engine, expire_on_commit=False) as session:
        calls.add_call(session, settings, calls.CallInput(
            title="Fan-out call", start=start.strftime("%Y-%m-%d %H:%M"), timezone="UTC"),
            now=setup)
        for number in range(members):
            subscribers.add(session, settings, subscribers.NewSubscriber(
                email=f"member{number}@example.org"), now=setup, commit=False)
        session.commit()
        due = start - timedelta(minutes=30)
        # queued before it falls due, as the daemon does; the day-before reminder goes out first
        earlier = due - timedelta(minutes=settings.daemon.queue_minutes - 10)
        sender.run_once(session, settings, now=earlier, worker="bench")
        while sender.send_pass(session, settings, now=earlier, worker="bench"):
            pass
    # The bench's clock: "now" is the due time plus what has really elapsed since we began.
    began = time.monotonic()

    def clock() -> datetime:
        return due + timedelta(seconds=time.monotonic() - began)

    profile = cProfile.Profile() if os.environ.get("BENCH_PROFILE") else None
    with Session(engine, expire_on_commit=False) as session:  # as the daemon does
        if profile:
            profile.enable()
        while sender.send_pass(session, settings, now=clock(), worker="bench", clock=clock):
            pass
        if profile:
            profile.disable()
            stats = pstats.Stats(profile, stream=sys.stderr)
            stats.sort_stats(os.environ["BENCH_PROFILE"]).print_stats(40)
        rows = session.exec(select(Delivery).where(
            Delivery.rule == "starts-soon", Delivery.channel == "email")).all()
        late = sorted((r.sent_at - r.due_at).total_seconds() for r in rows
                      if r.sent_at is not None)
        pending = session.exec(select(Delivery.id).where(
            col(Delivery.status) == "pending", Delivery.rule == "starts-soon")).all()
    elapsed = time.monotonic() - began
    shutil.rmtree(folder)
    if len(late) != members or pending:
        raise SystemExit(f"ours: {len(late)} of {members} sent, {len(pending)} pending")
    return {"seconds": elapsed, "p50": percentile(late, 50), "p99": percentile(late, 99)}


def child_smtplib(members: int, port: int) -> dict[str, float]:
    import smtplib
    from email.message import EmailMessage

    began = time.monotonic()
    late = []
    for number in range(members):
        message = EmailMessage()
        message["From"] = "Coalition calls <calls@example.org>"
        message["To"] = f"member{number}@example.org"
        message["Subject"] = "Fan-out call starts in 30 minutes"
        message.set_content("The call starts in 30 minutes.\n" * 20)
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.send_message(message)
        late.append(time.monotonic() - began)
    return {"seconds": time.monotonic() - began, "p50": percentile(late, 50),
            "p99": percentile(late, 99)}


def child_smtp_source(members: int, port: int) -> dict[str, float]:
    began = time.monotonic()
    subprocess.run([SMTP_SOURCE, "-c", "-s", "16", "-m", str(members), "-l", "4000",
                    "-f", "calls@example.org", "-t", "member@example.org",
                    f"127.0.0.1:{port}"], check=True, stdout=subprocess.DEVNULL)
    seconds = time.monotonic() - began
    # smtp-source has no per-message times; spread evenly, the n-th lands at n/N of the run
    return {"seconds": seconds, "p50": seconds / 2, "p99": seconds * 0.99}


CHILDREN = {"ours": child_ours, "smtplib": child_smtplib, "smtp-source": child_smtp_source}


def run_child(name: str, members: int, port: int) -> dict[str, float]:
    ran = subprocess.run([sys.executable, __file__, "--child", name, "--members", str(members),
                          "--port", str(port)], capture_output=True, text=True)
    if ran.returncode != 0:
        raise SystemExit(f"{name} failed:\n{ran.stderr[-2000:]}")
    result: dict[str, float] = json.loads(ran.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 members instead of 10,000")
    parser.add_argument("--members", type=int)
    parser.add_argument("--child", choices=sorted(CHILDREN))
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    members = args.members or (1000 if args.quick else 10000)
    if args.child:
        result = CHILDREN[args.child](members, args.port)
        result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    for tool in (SMTP_SINK, SMTP_SOURCE):
        if not Path(tool).exists():
            raise SystemExit(f"{tool} is missing: apt-get install postfix (make bench does)")
    port = free_port()
    sink = start_sink(port)
    try:
        results = {name: run_child(name, members, port) for name in CHILDREN}
    finally:
        sink.terminate()
        sink.wait()
    rows = []
    for name, r in results.items():
        rows.append([name, f"{members}", f"{r['seconds']:.2f}", f"{members / r['seconds']:.0f}",
                     f"{r['p50']:.2f}", f"{r['p99']:.2f}", f"{r['rss_mb']:.0f}"])
    print(f"Fan-out of one reminder to {members} subscribers through smtp-sink "
          f"({os.cpu_count()} cores)")
    print_table(["sender", "messages", "seconds", "msg/s", "p50 late s", "p99 late s",
                 "peak RSS MB"], rows)
    rate = {name: members / r["seconds"] for name, r in results.items()}
    ratio("fanout_vs_smtplib", rate["ours"] / rate["smtplib"])
    ratio("fanout_vs_smtp_source", rate["ours"] / rate["smtp-source"])


if __name__ == "__main__":
    main()
