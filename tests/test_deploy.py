"""The deployment kit in deploy/: the systemd unit, the nginx site, and the daemon's trust in
X-Forwarded-For, which the two must agree on.

`systemd-analyze` and `nginx` are used where they are installed; elsewhere those tests skip
and say why, unless COALITION_REQUIRE_SYSTEMD=1 or COALITION_REQUIRE_NGINX=1 turns the skip
into a failure (as .ci/run does for PostgreSQL).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest
import trustme
from starlette.types import Receive, Scope, Send

from scheduler import config, daemon
from tests.conftest import ROOT, Coalition, ConfigCase, free_port
from tests.daemon_process import start, stop

DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "coalition.service"
SITE = DEPLOY / "nginx.conf"
INSTALLED = "/usr/local/bin/coalition"  # where the README's pipx command puts it
STATE = "/var/lib/coalition"

def tool(name: str, variable: str) -> str:
    """The path of `name`, or a skip (a failure when `variable`=1) that says it is missing."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")
    if found:
        return found
    reason = f"{name} is not installed (Debian: apt-get install {name.split('-')[0]})"
    if os.environ.get(variable) == "1":
        pytest.fail(f"{reason}; {variable}=1 requires it")
    pytest.skip(reason)


def unit_settings(section: str | None = None) -> dict[str, list[str]]:
    """The unit's `Key=value` lines (of one [section], or of all), every value of each key."""
    found: dict[str, list[str]] = {}
    current = None
    for line in UNIT.read_text().splitlines():
        if line.startswith("["):
            current = line.strip("[]")
        elif "=" in line and not line.startswith("#") and section in (None, current):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def seconds(span: str) -> float:
    """A systemd time span of one number and unit, as the unit writes them ("10s", "10min")."""
    found = re.fullmatch(r"(\d+)(s|min|h)?", span)
    assert found, f"{span!r}: write it as a number and s, min or h"
    return int(found[1]) * {None: 1, "s": 1, "min": 60, "h": 3600}[found[2]]


def coalition_command() -> str:
    command = shutil.which("coalition", path=str(Path(sys.executable).parent))
    assert command
    return command


# --- the systemd unit


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """Verified as installed, except that the program is this checkout's `coalition`:
    systemd-analyze refuses an ExecStart whose file does not exist."""
    analyze = tool("systemd-analyze", "COALITION_REQUIRE_SYSTEMD")
    text = UNIT.read_text()
    assert f"\nExecStart={INSTALLED} daemon\n" in text
    copy = tmp_path / "coalition.service"
    copy.write_text(text.replace(f"ExecStart={INSTALLED} ", f"ExecStart={coalition_command()} "))
    ran = subprocess.run([analyze, "verify", "--man=no", str(copy)], capture_output=True,
                         text=True, timeout=120, check=False)
    # verify only warns (exit 0) about a misspelled key or a bad value: any output is a fault
    assert (ran.returncode, ran.stdout + ran.stderr) == (0, "")


def test_the_unit_is_sandboxed_as_systemd_rates_ok(tmp_path: Path) -> None:
    """systemd's own measure of what the service could do if it were taken over."""
    analyze = tool("systemd-analyze", "COALITION_REQUIRE_SYSTEMD")
    ran = subprocess.run([analyze, "security", "--offline=true", "--no-pager", str(UNIT)],
                         capture_output=True, text=True, timeout=120, check=False)
    found = re.search(r"Overall exposure level for coalition\.service: (\d+\.\d+) (\w+)",
                      ran.stdout)
    assert found, ran.stdout + ran.stderr
    assert float(found[1]) < 2.0 and found[2] == "OK", found[0]


def test_the_unit_runs_the_daemon_as_its_own_user_with_secrets_from_a_file() -> None:
    unit = unit_settings()
    assert unit["User"] == ["coalition"] and unit["Group"] == ["coalition"]
    assert unit["EnvironmentFile"] == ["/etc/coalition/env"]
    assert "COALITION_CONFIG=/etc/coalition/config.toml" in unit["Environment"]
    assert unit["StateDirectory"] == ["coalition"]
    assert unit["ProtectSystem"] == ["strict"] and unit["NoNewPrivileges"] == ["yes"]
    assert not any("init" in line for line in unit.get("ExecStartPre", [])), \
        "only an admin's `coalition init` may change the schema"


# How long an attempt to start takes to fail at most (Python's imports, the config, the database
# refusing) for the start limit to still be reached: the daemon exits 2 in about 1 to 5 s.
SLOWEST_FAILED_START = 20.0


