"""Feed serving: wrk against /calendars/all.ics (200 calls with their overrides), from the
daemon and from nginx serving the same file from calendars/ (the ceiling), plain and with
If-None-Match (what a polling calendar client sends).

    python bench/feeds.py [--quick] [--calls N]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import free_port, print_table, ratio

ROOT = Path(__file__).resolve().parent.parent
WRK, NGINX = "/usr/bin/wrk", "/usr/sbin/nginx"
ZONES = ["America/New_York", "Europe/Brussels", "Africa/Cairo", "Asia/Jakarta",
         "America/Los_Angeles", "Africa/Addis_Ababa", "Asia/Kolkata", "America/Sao_Paulo"]


def service(folder: Path, count: int) -> Path:
    """A config.toml and database with `count` recurring calls, a tenth of them with a moved
    and a cancelled occurrence; the feeds built."""
    from sqlmodel import Session

    from scheduler import config
    from scheduler.core.zones import get_zone
    from scheduler.delivery import feeds
    from scheduler.store import calls, db

    text = (ROOT / "config.toml").read_text()
    (folder / "config.toml").write_text(text)
    settings = config.load(folder / "config.toml")
    engine = db.make_engine(settings.database_url())
    db.migrate(engine)  # what `coalition init` does
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with Session(engine) as session:
        for number in range(count):
            zone = ZONES[number % len(ZONES)]
            rule = "FREQ=WEEKLY" if number % 2 else "FREQ=MONTHLY"
            start = now + timedelta(days=number % 28, hours=number % 9)
            call = calls.add_call(session, settings, calls.CallInput(
                title=f"Working group {number}", timezone=zone, rrule=rule,
                start=start.astimezone(get_zone(zone)).strftime("%Y-%m-%d %H:%M"),
                description="Agenda: reports from each region, then open questions."),
                now=now)
            if number % 10 == 0:
                first = calls.call_occurrences(session, call, now=now, count=3)
                day = first[1].local_start
                calls.move_occurrence(session, call.slug,
                                      on=day.strftime("%Y-%m-%d"),
                                      to=(day + timedelta(days=1)).strftime("%Y-%m-%d %H:%M"),
                                      now=now)
                calls.cancel_occurrence(session, call.slug,
                                        on=first[2].local_start.strftime("%Y-%m-%d"), now=now)
        feeds.build(session, settings)
    engine.dispose()
    return folder / "config.toml"


def wrk(url: str, seconds: int, etag: str | None = None) -> float:
    command = [WRK, "-t2", "-c64", f"-d{seconds}s", url]
    if etag:
        command[1:1] = ["-H", f"If-None-Match: {etag}"]
    ran = subprocess.run(command, capture_output=True, text=True, check=True)
    found = re.search(r"Requests/sec:\s+([\d.]+)", ran.stdout)
    if not found or ("Non-2xx" in ran.stdout and not etag):
        raise SystemExit(f"wrk said:\n{ran.stdout}")
    return float(found.group(1))


def etag_of(url: str) -> str:
    import httpx

    response = httpx.get(url)
    response.raise_for_status()
    return response.headers["etag"]


def start_ours(config: Path) -> tuple[subprocess.Popen[str], str]:
    command = shutil.which("coalition", path=str(Path(sys.executable).parent))
    assert command
    port = free_port()
    process = subprocess.Popen([command, "--config", str(config), "daemon", "--port",
                                str(port)], stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("ready:"):
            break
    else:
        raise SystemExit("the daemon did not start")
    # keep draining its log so that it never blocks on a full pipe
    threading.Thread(target=process.stderr.read, daemon=True).start()
    return process, f"http://127.0.0.1:{port}"


def start_nginx(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    conf = folder / "nginx.conf"
    user = "user nobody nogroup;" if os.geteuid() == 0 else ""
    conf.write_text(f"""{user}
worker_processes auto;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    types {{ text/calendar ics; }}
    client_body_temp_path {folder}/tmp; proxy_temp_path {folder}/tmp;
    fastcgi_temp_path {folder}/tmp; uwsgi_temp_path {folder}/tmp; scgi_temp_path {folder}/tmp;
    server {{
        listen 127.0.0.1:{port};
        location /calendars/ {{ alias {folder}/calendars/; }}
    }}
}}
""")
    (folder / "tmp").mkdir(exist_ok=True)
    os.chmod(folder, 0o755)
    process = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(folder), "-g",
                                "daemon off;"])
    url = f"http://127.0.0.1:{port}"
    import httpx
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/calendars/all.ics").raise_for_status()
            return process, url
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit(f"nginx did not start: {(folder / 'nginx-error.log').read_text()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s per run instead of 10 s")
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    for tool in (WRK, NGINX):
        if not Path(tool).exists():
            raise SystemExit(f"{tool} is missing: apt-get install wrk nginx (make bench does)")
    seconds = 3 if args.quick else 10
    folder = Path(tempfile.mkdtemp(prefix="bench-feeds-"))
    try:
        config = service(folder, args.calls)
        size = (folder / "calendars" / "all.ics").stat().st_size
        ours, ours_url = start_ours(config)
        nginx, nginx_url = start_nginx(folder)
        try:
            results = {}
            for name, url in (("ours", ours_url), ("nginx", nginx_url)):
                feed = url + "/calendars/all.ics"
                results[name] = (wrk(feed, seconds), wrk(feed, seconds, etag_of(feed)))
        finally:
            for process in (ours, nginx):
                process.terminate()
                process.wait()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"GET /calendars/all.ics: {args.calls} calls, {size / 1024:.0f} KiB, wrk -t2 -c64 "
          f"{seconds}s ({os.cpu_count()} cores)")
    print_table(["server", "plain req/s", "If-None-Match req/s"],
                [[name, f"{plain:.0f}", f"{cached:.0f}"]
                 for name, (plain, cached) in results.items()])
    ratio("feed_plain_vs_nginx", results["ours"][0] / results["nginx"][0])
    ratio("feed_if_none_match_vs_nginx", results["ours"][1] / results["nginx"][1])


if __name__ == "__main__":
    main()
