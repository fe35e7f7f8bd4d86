"""Fan-out: "starts in 30 minutes" to many subscribers through Postfix's smtp-sink.

Senders push the same number of messages to the same sink, one after the other:

  ours          the daemon's send passes (claim, render, SMTP, record each message), on
                SQLite, the embedded default
  transport     our SMTP transport alone (`channels.smtp.Smtp`, pipelining), prebuilt
                messages, no database
  wire ceiling  the least a pipelining client can do: prebuilt bytes, MAIL, RCPT and DATA in
                one write, the content with the next message's commands, replies counted
  aiosmtplib    aiosmtplib alone, `[email.smtp] connections` reused connections, a round
                trip per command (it cannot pipeline)
  smtplib       a hand-written cron script: one smtplib connection per message
  smtp-source   Postfix's own load generator (16 sessions)

Then ours and the transport again, for 2,000 messages, through a relay in user space that
delays each direction by 10 ms (a 20 ms round trip, a provider's relay far away): with one
round trip a message, the bound is messages x 20 ms / connections.

With `--postgres URL` (a server, e.g. postgresql://postgres@127.0.0.1:5432/test), also ours on
PostgreSQL from one daemon and from `--replicas` (2) daemons sharing the work, each run in a
database of its own, created and dropped by the bench.

Each sender runs in a process of its own, so that its peak RSS is its own (for several daemons,
the largest). Every member's delivery must end sent, or the bench fails. Prints a table
and `ratio NAME VALUE` lines (ours divided by the baseline; higher is better); the machine
may be busy with other work, so compare the ratios, which are measured in the same run.

    python bench/fanout.py [--quick] [--members N] [--no-relay] [--postgres URL [--replicas N]]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import gc
import json
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import database, free_port, percentile, print_table, ratio

if TYPE_CHECKING:
    from scheduler.channels.mail import Outgoing
    from scheduler.config import Settings

T = TypeVar("T")

SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
ROOT = Path(__file__).resolve().parent.parent
RELAYED = 2000  # messages through the delaying relay
DELAY = 0.010  # seconds, each direction
SENDER = "calls@example.org"


def connections() -> int:
    return int(os.environ.get("BENCH_CONNECTIONS", "4"))


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


def prepare(folder: Path, members: int, port: int, url: str | None) -> datetime:
    """config.toml (SMTP to the sink), one call, `members` confirmed members, and the
    reminder queued before it falls due, as the daemon does; returns its due time."""
    from sqlmodel import Session

    from scheduler.delivery import sender
    from scheduler.store import calls, db, subscribers

    text = (ROOT / "config.toml").read_text()
    text = text.replace('transport = "maildir"', 'transport = "smtp"', 1)
    text = text.replace("port = 25", f"port = {port}", 1)
    text = text.replace("connections = 4", f"connections = {connections()}", 1)
    (folder / "config.toml").write_text(text)
    settings = load(folder, url)
    engine = db.make_engine(settings.database_url())
    db.migrate(engine)  # what `coalition init` does
    start = (datetime.now(UTC) + timedelta(days=1)).replace(second=0, microsecond=0)
    setup = start - timedelta(days=2)
    due = start - timedelta(minutes=30)
    with Session(engine, expire_on_commit=False) as session:
        calls.add_call(session, settings, calls.CallInput(
            title="Fan-out call", start=start.strftime("%Y-%m-%d %H:%M"), timezone="UTC"),
            now=setup)
        for number in range(members):
            subscribers.add(session, settings, subscribers.NewSubscriber(
                email=f"member{number}@example.org"), now=setup, commit=False)
        session.commit()
        # the day-before reminder is sent here, before the one measured
        earlier = due - timedelta(minutes=settings.daemon.queue_minutes - 10)
        sender.run_once(session, settings, now=earlier, worker="bench")
        while sender.send_pass(session, settings, now=earlier, worker="bench"):
            pass
    engine.dispose()
    return due


def load(folder: Path, url: str | None) -> Settings:
    """The bench's config.toml, on PostgreSQL at `url` or on its own SQLite file."""
    from scheduler import config

    os.environ.pop("COALITION_DATABASE_URL", None)
    if url:
        os.environ["COALITION_DATABASE_URL"] = url
    return config.load(folder / "config.toml")


def lateness(folder: Path, members: int, url: str | None) -> tuple[float, float]:
    """p50 and p99 of sent_at - due_at; every member's message sent, once."""
    from sqlmodel import Session, select

    from scheduler.store import db
    from scheduler.store.models import Delivery

    engine = db.open_database(load(folder, url).database_url())
    with Session(engine) as session:
        rows = session.exec(select(Delivery).where(
            Delivery.rule == "starts-soon", Delivery.channel == "email")).all()
    engine.dispose()
    late = sorted((r.sent_at - r.due_at).total_seconds() for r in rows
                  if r.status == "sent" and r.sent_at is not None)
    if len(late) != members or len(rows) != members:
        raise SystemExit(f"ours: {len(late)} of {members} sent ({len(rows)} deliveries)")
    return percentile(late, 50), percentile(late, 99)


