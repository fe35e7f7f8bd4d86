"""The package as a user installs it: a wheel built from this checkout, installed (not editable)
into a fresh virtualenv with the locked versions, used from an empty folder.

The checkout keeps the owner's layout (cli.py, templates/ and config.toml at the top); the wheel
must carry them inside its one package, `scheduler`, and install nothing else at the top of
site-packages. A command that reaches for a file of the checkout fails here, because the
checkout is not on the path of the installed command.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import venv
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.daemon_process import Daemon, spawn, stop

ROOT = Path(__file__).resolve().parent.parent


def _uv() -> str:
    """uv: where make installs it (.tools/), else on the PATH."""
    found = shutil.which("uv", path=str(ROOT / ".tools" / "bin")) or shutil.which("uv")
    if found is None:
        pytest.fail("uv is needed to build and install the wheel (make test installs it)")
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([_uv(), "build", "--wheel", "--quiet", "--out-dir", str(out), str(ROOT)],
                   check=True, cwd=ROOT)
    (built,) = out.glob("coalition_scheduler-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel and the locked versions of its dependencies; returns
    its bin/ folder."""
    home = tmp_path_factory.mktemp("venv")
    venv.create(home, with_pip=False)
    locked = home / "constraints.txt"
    subprocess.run([_uv(), "export", "--frozen", "--no-hashes", "--no-emit-project",
                    "--format", "requirements-txt", "--output-file", str(locked), "--quiet"],
                   check=True, cwd=ROOT)
    subprocess.run([_uv(), "pip", "install", "--quiet", "--python", str(home / "bin" / "python"),
                    "--constraints", str(locked), str(wheel)], check=True, cwd=home)
    return home / "bin"


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def coalition(bin_: Path, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The checkout is not on the path: PYTHONPATH and the working folder are the user's.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COALITION_CONFIG")}
    return subprocess.run([str(bin_ / "coalition"), *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120)


def test_wheel_installs_one_top_level_package_with_its_templates_and_example_config(
        wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"scheduler"}
    assert "scheduler/cli.py" in names
    assert "scheduler/config.example.toml" in names
    assert "scheduler/store/migrations/script.py.mako" in names
    shipped = {name.removeprefix("scheduler/") for name in names
               if name.startswith("scheduler/templates/")}
    in_checkout = {str(path.relative_to(ROOT)) for path in (ROOT / "templates").rglob("*")
                   if path.is_file()}
    assert shipped == in_checkout


def test_installed_command_works_from_an_empty_folder(installed: Path, empty: Path) -> None:
    """The issue's wall: `check`, `render` and `run-once` exited 2 with "no template ..."."""
    version = coalition(installed, empty, "--version")
    assert version.returncode == 0 and version.stdout.startswith("coalition 0.")

    first = coalition(installed, empty, "init")
    assert first.returncode == 0, first.stderr
    assert "wrote" in first.stdout and "created database" in first.stdout
    assert (empty / "config.toml").read_text().startswith("# The coalition call scheduler")
    again = coalition(installed, empty, "config", "init")
    assert again.returncode == 2 and "already exists" in again.stderr

    for args in (
        ("check",),
        ("call", "add", "--title", "Justice For All coalition call", "--start",
         "2018-11-13 10:00", "--tz", "America/New_York", "--rrule", "FREQ=MONTHLY;BYDAY=2TU"),
        ("feed", "build"),
        ("subscriber", "add", "ada@example.org", "--lang", "fr", "--tz", "Europe/Brussels"),
    ):
        done = coalition(installed, empty, *args)
        assert done.returncode == 0, (args, done.stderr)

    rendered = coalition(installed, empty, "render", "justice-for-all-coalition-call",
                         "--on", "2018-11-13", "--template", "announcement", "--channel", "email",
                         "--lang", "fr")
    assert rendered.returncode == 0, rendered.stderr
    assert "16:00" in rendered.stdout and "17:00" in rendered.stdout  # Brussels, Cairo

    sent = coalition(installed, empty, "run-once", "--now", "2018-11-06T15:00:30Z")
    assert sent.returncode == 0, sent.stderr
    assert len(list((empty / "var" / "mail" / "new").iterdir())) == 1
    assert len(list((empty / "var" / "forum").rglob("*.md"))) == 1
    assert (empty / "calendars" / "justice-for-all-coalition-call.ics").is_file()


@pytest.fixture
def daemon(installed: Path, empty: Path) -> Iterator[Daemon]:
    """The installed daemon, on a call that starts in 20 minutes and one member: the "starts
    in 30 minutes" reminder is due at its first pass."""
    start = (datetime.now(UTC) + timedelta(minutes=20)).strftime("%Y-%m-%d %H:%M")
    for args in (("init",),
                 ("call", "add", "--title", "Soon", "--start", start, "--tz", "UTC"),
                 ("subscriber", "add", "ada@example.org")):
        done = coalition(installed, empty, *args)
        assert done.returncode == 0, (args, done.stderr)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COALITION_CONFIG")}
    process = spawn([str(installed / "coalition"), "daemon", "--port", "0"],
                    env=env, cwd=empty)
    yield process
    assert stop(process) == 0, process.log


def test_installed_daemon_sends_what_is_due_and_serves_the_members_page(
        daemon: Daemon, empty: Path) -> None:
    assert daemon.wait_for(lambda log: any("pass at" in line and "sent: 2 sent" in line
                                           for line in log), timeout=120), daemon.log
    (message,) = (empty / "var" / "mail" / "new").iterdir()
    assert "Soon" in message.read_text()
    line = next(line for line in daemon.log if "ready:" in line)
    port = int(line.split("listening on http://127.0.0.1:")[1].split()[0].rstrip("/"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/", headers={"Accept-Language": "fr"})
    page = connection.getresponse()
    assert page.status == 200
    assert "Soon" in page.read().decode()
    connection.request("GET", "/healthz")
    health = connection.getresponse()
    assert health.status == 200
    assert json.loads(health.read())["last_pass"] is not None
