"""File writes that never leave a half-written file behind, and content hashes."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from mpspatch.foundation.errors import InputError
from mpspatch.foundation.ids import ContentSha256


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync it, then rename over the target.

    rename() within one filesystem is atomic, so readers see the old file or the new one, never a mix,
    even when the process is killed half-way. A folder that cannot be made or written (a file in the way, no
    permission, a full disk) is the user's to fix, so it is an InputError naming the path, not a crash.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise InputError(f"{path}: cannot write here ({exc.strerror or exc}); choose another path or make "
                         f"{path.parent} a writable folder") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_bytes(data: bytes) -> ContentSha256:
    return ContentSha256(hashlib.sha256(data).hexdigest())


def sha256_file(path: Path) -> ContentSha256:
    return sha256_bytes(path.read_bytes())