def child_send(folder: Path, due: datetime, worker: str) -> float:
    """One daemon's send passes until nothing is left to claim. Says "ready" once loaded, then
    waits for the parent's start time on stdin (so that no sender's start-up is measured). The
    bench's clock: the due time plus the wall-clock time since that start. Returns when it
    ended (wall clock)."""
    from sqlmodel import Session

    from scheduler.delivery import sender
    from scheduler.delivery.render import Templates
    from scheduler.store import db

    settings = load(folder, os.environ.get("BENCH_DATABASE") or None)
    engine = db.open_database(settings.database_url())
    templates = Templates(settings.template_folders)  # the daemon's, kept between passes
    gc.freeze()  # as `coalition run` does once loaded
    print("ready", flush=True)
    began = float(sys.stdin.readline())

    def clock() -> datetime:
        return due + timedelta(seconds=time.time() - began)

    profile = cProfile.Profile() if os.environ.get("BENCH_PROFILE") else None
    with Session(engine, expire_on_commit=False) as session:  # as the daemon does
        if profile:
            profile.enable()
        while sender.send_pass(session, settings, now=clock(), worker=worker, clock=clock,
                               templates=templates):
            pass
        ended = time.time()
        if profile:
            profile.disable()
            stats = pstats.Stats(profile, stream=sys.stderr)
            stats.sort_stats(os.environ["BENCH_PROFILE"]).print_stats(40)
    return ended


def run_ours(members: int, port: int, replicas: int, url: str | None) -> dict[str, float]:
    """`replicas` daemons' send passes, each a process of its own, on one database. Setting up
    and checking run in processes of their own too, so that this one stays small (a child's
    peak RSS starts from its parent's)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    env = {**os.environ, "BENCH_DATABASE": url or ""}

    def child(*words: str) -> str:
        ran = subprocess.run([sys.executable, __file__, "--members", str(members), "--port",
                              str(port), "--folder", str(folder), "--child", *words],
                             capture_output=True, text=True, env=env)
        if ran.returncode != 0:
            raise SystemExit(f"{words[0]} failed:\n{ran.stderr[-2000:]}")
        return ran.stdout.strip().splitlines()[-1]

    senders: list[subprocess.Popen[str]] = []
    try:
        due = child("prepare")
        senders = [subprocess.Popen(
            [sys.executable, __file__, "--child", "send", "--folder", str(folder),
             "--due", due, "--worker", f"replica{number}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
            for number in range(replicas)]
        for process in senders:
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise SystemExit("a sender did not start")
        began = time.time()
        for process in senders:
            assert process.stdin is not None
            process.stdin.write(f"{began!r}\n")
            process.stdin.flush()
        rss = ended = 0.0
        for process in senders:
            out, _ = process.communicate()
            if process.returncode != 0:
                raise SystemExit("a sender failed (its error is above)")
            said = json.loads(out.strip().splitlines()[-1])
            rss, ended = max(rss, said["rss_mb"]), max(ended, said["ended"])
        seconds = ended - began
        result = json.loads(child("check"))
    finally:
        for process in senders:  # after a failure, none is left sending
            if process.poll() is None:
                process.kill()
                process.wait()
        shutil.rmtree(folder, ignore_errors=True)
    return {"seconds": seconds, "p50": result["p50"], "p99": result["p99"], "rss_mb": rss}


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


def prebuilt(members: int) -> list[Outgoing]:
    """Messages of smtp-source's size (4,000 bytes), one per member, built before the clock
    starts."""
    from scheduler.channels.mail import Outgoing

    head = (f"From: Coalition calls <{SENDER}>\r\nSubject: Fan-out call starts in 30 "
            "minutes\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n")
    line = "The call starts in 30 minutes; join at https://meet.example.org/call.\r\n"
    return [Outgoing(message_id=f"<fanout.{n}@example.org>", recipient=address,
                     data=(f"{head}To: {address}\r\nMessage-ID: <fanout.{n}@example.org>"
                           f"\r\n\r\n{line * 50}").encode()[:4000] + b"\r\n")
            for n, address in ((n, f"member{n}@example.org") for n in range(members))]


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """The daemon's loop: uvloop where installed."""
    from scheduler import loop

    return loop.run(main)


