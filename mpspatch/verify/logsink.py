"""A stage's log as it is written: every line redacted, long lines cut, and the whole log bounded.

The runner feeds it a command's output in chunks as it arrives. Memory stays flat whatever the stage prints:
at most one block of lines, one cut line and the kept tail are held. Past `max_bytes`, output is no longer
written as it comes; the last `tail_bytes` of it are kept and written when the command ends, after a note
saying how much was left out, so the parsers (which read the end of the log) still see the final errors and
summaries. Nothing reaches the file before the redactor has seen it.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path

from mpspatch.foundation.redact import Redactor

MAX_LOG_BYTES = 256 * 1024 * 1024  # the head of a stage's log, written as it comes
TAIL_BYTES = 16 * 1024 * 1024  # the end of each command's output kept past that
MAX_LINE_BYTES = 64 * 1024  # a longer line is cut, with a note
BLOCK_BYTES = 1024 * 1024  # lines are redacted and written in blocks of about this size


class LogWriter:
    def __init__(self, path: Path, redactor: Redactor, *, max_bytes: int | None = None,
                 tail_bytes: int | None = None, max_line: int | None = None) -> None:
        self.path = path
        self.redactor = redactor
        self.max_bytes = MAX_LOG_BYTES if max_bytes is None else max_bytes
        self.tail_bytes = TAIL_BYTES if tail_bytes is None else tail_bytes
        self.max_line = MAX_LINE_BYTES if max_line is None else max_line
        path.parent.mkdir(parents=True, exist_ok=True)
        self.written = path.stat().st_size if path.exists() else 0
        self.left_out = 0  # bytes of output dropped between the head and the kept tail
        self.capped = False  # past max_bytes: output goes to the tail
        self._block: list[bytes] = []
        self._block_size = 0
        self._partial = bytearray()
        self._cut = 0  # bytes left out of the current over-long line
        self._tail: deque[bytes] = deque()
        self._tail_size = 0
        self._lock = threading.Lock()
        self._file = path.open("ab")

    def feed(self, chunk: bytes) -> None:
        """Output of the running command, in any chunking."""
        with self._lock:
            if not self._partial and not self._cut:
                # The common case, whole short lines: one piece for the lot, no loop over lines in Python.
                last = chunk.rfind(b"\n")
                if last >= 0 and max(map(len, chunk[:last].split(b"\n"))) < self.max_line:
                    self._queue(chunk[:last + 1])
                    chunk = chunk[last + 1:]
            parts = chunk.split(b"\n") if chunk else []
            for part in parts[:-1]:
                self._add(part)
                self._line_done()
            if parts:
                self._add(parts[-1])
            self._flush_block()  # whole lines reach the file as they come: a live display reads it
            self._file.flush()

    def note(self, text: str) -> None:
        """Lines of mpspatch's own (`mpspatch: timed out...`), redacted like the rest."""
        with self._lock:
            self._finish_line()
            for line in text.splitlines():
                self._queue(line.encode("utf-8", errors="surrogateescape") + b"\n")
            self._flush_block()

    def end_command(self) -> None:
        """The command finished: its unfinished last line and its kept tail go into the file."""
        with self._lock:
            self._finish_line()
            self._flush_block()
            self._flush_tail()
            self._file.flush()

    def close(self) -> None:
        if self._file.closed:
            return
        self.end_command()
        with self._lock:
            self._file.close()

    # -------------------------------------------------------------------------------------- internals

    def _add(self, piece: bytes) -> None:
        room = self.max_line - len(self._partial)
        if room >= len(piece):
            self._partial += piece
        else:
            self._partial += piece[:max(room, 0)]
            self._cut += len(piece) - max(room, 0)

    def _line_done(self) -> None:
        line = bytes(self._partial)
        if self._cut:
            line += f" [mpspatch: line cut, {self._cut} more bytes left out]".encode()
        self._partial.clear()
        self._cut = 0
        self._queue(line + b"\n")

    def _finish_line(self) -> None:
        if self._partial or self._cut:
            self._line_done()

    def _queue(self, line: bytes) -> None:
        self._block.append(line)
        self._block_size += len(line)
        if self._block_size >= BLOCK_BYTES:
            self._flush_block()

    def _flush_block(self) -> None:
        if not self._block:
            return
        block = self.redactor.line(b"".join(self._block))
        self._block.clear()
        self._block_size = 0
        if not self.capped and self.written + len(block) <= self.max_bytes:
            self._file.write(block)
            self.written += len(block)
            return
        self.capped = True
        self._tail.append(block)
        self._tail_size += len(block)
        while self._tail_size - len(self._tail[0]) >= self.tail_bytes:
            dropped = self._tail.popleft()
            self._tail_size -= len(dropped)
            self.left_out += len(dropped)

    def _flush_tail(self) -> None:
        if not self._tail:
            return
        data = b"".join(self._tail)
        if self._tail_size > self.tail_bytes:  # keep whole lines of the last tail_bytes
            cut = data.find(b"\n", len(data) - self.tail_bytes)
            cut = cut + 1 if cut >= 0 else len(data) - self.tail_bytes
            self.left_out += cut
            data = data[cut:]
        if self.left_out:
            note = (f"mpspatch: log capped at {self.max_bytes} bytes; {self.left_out} bytes of output left out "
                    f"here, the last {len(data)} bytes follow\n").encode()
            self._file.write(note)
            self.written += len(note)
        self._file.write(data)
        self.written += len(data)
        self._tail.clear()
        self._tail_size = 0
        self.left_out = 0
