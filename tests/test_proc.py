"""The subprocess chokepoint with real processes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mpspatch.foundation import proc
from mpspatch.foundation.errors import CommandFailedError, ToolMissingError
from mpspatch.foundation.files import atomic_write_text


def test_captures_output_and_exit_code(tmp_path: Path) -> None:
    result = proc.run([sys.executable, "-c", "import sys; print('hi'); sys.exit(3)"], cwd=tmp_path, check=False)
    assert (result.returncode, result.stdout.strip(), result.ok) == (3, "hi", False)


def test_failure_quotes_command_and_tail(tmp_path: Path) -> None:
    with pytest.raises(CommandFailedError) as info:
        proc.run([sys.executable, "-c", "import sys; sys.stderr.write('boom\\n'); sys.exit(1)"], cwd=tmp_path)
    assert "exited 1" in info.value.message and "boom" in info.value.message


def test_missing_tool_is_exit_2(tmp_path: Path) -> None:
    with pytest.raises(ToolMissingError) as info:
        proc.run(["no-such-tool-mpspatch"], cwd=tmp_path)
    assert info.value.exit_code == 2 and "install it" in info.value.message


def test_timeout(tmp_path: Path) -> None:
    with pytest.raises(proc.CommandTimeoutError, match="timed out"):
        proc.run([sys.executable, "-c", "import time; time.sleep(5)"], cwd=tmp_path, timeout=0.5)


def test_logged_run_streams_to_file_and_kills_on_timeout(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "stage.log"
    done = proc.run_logged([sys.executable, "-c", "print('line'); import sys; sys.exit(4)"], cwd=tmp_path, log=log)
    assert (done.returncode, done.timed_out) == (4, False)
    slow = proc.run_logged([sys.executable, "-c", "import time; print('x', flush=True); time.sleep(30)"],
                           cwd=tmp_path, log=log, timeout=1)
    assert slow.timed_out and slow.returncode is None and slow.duration_s < 10
    text = log.read_text()
    assert text.count("$ ") == 2 and "line" in text


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "file.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]


def test_crlf_output_survives(tmp_path: Path) -> None:
    # Patch text passes through run(): CRLF lines inside a hunk must reach the rewritten patch unchanged.
    script = "import sys; sys.stdout.buffer.write(b'+line one\\r\\n+line two\\n')"
    assert proc.run([sys.executable, "-c", script], cwd=tmp_path).stdout == "+line one\r\n+line two\n"