def test_a_daemon_that_cannot_start_is_retried_for_minutes_then_left_failed() -> None:
    """The daemon exits 2 at start on a bad config or schema (for good) and on a database it
    cannot reach (an outage at boot, which passes). systemd retries for at least two minutes,
    then its start limit stops the loop: the default limit (5 starts in 10 s) is never reached
    with a RestartSec of seconds, which would restart the daemon forever and fill the journal."""
    service, unit = unit_settings("Service"), unit_settings("Unit")
    assert service["Restart"] == ["on-failure"]
    delay = seconds(service["RestartSec"][0])
    # the start limit's place is [Unit] (in [Service], StartLimitBurst= passes unnoticed)
    assert "StartLimitIntervalSec" not in service and "StartLimitBurst" not in service
    interval = seconds(unit["StartLimitIntervalSec"][0])
    (burst,) = [int(value) for value in unit["StartLimitBurst"]]
    retried_for = (burst - 1) * delay  # from the first failed start to the last one allowed
    assert retried_for >= 120, f"a database outage at boot gets only {retried_for:.0f} s"
    assert burst * (delay + SLOWEST_FAILED_START) < interval, \
        "the failed starts could spread beyond StartLimitIntervalSec=: restarted forever"
    assert interval <= 3600, "after a fix, a manual start could be refused for too long"


def test_the_env_example_names_every_secret_and_holds_none() -> None:
    example = (DEPLOY / "coalition.env.example").read_text()
    for name in ("COALITION_WEB_SECRET", "COALITION_SMTP_PASSWORD",
                 "COALITION_DISCOURSE_API_KEY", "COALITION_DATABASE_URL"):
        assert re.search(rf"^#?{name}=", example, re.MULTILINE), name
    values = re.findall(r"^(COALITION_\w+)=(.*)$", example, re.MULTILINE)
    assert dict(values) == {"COALITION_CONFIG": "/etc/coalition/config.toml",
                            "COALITION_SMTP_PASSWORD": "", "COALITION_DISCOURSE_API_KEY": ""}


def test_the_unit_and_the_nginx_site_agree() -> None:
    """nginx connects to the port the daemon listens on by default, from an address the unit
    lets it vouch for clients from, and serves the feeds from where the daemon writes them."""
    site = SITE.read_text()
    upstreams = set(re.findall(r"proxy_pass http://([\d.]+):(\d+);", site))
    example = config.load(ROOT / "config.toml")
    assert upstreams == {(example.web.host, str(example.web.port))}
    # The daemon believes X-Forwarded-For from [web] trusted_proxies (the unit no longer sets
    # FORWARDED_ALLOW_IPS): the README's config for this site names nginx's address.
    assert not [v for v in unit_settings()["Environment"] if v.startswith("FORWARDED_ALLOW_IPS=")]
    assert f'trusted_proxies = ["{example.web.host}", "::1"]' in (ROOT / "README.md").read_text()
    assert f"root {STATE};" in site and example.feeds.folder == "calendars"
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in site


# --- the daemon's trust in proxy headers


