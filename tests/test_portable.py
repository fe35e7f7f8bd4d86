"""The CLI installs and runs where uvloop has no wheels and where there is no `fcntl` (Windows):
the organizer's commands, and an SMTP fan-out on asyncio's own loop. Shell completion is on."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import Coalition, SmtpSink, use_smtp

# Run the console script's entry point with both modules made unimportable, as they are where
# they do not exist (an import of a name mapped to None raises ImportError).
WITHOUT = """
import sys
sys.modules["uvloop"] = None
sys.modules["fcntl"] = None
sys.argv = ["coalition", *sys.argv[1:]]
from scheduler.entry import main
main()
"""


def without_uvloop_or_fcntl(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", WITHOUT, "--config", str(config), *args],
                          capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parent.parent)


def test_commands_and_an_smtp_fan_out_run_without_uvloop_or_fcntl(
    coalition: Coalition, smtp_sink: tuple[SmtpSink, int]
) -> None:
    sink, port = smtp_sink
    config = coalition.config
    use_smtp(config, port)
    for args in (
        ("call", "add", "--title", "Justice For All coalition call", "--start",
         "2018-11-13 10:00", "--tz", "America/New_York", "--rrule", "FREQ=MONTHLY;BYDAY=2TU"),
        ("subscriber", "add", "ada@example.org"),
        ("subscriber", "add", "bea@example.org", "--lang", "fr"),
        ("feed", "build"),
    ):
        done = without_uvloop_or_fcntl(config, *args)
        assert done.returncode == 0, (args, done.stderr)
    sent = without_uvloop_or_fcntl(config, "run-once", "--now", "2018-11-06T15:00:30Z")
    assert sent.returncode == 0, sent.stderr
    assert sorted(str(m["To"]) for m in sink.received) == ["ada@example.org",
                                                           "bea@example.org"]


def test_shell_completion_is_offered() -> None:
    """Typer's completion, as a shell runs the installed command (in-process, Click's runner
    shares state between tests and made this flaky)."""
    command = shutil.which("coalition", path=str(Path(sys.executable).parent))
    assert command is not None
    env = {k: v for k, v in os.environ.items() if not k.endswith("_COMPLETE")}
    # Typer finds the shell among the processes above it (shellingham): a child of bash, not
    # of whatever runs pytest (make's sh). Two commands, so that bash forks rather than execs.
    shown = subprocess.run(["bash", "-c", f"'{command}' --show-completion; exit $?"],
                           capture_output=True, text=True, timeout=120, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "_coalition_completion" in shown.stdout
    assert "complete -o default -F _coalition_completion coalition" in shown.stdout