def child_transport(members: int, port: int) -> dict[str, float]:
    """Our SMTP transport alone, as the daemon configures it, on prebuilt messages."""
    import dataclasses

    from scheduler import config
    from scheduler.channels.smtp import Smtp

    smtp = dataclasses.replace(config.parse({}, ROOT / "config.toml").smtp, port=port,
                               connections=connections())
    messages = prebuilt(members)
    late: list[float] = []
    began = time.monotonic()
    results = Smtp(smtp, sender=SENDER).send(
        messages, lambda result: late.append(time.monotonic() - began))
    seconds = time.monotonic() - began
    failed = [r for r in results if not r.ok]
    if failed or len(results) != members:
        raise SystemExit(f"transport: {len(failed)} failed, e.g. {failed[:1]}")
    return {"seconds": seconds, "p50": percentile(late, 50), "p99": percentile(late, 99)}


class WireClient(asyncio.Protocol):
    """The least a pipelining client does: prebuilt bytes written, replies counted (each must
    be 2xx or 3xx), none parsed beyond that."""

    def __init__(self, groups: list[tuple[bytes, bytes]], late: list[float], began: float,
                 done: asyncio.Future[None]) -> None:
        self.groups, self.late, self.began, self.done = groups, late, began, done
        self.buffer = b""
        self.expected, self.step = 1, -2  # the greeting, then EHLO's reply, then messages
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.WriteTransport", transport)

    def data_received(self, data: bytes) -> None:
        lines = (self.buffer + data).split(b"\r\n")
        self.buffer = lines.pop()
        for line in lines:
            if line[3:4] == b"-":
                continue
            if line[:1] not in (b"2", b"3"):
                self.done.set_exception(SystemExit(f"wire ceiling: {line!r}"))
                return
            self.expected -= 1
            if self.expected == 0:
                self.next()

    def next(self) -> None:
        assert self.transport is not None
        self.step += 1
        groups, step = self.groups, self.step
        if step == -1:
            self.transport.write(b"EHLO bench.example.org\r\n")
            self.expected = 1
        elif step == 0:
            self.transport.write(groups[0][0])
            self.expected = 3
        elif step < len(groups):  # the previous content and the next commands: 4 replies
            self.late.append(time.monotonic() - self.began)
            self.transport.write(groups[step - 1][1] + groups[step][0])
            self.expected = 4
        elif step == len(groups):
            self.late.append(time.monotonic() - self.began)
            self.transport.write(groups[step - 1][1] + b"QUIT\r\n")
            self.expected = 2
        else:
            self.late.append(time.monotonic() - self.began)
            self.transport.close()
            self.done.set_result(None)


def child_wire(members: int, port: int) -> dict[str, float]:
    from scheduler.channels.pipelining import content

    messages = prebuilt(members)
    groups = [(b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (
        SENDER.encode(), m.recipient.encode()), content(m.data)) for m in messages]
    count = connections()
    late: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        began = time.monotonic()
        dones = []
        for number in range(count):
            done = loop.create_future()
            mine = groups[number::count]
            await loop.create_connection(
                functools.partial(WireClient, mine, late, began, done), "127.0.0.1", port)
            dones.append(done)
        await asyncio.gather(*dones)

    began = time.monotonic()
    run_loop(main())
    seconds = time.monotonic() - began
    return {"seconds": seconds, "p50": percentile(late, 50), "p99": percentile(late, 99)}


def child_aiosmtplib(members: int, port: int) -> dict[str, float]:
    """aiosmtplib alone, `connections` connections each sending its share, one after the
    other (what pipelining replaces)."""
    import aiosmtplib

    messages = prebuilt(members)
    count = connections()
    late: list[float] = []

    async def main() -> None:
        began = time.monotonic()

        async def share(number: int) -> None:
            async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False) as smtp:
                for m in messages[number::count]:
                    await smtp.sendmail(SENDER, [m.recipient], m.data)
                    late.append(time.monotonic() - began)

        await asyncio.gather(*(share(n) for n in range(count)))

    began = time.monotonic()
    run_loop(main())
    return {"seconds": time.monotonic() - began, "p50": percentile(late, 50),
            "p99": percentile(late, 99)}


BASELINES = {"transport": child_transport, "wire ceiling": child_wire,
             "aiosmtplib": child_aiosmtplib, "smtplib": child_smtplib,
             "smtp-source": child_smtp_source}


