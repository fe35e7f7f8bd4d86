"""Running `coalition daemon` as a real process in tests, and stopping it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path


def start(path: Path) -> subprocess.Popen[str]:
    """The daemon, once it listens. Its log is drained by a thread (a full pipe would block
    it) and kept in `process.log`."""
    command = shutil.which("coalition", path=str(Path(sys.executable).parent))
    assert command
    process = subprocess.Popen([command, "--config", str(path), "daemon", "--port", "0"],
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    ready = threading.Event()
    lines: list[str] = []

    def drain() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if line.startswith("ready:"):
                ready.set()
        ready.set()  # it ended without being ready: the assertion below says so

    threading.Thread(target=drain, daemon=True).start()
    assert ready.wait(timeout=60) and any(line.startswith("ready:") for line in lines), lines
    process.log = lines  # type: ignore[attr-defined]
    return process


def stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)
