"""File writes that never leave a half-written file behind, and content hashes."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
from pathlib import Path

from mpspatch.foundation.errors import InputError
from mpspatch.foundation.ids import ContentSha256


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync it, then rename over the target.

    rename() within one filesystem is atomic, so readers see the old file or the new one, never a mix,
    even when the process is killed half-way. A folder that cannot be made or written (a file in the way, no
    permission, a full disk) is the user's to fix, so it is an InputError naming the path, not a crash.

    Only a regular file is ever replaced. A symlink stays a symlink: its target is written atomically. A
    character device (`/dev/null`, `/dev/stdout`) is written through, never replaced by a file; a folder, a FIFO
    or a socket at the path is refused.
    """
    path = _resolve_link(path)
    kind = _special_kind(path)
    if kind == "device":
        _write_through(path, data)
        return
    if kind is not None:
        raise InputError(f"{path}: is a {kind}, not a file; name a file to write instead")
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
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _write_failed(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _resolve_link(path: Path) -> Path:
    """The file a symlink (or a chain of them) names, so the link itself is kept; other paths unchanged."""
    if not path.is_symlink():
        return path
    try:
        return path.resolve(strict=False)
    except (OSError, RuntimeError):
        raise InputError(f"{path}: a symlink that loops or cannot be followed; point it at a file or remove it")\
            from None


def _special_kind(path: Path) -> str | None:
    """What stands at `path` when it is neither missing nor a regular file: device, folder, FIFO, socket."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    return "socket" if stat.S_ISSOCK(mode) else "special file"


def _write_through(path: Path, data: bytes) -> None:
    try:
        with path.open("wb") as handle:
            handle.write(data)
            handle.flush()
    except OSError as exc:
        raise _write_failed(path, exc) from None


def write_failed(path: Path, exc: OSError) -> InputError:
    """The exit-2 error for a write to `path` the machine refused: a full disk, a read-only file system..."""
    return _write_failed(path, exc)


def _write_failed(path: Path, exc: OSError) -> InputError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return InputError(f"{path}: the disk is full ({exc.strerror}); free some space or write elsewhere")
    if exc.errno == errno.EROFS:
        return InputError(f"{path}: the file system is read-only; write elsewhere")
    return InputError(f"{path}: cannot write ({exc.strerror or exc}); choose another path or fix its permissions")


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def utf8_patch(data: bytes, name: str) -> str:
    """A patch's bytes as text, or an InputError naming the line and file with bytes that are not UTF-8.

    Decoding with replacement would silently rewrite those bytes as U+FFFD in the patch written back.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        start = data.rfind(b"\n", 0, exc.start) + 1
        header = data.rfind(b"\ndiff --git ", 0, exc.start) + 1 or (0 if data.startswith(b"diff --git ") else -1)
        in_file = ""
        if header >= 0:
            first = data[header: data.find(b"\n", header)].decode("utf-8", errors="replace")
            in_file = f" (in {first.split(' b/', 1)[-1]})" if " b/" in first else ""
        raise InputError(
            f"{name}:{line}: byte 0x{data[exc.start]:02x} at column {exc.start - start + 1} is not UTF-8{in_file}; "
            "patches are kept as UTF-8 text: convert that file to UTF-8, or mark it `binary` in .gitattributes "
            "and regenerate the patch") from None


def sha256_bytes(data: bytes) -> ContentSha256:
    return ContentSha256(hashlib.sha256(data).hexdigest())


def sha256_file(path: Path) -> ContentSha256:
    """Read in chunks: a stage log can be gigabytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return ContentSha256(digest.hexdigest())