def child_relay(port: int) -> None:
    """A TCP relay to 127.0.0.1:`port` that holds every chunk DELAY seconds each way, in
    order. Prints the port it listens on, then runs until it is killed."""

    async def carry(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def forward() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(due - loop.time())
                if not data:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        forwarding = asyncio.create_task(forward())
        try:
            while data := await reader.read(65536):
                queue.put_nowait((loop.time() + DELAY, data))
        except OSError:
            pass
        queue.put_nowait((loop.time() + DELAY, b""))
        await forwarding

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(carry(reader, upstream_writer), carry(upstream_reader, writer))

    async def main() -> None:
        server = await asyncio.start_server(client, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    run_loop(main())


def start_relay(port: int) -> tuple[subprocess.Popen[str], int]:
    relay = subprocess.Popen([sys.executable, __file__, "--child", "relay", "--port", str(port)],
                             stdout=subprocess.PIPE, text=True)
    assert relay.stdout is not None
    return relay, int(relay.stdout.readline())


def run_baseline(name: str, members: int, port: int) -> dict[str, float]:
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
    parser.add_argument("--postgres", metavar="URL",
                        help="also send from 1 and --replicas daemons on this PostgreSQL server")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--no-relay", action="store_true",
                        help="leave out the runs through the 10 ms relay")
    parser.add_argument("--child", choices=["prepare", "send", "check", "relay", *BASELINES])
    parser.add_argument("--port", type=int)
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--due", type=datetime.fromisoformat)
    parser.add_argument("--worker")
    args = parser.parse_args()
    members = args.members or (1000 if args.quick else 10000)
    url = os.environ.get("BENCH_DATABASE") or None
    if args.child == "prepare":
        print(prepare(args.folder, members, args.port, url).isoformat())
        return
    if args.child == "check":
        p50, p99 = lateness(args.folder, members, url)
        print(json.dumps({"p50": p50, "p99": p99}))
        return
    if args.child == "relay":
        child_relay(args.port)
        return
    if args.child:
        result = (BASELINES[args.child](members, args.port) if args.child in BASELINES else {})
        if args.child == "send":
            result["ended"] = child_send(args.folder, args.due, args.worker)
        result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    for tool in (SMTP_SINK, SMTP_SOURCE):
        if not Path(tool).exists():
            raise SystemExit(f"{tool} is missing: apt-get install postfix (make bench does)")
    port = free_port()
    sink = start_sink(port)
    relayed: dict[str, dict[str, float]] = {}
    try:  # the baselines first: this process stays small until then (see run_ours)
        baselines = {name: run_baseline(name, members, port) for name in BASELINES}
        if not args.no_relay:
            relay, relay_port = start_relay(port)
            try:
                relayed["transport, 10 ms relay"] = run_baseline("transport", RELAYED,
                                                                 relay_port)
                relayed["ours, 10 ms relay"] = run_ours(RELAYED, relay_port, 1, None)
            finally:
                relay.kill()
                relay.wait()
        results = {"ours": run_ours(members, port, 1, None)}
        for replicas in (1, args.replicas) if args.postgres else ():
            with database(args.postgres, "bench_fanout") as url:
                name = f"ours, PostgreSQL, {replicas} daemon{'s' if replicas > 1 else ''}"
                results[name] = run_ours(members, port, replicas, url)
        results.update(baselines)
    finally:
        sink.terminate()
        sink.wait()
    rows = []
    count = {**dict.fromkeys(results, members), **dict.fromkeys(relayed, RELAYED)}
    for name, r in {**results, **relayed}.items():
        rows.append([name, f"{count[name]}", f"{r['seconds']:.2f}",
                     f"{count[name] / r['seconds']:.0f}", f"{r['p50']:.2f}", f"{r['p99']:.2f}",
                     f"{r['rss_mb']:.0f}"])
    print(f"Fan-out of one reminder to {members} subscribers through smtp-sink "
          f"({os.cpu_count()} cores, {connections()} connections)")
    print_table(["sender", "messages", "seconds", "msg/s", "p50 late s", "p99 late s",
                 "peak RSS MB"], rows)
    rate = {name: members / r["seconds"] for name, r in results.items()}
    ratio("fanout_vs_smtplib", rate["ours"] / rate["smtplib"])
    ratio("fanout_vs_smtp_source", rate["ours"] / rate["smtp-source"])
    ratio("fanout_vs_wire_ceiling", rate["ours"] / rate["wire ceiling"])
    ratio("transport_vs_wire_ceiling", rate["transport"] / rate["wire ceiling"])
    ratio("fanout_vs_aiosmtplib", rate["ours"] / rate["aiosmtplib"])
    bound = RELAYED * 2 * DELAY / connections()  # one round trip a message
    for name, r in relayed.items():
        label = name.partition(",")[0]
        ratio(f"{label}_10ms_relay_round_trip_bound_vs_time", bound / r["seconds"])
    if args.postgres:
        one = rate["ours, PostgreSQL, 1 daemon"]
        many = rate[f"ours, PostgreSQL, {args.replicas} daemons"]
        ratio(f"fanout_{args.replicas}_daemons_vs_1", many / one)


if __name__ == "__main__":
    main()
