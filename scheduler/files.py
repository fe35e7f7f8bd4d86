"""Writing a file that others read while we write it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Readers see the old file or the new one, never half of one.

    `durable`: on the disk before this returns (fsync), so a power cut after it cannot lose
    it: for what is a record of something done (a forum post written counts as sent). Files
    made again from the database whenever they differ (the feeds) need not wait for the disk,
    file after file: an import of 10,000 calls writes 10,000 feeds."""
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
        f.write(data)
        f.flush()
        if durable:
            os.fsync(f.fileno())
    os.chmod(f.name, 0o644)  # a static web server must be able to read it
    os.replace(f.name, path)
