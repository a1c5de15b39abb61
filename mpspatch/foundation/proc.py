"""The one place mpspatch starts subprocesses.

argv lists only (never a shell), explicit cwd, env and timeout, a typed result, and errors that quote the
command and the tail of its output so a failure can be understood from the message alone.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mpspatch.foundation.errors import CommandFailedError, ToolMissingError
from mpspatch.foundation.redact import redact_shapes

TAIL_LINES = 20


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    cwd: str
    returncode: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass(frozen=True)
class Logged:
    """Result of a command whose output went to a log file rather than memory."""

    argv: tuple[str, ...]
    cwd: str
    returncode: int | None  # None when it timed out and was killed
    duration_s: float
    timed_out: bool


class CommandTimeoutError(CommandFailedError):
    pass


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived while a logged command ran; its process group was stopped first.

    A KeyboardInterrupt, so every caller that handles Ctrl-C (evidence marked interrupted, exit 130) handles
    a terminal hang-up or a `kill` the same way."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


_FORWARDED = (signal.SIGTERM, signal.SIGHUP)


def _raise_terminated(signum: int, _frame: object) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def _forward_termination() -> Iterator[None]:
    """While the body runs, SIGTERM and SIGHUP raise Terminated (whose handler stops the child's group) instead
    of ending mpspatch at once and leaving the group running. Signal handlers exist in the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise_terminated) for sig in _FORWARDED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last lines of a command's output for a message, secrets such as URL passwords masked."""
    return redact_shapes("\n".join(text.rstrip("\n").splitlines()[-lines:]))


def describe(argv: Sequence[str]) -> str:
    """A command as shown in messages and logs: a token in a URL (`https://user:TOKEN@...`) masked."""
    return redact_shapes(shlex.join(argv))


def _merged_env(env: Mapping[str, str] | None, *, inherit: bool) -> dict[str, str]:
    merged = dict(os.environ) if inherit else {}
    if env:
        merged.update(env)
    return merged


def _missing(argv: Sequence[str], cwd: Path) -> ToolMissingError:
    return ToolMissingError(
        f"{argv[0]}: program not found (needed for `{describe(argv)}` in {cwd}); install it or put it on PATH"
    )


class NotExecutableError(ToolMissingError):
    """The program exists but cannot be run: no execute permission, or a folder."""


def _not_executable(argv: Sequence[str], exc: OSError) -> NotExecutableError:
    if os.path.isdir(argv[0]):
        return NotExecutableError(f"{argv[0]}: is a folder, not a program; name the program to run")
    return NotExecutableError(f"{argv[0]}: cannot be run ({exc.strerror or exc}); make it executable "
                              f"(`chmod +x {argv[0]}`) or run it through its interpreter")


def _spawn(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None, timeout: float, inherit_env: bool,
    input_bytes: bytes | None,
) -> tuple[subprocess.CompletedProcess[bytes], float]:
    """Run to completion with bytes in and out; the shared core of run() and run_bytes()."""
    if not argv:
        raise ValueError("empty argv")
    started = time.monotonic()
    try:
        completed = subprocess.run(
            list(argv),
            cwd=cwd,
            env=_merged_env(env, inherit=inherit_env),
            input=input_bytes,
            stdin=None if input_bytes is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        if not cwd.is_dir():
            raise CommandFailedError(f"working directory {cwd} does not exist for `{describe(argv)}`") from exc
        raise _missing(argv, cwd) from exc
    except NotADirectoryError as exc:
        raise CommandFailedError(f"{cwd} is a file, not a folder; point the setting that names it at a folder "
                                 "(a clone, a checkout)") from exc
    except PermissionError as exc:
        raise _not_executable(argv, exc) from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandTimeoutError(f"`{describe(argv)}` timed out after {timeout:g}s in {cwd}") from exc
    return completed, time.monotonic() - started


def _decode(data: bytes) -> str:
    # Decoded by hand rather than with text=True: universal newlines would turn CRLF lines in a patch into LF.
    return data.decode("utf-8", errors="replace")


def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    check: bool = True,
    input_text: str | None = None,
    inherit_env: bool = True,
) -> Completed:
    """Run argv to completion and capture its output as text (UTF-8, undecodable bytes replaced)."""
    completed, duration = _spawn(argv, cwd=cwd, env=env, timeout=timeout, inherit_env=inherit_env,
                                 input_bytes=input_text.encode("utf-8") if input_text is not None else None)
    result = Completed(
        argv=tuple(argv),
        cwd=str(cwd),
        returncode=completed.returncode,
        stdout=_decode(completed.stdout),
        stderr=_decode(completed.stderr),
        duration_s=duration,
    )
    if check and not result.ok:
        raise CommandFailedError(
            f"`{describe(argv)}` exited {result.returncode} in {cwd}:\n{tail(result.stderr or result.stdout)}"
        )
    return result