async def echo_client(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the client address and scheme the application is told."""
    body = f"{scope['client'][0]} {scope['scheme']}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[[list[str]], str]]:
    """Starts uvicorn as the daemon configures it (for [web] trusted_proxies) on 127.0.0.1;
    returns its URL. Every server started is stopped afterwards."""
    running: list[tuple[daemon._Server, threading.Thread]] = []

    def serve(trusted: list[str]) -> str:
        ready, address = threading.Event(), []

        def on_ready(url: str) -> None:
            address.append(url)
            ready.set()

        web = config.parse({"web": {"trusted_proxies": trusted}}, tmp_path / "config.toml").web
        server = daemon._Server(daemon.web_server_config(echo_client, web, {}), on_ready)
        listener = socket.create_server(("127.0.0.1", 0))
        thread = threading.Thread(target=asyncio.run, args=(server.serve(sockets=[listener]),))
        thread.start()
        running.append((server, thread))
        assert ready.wait(timeout=60)
        return address[0]

    yield serve
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=60)


FORWARDED = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}


@pytest.mark.parametrize("trusted", [
    pytest.param(["127.0.0.1", "::1"], id="nginx-on-this-machine"),
    pytest.param(["192.0.2.1", "127.0.0.1"], id="named-proxies"),
])
def test_a_trusted_proxy_is_believed_about_the_client(
        served: Callable[[list[str]], str], trusted: list[str]) -> None:
    """Behind nginx on this machine, each member counts as their own address (sign-up limits
    per address), and the scheme is the one they used."""
    url = served(trusted)
    assert httpx.get(url, headers=FORWARDED).text == "203.0.113.7 https"


@pytest.mark.parametrize("trusted", [pytest.param([], id="none-by-default"),
                                     pytest.param(["192.0.2.1"], id="another-proxy")])
def test_anyone_else_cannot_choose_their_address(
        served: Callable[[list[str]], str], trusted: list[str]) -> None:
    """From an address not in [web] trusted_proxies the headers are ignored: a client cannot
    dodge the sign-up limit by making up X-Forwarded-For."""
    url = served(trusted)
    assert httpx.get(url, headers=FORWARDED).text == "127.0.0.1 http"


# --- the nginx site


def nginx_site(text: str, **where: str) -> str:
    """The example site, with this test's ports, certificate and folders instead of a real
    server's (each replaced text must be there: a changed example fails here, loudly)."""
    replacements = {
        "listen 80;": f"listen 127.0.0.1:{where['http']};",
        "listen 443 ssl;": f"listen 127.0.0.1:{where['https']} ssl;",
        "listen [::]:80;": "", "listen [::]:443 ssl;": "",  # no IPv6 needed here
        "/etc/letsencrypt/live/calls.example.org/fullchain.pem": where["cert"],
        "/etc/letsencrypt/live/calls.example.org/privkey.pem": where["key"],
        f"root {STATE};": f"root {where['state']};",
        "root /var/www/html;": f"root {where['webroot']};",
        "http://127.0.0.1:8080": f"http://127.0.0.1:{where['daemon']}",
    }
    for old, new in replacements.items():
        assert old in text, f"deploy/nginx.conf no longer has {old!r}"
        text = text.replace(old, new)
    return text


@pytest.fixture
def nginx_setup(tmp_path: Path) -> Callable[..., tuple[Path, Path, trustme.CA]]:
    """Writes a main nginx.conf (pid, logs and temporary files in a temporary folder) around
    the example site; returns the config, its prefix and the throwaway CA."""
    ca = trustme.CA()
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    cert, key = prefix / "fullchain.pem", prefix / "privkey.pem"
    issued = ca.issue_cert("calls.example.org", "127.0.0.1")
    issued.private_key_pem.write_to_path(str(key))
    issued.cert_chain_pems[0].write_to_path(str(cert))
    for pem in issued.cert_chain_pems[1:]:
        pem.write_to_path(str(cert), append=True)

    def write(*, state: Path, daemon_port: int, http: int, https: int) -> Path:
        site = prefix / "coalition.conf"
        site.write_text(nginx_site(SITE.read_text(), http=str(http), https=str(https),
                                   cert=str(cert), key=str(key), state=str(state),
                                   webroot=str(prefix / "www"), daemon=str(daemon_port)))
        temp = "\n".join(f"    {kind}_temp_path {prefix / kind};"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        main = prefix / "nginx.conf"
        main.write_text(
            # as root, workers must stay root to read the test's private temporary folders
            ("user root;\n" if os.geteuid() == 0 else "")
            + f"pid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'};\n"
            + f"events {{}}\nhttp {{\n    access_log {prefix / 'access.log'};\n{temp}\n"
            + f"    include {site};\n}}\n")
        return main

    return lambda **where: (write(**where), prefix, ca)


def test_the_nginx_site_passes_nginx_t(nginx_setup: Callable[..., tuple[Path, Path, object]],
                                       tmp_path: Path) -> None:
    nginx = tool("nginx", "COALITION_REQUIRE_NGINX")
    main, prefix, _ = nginx_setup(state=tmp_path, daemon_port=8080, http=free_port(),
                                  https=free_port())
    ran = subprocess.run([nginx, "-t", "-q", "-p", str(prefix), "-c", str(main)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert (ran.returncode, ran.stdout + ran.stderr) == (0, "")


class Site(NamedTuple):
    url: str  # nginx's https URL
    context: ssl.SSLContext  # trusts nginx's certificate
    state: Path  # the daemon's folder: the feeds are in calendars/


@pytest.fixture
def behind_nginx(config_case: ConfigCase, coalition: Coalition,
                 nginx_setup: Callable[..., tuple[Path, Path, trustme.CA]]) -> Iterator[Site]:
    """A daemon (one sign-up per address an hour, a call with its feed) behind the example
    site in nginx, over TLS."""
    nginx = tool("nginx", "COALITION_REQUIRE_NGINX")
    path = config_case("example", "behind-nginx")
    text = path.read_text().replace('signup_per_ip = "10/hour"', 'signup_per_ip = "1/hour"')
    text = text.replace("trusted_proxies = []", 'trusted_proxies = ["127.0.0.1", "::1"]')
    path.write_text(text.replace('base_url = "http://127.0.0.1:8080"',
                                 'base_url = "https://calls.example.org"'))
    assert coalition("call", "add", "--title", "Weekly", "--start", "2030-01-07 15:00", "--tz",
                     "Europe/Brussels", "--rrule", "FREQ=WEEKLY", config_path=path).exit_code == 0
    process = start(path)
    try:
        (line,) = [line for line in process.log if line.startswith("ready:")]
        listening = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert listening, line
        daemon_port = int(listening[1])
        https = free_port()
        main, prefix, ca = nginx_setup(state=path.parent, daemon_port=daemon_port,
                                       http=free_port(), https=https)
        # nginx returns once it listens (the master process then runs in the background)
        subprocess.run([nginx, "-p", str(prefix), "-c", str(main)], check=True, timeout=60)
        try:
            context = ssl.create_default_context()
            ca.configure_trust(context)
            yield Site(f"https://127.0.0.1:{https}", context, path.parent)
        finally:
            subprocess.run([nginx, "-p", str(prefix), "-c", str(main), "-s", "stop"],
                           check=True, timeout=60)
    finally:
        assert stop(process) == 0


def nginx_etag(file: Path) -> str:
    """The ETag nginx gives a file it serves gzipped: its mtime and size in hex
    (ngx_http_set_etag), made weak by gzip. The daemon's ETag for a feed is a hash of it."""
    found = file.stat()
    return f'W/"{int(found.st_mtime):x}-{found.st_size:x}"'


def test_nginx_serves_the_feeds_from_disk_as_calendars(behind_nginx: Site) -> None:
    url, context, state = behind_nginx
    with httpx.Client(verify=context, headers={"Accept-Encoding": "gzip"}) as client:
        feed = client.get(f"{url}/calendars/weekly.ics")
        assert feed.status_code == 200 and feed.text.startswith("BEGIN:VCALENDAR")
        assert feed.headers["content-type"] == "text/calendar; charset=utf-8"
        assert feed.headers["cache-control"] == "public, max-age=300"
        assert feed.headers["content-encoding"] == "gzip"
        # From disk, not through the daemon (nginx names itself in Server either way): a wrong
        # root in the site would pass every feed on to the daemon, whose ETag is a hash.
        assert feed.headers["etag"] == nginx_etag(state / "calendars" / "weekly.ics")
        again = client.get(f"{url}/calendars/weekly.ics",
                           headers={"If-None-Match": feed.headers["etag"]})
        assert again.status_code == 304
        missing = client.get(f"{url}/calendars/no-such-call.ics")
        assert missing.status_code == 404 and "strict-transport-security" in missing.headers
        page = client.get(f"{url}/")
        assert page.status_code == 200 and "Weekly" in page.text
        assert client.get(f"{url}/metrics").status_code == 200  # from this machine only


def sign_up(url: str, context: ssl.SSLContext, source: str, email: str,
            forwarded: str | None = None) -> int:
    """A sign-up from the address `source` (any 127.x.y.z is this machine)."""
    transport = httpx.HTTPTransport(verify=context, local_address=source)
    with httpx.Client(transport=transport, base_url=url) as client:
        form = client.get("/subscribe").text
        found = re.search(r'name="form_token" value="([^"]+)"', form)
        assert found, form
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        return client.post("/subscribe", headers=headers, data={
            "form_token": found[1], "email": email, "name": "", "language": "en",
            "zone": "Europe/Brussels", "all": "yes"}).status_code


def test_behind_nginx_each_client_has_its_own_sign_up_limit(behind_nginx: Site) -> None:
    """The daemon sees each member's address through nginx, not nginx's 127.0.0.1: one
    member's sign-ups do not use up another's, and a made-up X-Forwarded-For does not help."""
    url, context, _ = behind_nginx
    assert sign_up(url, context, "127.0.0.2", "ada@example.org") == 200
    assert sign_up(url, context, "127.0.0.2", "bea@example.org") == 429
    assert sign_up(url, context, "127.0.0.2", "bea@example.org", forwarded="198.51.100.9") == 429
    assert sign_up(url, context, "127.0.0.3", "bea@example.org") == 200
