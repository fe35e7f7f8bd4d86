"""Running `coalition daemon` as a real process in tests, and stopping it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path


class Daemon(subprocess.Popen[str]):
    """`coalition daemon` as a process whose log is drained by a thread (a full pipe would
    block it), kept in `log`, and can be waited on line by line."""

    log: list[str]
    _new_line: threading.Condition

    def wait_for_line(self, text: str, timeout: float) -> bool:
        """Block until a log line contains `text` (or the process ends, or `timeout` passes)."""
        with self._new_line:
            return self._new_line.wait_for(
                lambda: any(text in line for line in self.log) or self.poll() is not None,
                timeout=timeout) and any(text in line for line in self.log)


    def wait_for(self, seen: Callable[[list[str]], bool], timeout: float) -> bool:
        """Block until `seen(log)` is true (or the process ends, or `timeout` passes)."""
        with self._new_line:
            return self._new_line.wait_for(
                lambda: seen(self.log) or self.poll() is not None, timeout=timeout) and \
                seen(self.log)


def start(path: Path, env: dict[str, str] | None = None) -> Daemon:
    """The daemon, once it listens (`env`: more environment variables for it)."""
    command = shutil.which("coalition", path=str(Path(sys.executable).parent))
    assert command
    return spawn([command, "--config", str(path), "daemon", "--port", "0"],
                 env={**os.environ, "PYTHONUNBUFFERED": "1",
                      # what an operator gives every replica on PostgreSQL
                      "COALITION_WEB_SECRET": "tests-secret-shared-by-all-replicas-0123",
                      **(env or {})})


def spawn(args: list[str], env: dict[str, str], cwd: Path | None = None) -> Daemon:
    """`args` (a `coalition ... daemon` command line), once it says it listens."""
    process = Daemon(args, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    process.log, process._new_line = [], threading.Condition()

    def drain() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            with process._new_line:
                process.log.append(line)
                process._new_line.notify_all()
        with process._new_line:
            process._new_line.notify_all()

    threading.Thread(target=drain, daemon=True).start()
    assert process.wait_for_line("ready:", timeout=60), process.log
    return process


def stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)