def run_logged(
    argv: Sequence[str],
    *,
    cwd: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 3600,
    inherit_env: bool = True,
    on_output: Callable[[bytes], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> Logged:
    """Run argv with stdout and stderr streamed (interleaved) to the end of `log`.

    Streaming to a file rather than a pipe keeps memory flat for hour-long builds and leaves a usable log
    when the process is killed. The command runs in a process group of its own, and a timeout, Ctrl-C,
    SIGTERM or SIGHUP stops the whole group, so compilers spawned by a build go too. `on_start` gets the
    group's id once it exists (to record it where a later run can find it should mpspatch be SIGKILLed).

    With `on_output`, the output goes through a pipe instead, in chunks of at most CHUNK bytes, to
    `on_output`, which writes the log itself (the verify runner redacts and bounds it there).
    """
    if on_output is not None:
        return _run_piped(argv, cwd=cwd, env=env, timeout=timeout, inherit_env=inherit_env, sink=on_output,
                          on_start=on_start)
    started = time.monotonic()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as sink:
        sink.write(f"$ {describe(argv)}\n".encode())
        sink.flush()
        proc = _start_group(argv, cwd=cwd, env=env, inherit_env=inherit_env, stdout=sink)
        code, timed_out = _wait_group(proc, timeout, on_start)
    return Logged(
        argv=tuple(argv), cwd=str(cwd), returncode=code, duration_s=time.monotonic() - started, timed_out=timed_out
    )


CHUNK = 64 * 1024
DRAIN_WAIT_S = 2.0  # how long output may keep coming after the command itself exited


def _run_piped(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None, timeout: float, inherit_env: bool,
    sink: Callable[[bytes], None], on_start: Callable[[int], None] | None = None,
) -> Logged:
    started = time.monotonic()
    sink(f"$ {describe(argv)}\n".encode())
    proc = _start_group(argv, cwd=cwd, env=env, inherit_env=inherit_env, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    pipe = proc.stdout

    failed: list[Exception] = []

    def drain() -> None:
        fd = pipe.fileno()
        try:
            while chunk := os.read(fd, CHUNK):
                sink(chunk)
        except Exception as exc:  # the log cannot be written (a full disk): nobody reads the pipe any more,
            failed.append(exc)  # so the command would block on it forever; it goes, and the error is raised
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

    reader = threading.Thread(target=drain, name="mpspatch-log", daemon=True)
    reader.start()
    try:
        code, timed_out = _wait_group(proc, timeout, on_start)
    finally:
        reader.join(DRAIN_WAIT_S)
    if reader.is_alive():
        # Something the command started still holds the output open: it goes with the command's group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        reader.join(DRAIN_WAIT_S)
    if failed:
        raise failed[0]
    return Logged(
        argv=tuple(argv), cwd=str(cwd), returncode=code, duration_s=time.monotonic() - started, timed_out=timed_out
    )


def _start_group(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None, inherit_env: bool,
                 stdout: IO[bytes] | int) -> subprocess.Popen[bytes]:
    """The command in a process group of its own, output and errors interleaved into `stdout`."""
    try:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=_merged_env(env, inherit=inherit_env),
            stdin=subprocess.DEVNULL,  # a stage must never wait on, or eat, the terminal's input
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        if not cwd.is_dir():
            raise CommandFailedError(f"working directory {cwd} does not exist") from exc
        raise _missing(argv, cwd) from exc
    except PermissionError as exc:
        raise _not_executable(argv, exc) from exc


def _wait_group(proc: subprocess.Popen[bytes], timeout: float,
                on_start: Callable[[int], None] | None) -> tuple[int | None, bool]:
    """(exit code, timed out). A timeout kills the group; Ctrl-C, SIGTERM or SIGHUP stop it, then re-raise."""
    try:
        with _forward_termination():
            if on_start is not None:
                on_start(proc.pid)
            return proc.wait(timeout=timeout), False
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return None, True
    except BaseException as exc:
        _kill_group(proc, exc.signum if isinstance(exc, Terminated) else None)
        raise


def _kill_group(proc: subprocess.Popen[bytes], first: int | None = None) -> None:
    """Stop the child's process group: `first` (a forwarded SIGTERM/SIGHUP) with a short grace, then SIGKILL."""
    if first is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, first)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=3)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def which(program: str) -> str | None:
    return shutil.which(program)


@dataclass(frozen=True)
class CompletedBytes:
    """Like Completed, for output that must stay bytes (object contents whose sizes are counted in bytes)."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_bytes(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    check: bool = True,
    input_bytes: bytes | None = None,
    inherit_env: bool = True,
) -> CompletedBytes:
    """run() for binary protocols such as `git cat-file --batch`: stdout undecoded, stderr as text."""
    completed, _ = _spawn(argv, cwd=cwd, env=env, timeout=timeout, inherit_env=inherit_env, input_bytes=input_bytes)
    stderr = _decode(completed.stderr)
    if check and completed.returncode != 0:
        raise CommandFailedError(f"`{describe(argv)}` exited {completed.returncode} in {cwd}:\n{tail(stderr)}")
    return CompletedBytes(argv=tuple(argv), returncode=completed.returncode, stdout=completed.stdout, stderr=stderr)
